"""Rotary position embeddings over real-valued positions.

Positions are floats so that the same code serves integer token grids (the backbones) and
positions measured in seconds (the Fusion Blocks' time-aligned RoPE).
"""

import torch
from diffusers.models.embeddings import get_1d_rotary_pos_embed


def rope_1d(positions: torch.Tensor, head_dim: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables `(L, head_dim)` for float positions `(L,)`; float64 angles keep long clips exact."""
    cos, sin = get_1d_rotary_pos_embed(head_dim, positions.double(), theta=theta, use_real=True, freqs_dtype=torch.float64)
    return cos, sin


def rope_nd(positions: torch.Tensor, dims: tuple[int, ...], theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Axis-factorised RoPE: `positions (L, n_axes)`, `dims` the per-axis share of the head width.

    Each axis rotates its own slice of channels, so e.g. the video's (frame, row, column) grid
    gets 3D RoPE whose frame slice behaves like 1D RoPE over time.
    """
    tables = [rope_1d(positions[:, i], d, theta) for i, d in enumerate(dims)]
    return torch.cat([c for c, _ in tables], dim=-1), torch.cat([s for _, s in tables], dim=-1)


def split_head_dim_3d(head_dim: int) -> tuple[int, int, int]:
    """Channel split (time, height, width) of a head for 3D RoPE; every part even."""
    spatial = 2 * (head_dim // 6)
    temporal = head_dim - 2 * spatial
    if temporal <= 0 or temporal % 2 or spatial == 0:
        raise ValueError(f"attention head dim {head_dim} is too small or odd for 3D RoPE (need an even size >= 6)")
    return temporal, spatial, spatial
