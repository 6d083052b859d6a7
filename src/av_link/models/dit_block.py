"""The backbone DiT block: self-attention -> cross-attention to text -> MLP, adaLN-Zero on the flow time."""

import torch
from torch import nn

from .attention import AVLinkAttention, ConvFeedForward, FeedForward


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: `(B, L, D)` tokens, `(B, D)` per-sample shift and scale."""
    return x * (1 + scale[:, None]) + shift[:, None]


class AVLinkDiTBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_dim: int, qk_norm: bool = True, eps: float = 1e-6,
                 mlp_conv_kernel: int = 1):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=eps)
        self.attn = AVLinkAttention(dim, num_heads, qk_norm=qk_norm, eps=eps)
        # Cross-attention is not time-modulated (as in PixArt/Wan): a plain affine LayerNorm.
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.cross_attn = AVLinkAttention(dim, num_heads, qk_norm=qk_norm, eps=eps, is_cross_attention=True)
        self.norm3 = nn.LayerNorm(dim, elementwise_affine=False, eps=eps)
        # mlp_conv_kernel > 1: only for a 1D token sequence in time (the audio backbone)
        self.mlp = FeedForward(dim, mlp_dim) if mlp_conv_kernel == 1 else ConvFeedForward(dim, mlp_dim, mlp_conv_kernel)
        # adaLN-Zero: shift/scale/gate for attention and MLP; zero init makes a new block the identity.
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.adaLN_modulation[-1].bias)

    def forward(
        self,
        x: torch.Tensor,
        temb: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor | None,
        rope: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(temb).chunk(6, dim=-1)
        x = x + gate_msa[:, None] * self.attn(modulate(self.norm1(x), shift_msa, scale_msa), rotary_emb=rope)
        x = x + self.cross_attn(self.norm2(x), encoder_hidden_states=text, attention_mask=text_mask)
        x = x + gate_mlp[:, None] * self.mlp(modulate(self.norm3(x), shift_mlp, scale_mlp))
        return x
