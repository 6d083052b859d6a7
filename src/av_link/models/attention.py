"""Multi-head attention with QK-norm, RoPE and key padding masks, on top of SDPA."""

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import apply_rotary_emb
from diffusers.models.normalization import RMSNorm
from torch import nn


class Attention(nn.Module):
    """Self- or cross-attention. `context_dim` set -> keys/values come from a context sequence.

    QK-norm (RMSNorm per head) keeps logits bounded in bf16, as in the paper's backbones.
    """

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None, qk_norm: bool = True, eps: float = 1e-6):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden size {dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        kv_dim = context_dim or dim
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(kv_dim, dim)
        self.to_v = nn.Linear(kv_dim, dim)
        self.to_out = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(self.head_dim, eps=eps) if qk_norm else nn.Identity()
        self.norm_k = RMSNorm(self.head_dim, eps=eps) if qk_norm else nn.Identity()

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)  # (B, H, L, Dh)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        key_mask: torch.Tensor | None = None,
        context_rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`rope` rotates the queries, and the keys too unless `context_rope` is given for them (queries that
        are a subset of the context). `bias` (H, Lq, Lk) is added to the attention logits."""
        context = x if context is None else context
        q = self.norm_q(self._heads(self.to_q(x)))
        k = self.norm_k(self._heads(self.to_k(context)))
        v = self._heads(self.to_v(context))
        if rope is not None:
            q = apply_rotary_emb(q, rope, use_real=True, use_real_unbind_dim=-1)
        if context_rope is not None or rope is not None:
            k = apply_rotary_emb(k, context_rope or rope, use_real=True, use_real_unbind_dim=-1)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, Lk), True = attend
        if bias is not None:
            bias = bias.to(q.dtype)
            attn_mask = bias if attn_mask is None else bias.masked_fill(~attn_mask, float("-inf"))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.to_out(out.transpose(1, 2).flatten(2))


class FeedForward(nn.Sequential):
    """Two-layer GELU(tanh) MLP; `out_dim` lets the Fusion Block project back to a modality's width."""

    def __init__(self, dim: int, hidden_dim: int, out_dim: int | None = None):
        super().__init__(nn.Linear(dim, hidden_dim), nn.GELU(approximate="tanh"), nn.Linear(hidden_dim, out_dim or dim))
