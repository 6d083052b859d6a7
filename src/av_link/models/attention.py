"""Multi-head attention with QK-norm, RoPE, key padding masks and logit biases, in diffusers' form.

An attention module holds the weights (`to_q`, `to_k`, `to_v`, `to_out`, `norm_q`, `norm_k`: these names
are state-dict keys) and a processor computes attention with them through `dispatch_attention_fn`. So, as
for diffusers' own models, `set_attention_backend`, `attn_processors` / `set_attn_processor`, QKV fusion
and PEFT LoRA on the projections apply.
"""

import torch
from diffusers.models.attention import AttentionModuleMixin
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.embeddings import apply_rotary_emb
from diffusers.models.normalization import RMSNorm
from torch import nn


def _projections(attn: "AVLinkAttention", hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None):
    """q, k, v (B, L, H * Dh), through the fused projections when `fuse_qkv_projections()` made them."""
    if attn.fused_projections and attn.is_cross_attention and encoder_hidden_states is not None:
        return (attn.to_q(hidden_states), *attn.to_kv(encoder_hidden_states).chunk(2, dim=-1))
    if attn.fused_projections and not attn.is_cross_attention and encoder_hidden_states is None:
        return attn.to_qkv(hidden_states).chunk(3, dim=-1)
    # Unfused, or a self-attention module given a separate context (the Fusion Block's one-sided queries).
    context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
    return attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)


def rotate(x: torch.Tensor, rotary_emb: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """RoPE on `x (B, L, H, Dh)` from `(cos, sin)` tables `(L, Dh)` whose adjacent channel pairs share a frequency
    (`rope.rope_1d` / `rope_nd`), through diffusers' complex-valued path: one complex product per pair, the same values
    as its real-valued path (cos/sin unbind, stack) and ~5x faster on a CPU, where RoPE took 7% of a V2A step."""
    cos, sin = rotary_emb
    return apply_rotary_emb(x, torch.complex(cos[:, 0::2].float(), sin[:, 0::2].float())[None], use_real=False)


def combine_masks(key_mask: torch.Tensor | None, bias: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """One SDPA mask from a `(B, Lk)` boolean key mask (True = attend) and/or an `(H, Lq, Lk)` logit bias.

    Both go 4D: a key mask (B, 1, 1, Lk), as only some backends reshape a 2D one and SDPA would misread it; a
    bias (1, H, Lq, Lk), as torch's CPU SDPA sends a 3D mask to its math path (4.5x slower at 427 tokens)."""
    mask = None if key_mask is None else key_mask[:, None, None, :]
    if bias is None:
        return mask
    bias = bias.to(dtype)[None]
    return bias if mask is None else bias.masked_fill(~mask, float("-inf"))


class AVLinkAttnProcessor:
    """Projections, per-head QK-norm, RoPE, then attention by the module's backend (torch SDPA by default)."""

    _attention_backend = None  # set by `set_attention_backend`; None: diffusers' active backend (torch SDPA)

    def __call__(
        self,
        attn: "AVLinkAttention",
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        key_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        query, key, value = _projections(attn, hidden_states, encoder_hidden_states)
        query = attn.norm_q(query.unflatten(-1, (attn.heads, -1)))  # (B, L, H, Dh): dispatch_attention_fn's layout
        key = attn.norm_k(key.unflatten(-1, (attn.heads, -1)))
        value = value.unflatten(-1, (attn.heads, -1))
        if rotary_emb is not None:
            query = rotate(query, rotary_emb)
        key_rotary_emb = rotary_emb if key_rotary_emb is None else key_rotary_emb
        if key_rotary_emb is not None:
            key = rotate(key, key_rotary_emb)
        mask = combine_masks(attention_mask, attention_bias, query.dtype)
        out = dispatch_attention_fn(query, key, value, attn_mask=mask, backend=self._attention_backend)
        return attn.to_out(out.flatten(2).type_as(query))


class AVLinkAttention(nn.Module, AttentionModuleMixin):
    """Self- or cross-attention; QK-norm (RMSNorm per head) keeps logits bounded in bf16, as in the paper's backbones.

    `forward(hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None, key_rotary_emb=None,
    attention_bias=None)`: keys/values come from `encoder_hidden_states` when given; `rotary_emb` (cos, sin) rotates
    the queries, and the keys too unless `key_rotary_emb` is given for them (queries that are a subset of the
    context); `attention_mask` (B, Lk) is a boolean key mask (True = attend); `attention_bias` (H, Lq, Lk) is added
    to the logits.
    """

    _default_processor_cls = AVLinkAttnProcessor
    _available_processors = [AVLinkAttnProcessor]

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None, qk_norm: bool = True, eps: float = 1e-6,
                 is_cross_attention: bool = False, processor=None):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden size {dim} is not divisible by num_heads={num_heads}")
        self.heads = num_heads
        self.head_dim = dim // num_heads
        self.is_cross_attention = is_cross_attention  # what `fuse_projections` fuses: k/v only, or q/k/v
        self.use_bias = True
        kv_dim = context_dim or dim
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(kv_dim, dim)
        self.to_v = nn.Linear(kv_dim, dim)
        self.to_out = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(self.head_dim, eps=eps) if qk_norm else nn.Identity()
        self.norm_k = RMSNorm(self.head_dim, eps=eps) if qk_norm else nn.Identity()
        self.set_processor(processor or self._default_processor_cls())

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        key_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_bias: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        return self.processor(self, hidden_states, encoder_hidden_states, attention_mask, rotary_emb,
                              key_rotary_emb=key_rotary_emb, attention_bias=attention_bias, **kwargs)


class FeedForward(nn.Sequential):
    """Two-layer GELU(tanh) MLP; `out_dim` lets the Fusion Block project back to a modality's width."""

    def __init__(self, dim: int, hidden_dim: int, out_dim: int | None = None):
        super().__init__(nn.Linear(dim, hidden_dim), nn.GELU(approximate="tanh"), nn.Linear(hidden_dim, out_dim or dim))


class TemporalConv(nn.Conv1d):
    """Depthwise convolution along a `(B, L, C)` token sequence, initialised as the identity."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        with torch.no_grad():  # every channel passes its own token through: weight (C, 1, k) = 1 at the centre tap
            self.weight.zero_()[:, 0, kernel_size // 2] = 1.0
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class ConvFeedForward(nn.Sequential):
    """FeedForward with a depthwise convolution over neighbouring tokens after its first layer (FastSpeech's and
    MMAudio's conv MLPs for spectrogram frames): for a 1D token sequence in time, it ties each token's output to its
    neighbours', so the frame-to-frame detail of a decay is learned locally. Submodules 0 and 3 are FeedForward's
    0 and 2, so LoRA target names stay the same pattern."""

    def __init__(self, dim: int, hidden_dim: int, kernel_size: int):
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"mlp_conv_kernel must be 1 (no convolution) or an odd number >= 3, got {kernel_size}")
        super().__init__(nn.Linear(dim, hidden_dim), TemporalConv(hidden_dim, kernel_size), nn.GELU(approximate="tanh"),
                         nn.Linear(hidden_dim, dim))
