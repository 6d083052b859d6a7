"""Text-to-video DiT over pixel (or latent) frames, with 3D RoPE over (frame, row, column)."""

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.attention import AttentionMixin
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .backbone import AVLinkBackboneMixin
from .rope import rope_nd, split_head_dim_3d


class AVLinkVideoTransformer(AVLinkBackboneMixin, ModelMixin, ConfigMixin, AttentionMixin, PeftAdapterMixin):
    """The frozen video generator of AV-Link (paper scale by default: 24 blocks, width 1024, RGB pixels).

    Input `(B, C, F, H, W)` at `frame_rate` frames per second, in pixel space scaled to [-1, 1] (or a
    latent space: `in_channels` is config). Patches are `patch_size = (frames, rows, columns)`; sizes
    that are not multiples are padded and cropped again, so any frame count and resolution runs.

    Args:
        in_channels: channels per pixel (3 for RGB).
        out_channels: output channels (defaults to `in_channels`).
        patch_size: (t, h, w) patch; the paper uses 2x2 spatial patches of single frames.
        frame_rate: frames per second of the input (6 in the paper).
        num_layers, hidden_size, num_attention_heads, mlp_dim, text_dim, qk_norm, eps, rope_theta: as
            for `AVLinkAudioTransformer`.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int | None = None,
        patch_size: tuple[int, int, int] = (1, 2, 2),
        frame_rate: float = 6.0,
        num_layers: int = 24,
        hidden_size: int = 1024,
        num_attention_heads: int = 16,
        mlp_dim: int = 4096,
        text_dim: int = 4096,
        qk_norm: bool = True,
        eps: float = 1e-6,
        rope_theta: float = 10000.0,
    ):
        super().__init__()
        patch_size = tuple(int(p) for p in patch_size)
        if len(patch_size) != 3 or min(patch_size) < 1:
            raise ValueError(f"patch_size must be three positive ints (t, h, w), got {patch_size}")
        self.register_to_config(patch_size=list(patch_size))  # JSON round trips give lists
        if in_channels < 1 or frame_rate <= 0:
            raise ValueError(f"in_channels and frame_rate must be positive, got {in_channels} and {frame_rate}")
        self.out_channels = out_channels or in_channels
        self._build_trunk(num_layers, hidden_size, num_attention_heads, mlp_dim, text_dim, qk_norm, eps)
        self.rope_dims = split_head_dim_3d(self.head_dim)
        patch_dim = patch_size[0] * patch_size[1] * patch_size[2]
        self.proj_in = nn.Linear(in_channels * patch_dim, hidden_size)
        self.proj_out = nn.Linear(hidden_size, self.out_channels * patch_dim)

    @property
    def tokens_per_second(self) -> float:
        """Token *frames* per second (each holds H/ph x W/pw tokens)."""
        return self.config.frame_rate / self.config.patch_size[0]

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != self.config.in_channels or 0 in x.shape[2:]:
            raise ValueError(
                f"video input must be (batch, {self.config.in_channels}, frames, height, width) with no empty axis, got {tuple(x.shape)}"
            )

    def _patchify(self, x: torch.Tensor):
        b, c, f, h, w = x.shape
        pt, ph, pw = self.config.patch_size
        x = F.pad(x, (0, -w % pw, 0, -h % ph, 0, -f % pt))
        nf, nh, nw = x.shape[2] // pt, x.shape[3] // ph, x.shape[4] // pw
        x = x.reshape(b, c, nf, pt, nh, ph, nw, pw).permute(0, 2, 4, 6, 1, 3, 5, 7)
        tokens = self.proj_in(x.reshape(b, nf * nh * nw, -1))
        grid = torch.stack(
            torch.meshgrid(*(torch.arange(n, device=x.device, dtype=torch.float64) for n in (nf, nh, nw)), indexing="ij"), dim=-1
        ).reshape(-1, 3)
        return tokens, grid, grid[:, 0] / self.tokens_per_second, (f, h, w, nf, nh, nw)

    def _rope(self, positions: torch.Tensor):
        return rope_nd(positions, self.rope_dims, self.config.rope_theta)

    def _unpatchify(self, tokens: torch.Tensor, layout) -> torch.Tensor:
        f, h, w, nf, nh, nw = layout
        pt, ph, pw = self.config.patch_size
        b, c = tokens.shape[0], self.out_channels
        x = tokens.reshape(b, nf, nh, nw, c, pt, ph, pw).permute(0, 4, 1, 5, 2, 6, 3, 7)
        return x.reshape(b, c, nf * pt, nh * ph, nw * pw)[:, :, :f, :h, :w]
