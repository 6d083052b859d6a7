"""The paper's alternatives to Fusion Blocks (Table 2), as the links an `AVLinkFusionAdapter` can hold instead.

- `DirectAlignment` ("direct alignment"): at each fusion point the other modality's features, brought to this
  modality's token times, go through one linear map and are added to this stream. Zero-initialised, so an untrained
  link leaves the backbones unchanged.
- `ConcatToText` ("concat to text"): the conditioning backbone's features after one block, one token per instant,
  projected to the generated backbone's width and appended to its (already projected) text tokens, which every
  block cross-attends. The appended tokens take attention weight from the first step, so this link is not the
  identity when untrained (as in the paper, whose variant has no gate either).

- `SyncFlowAdaptor` (SyncFlow's modality adaptor): video features -> extra cross-attention context of the audio
  tower, per linked layer.
- `GlobalConditioning` (not in either paper; MMAudio's global conditioning): the conditioning features averaged over
  the whole input, through a zero-initialised MLP, added to the generated backbone's flow-time embedding, which every
  block's adaLN and the output layer read: a clip-level pathway beside the token-level links.

Direct alignment and CMC-PE need the features of one modality at the other's token times: `time_pooling` averages the source tokens of
each instant (a video frame's spatial tokens, or one audio token), then gives every destination instant the mean of
the source instants inside its interval [its time, the next destination time), or, when the source is sparser and
none falls inside, the latest source instant at or before it (the first one before any). Audio -> video pools the
audio of a frame's interval; video -> audio holds each frame over the audio tokens it covers.
"""

import torch
from torch import nn


def instants(seconds: torch.Tensor):
    """Distinct token times (K,) and each token's index among them (L,)."""
    return torch.unique(seconds, sorted=True, return_inverse=True)


def time_pooling(source_seconds: torch.Tensor, destination_seconds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(K_dst, L_src) weights from source tokens to destination instants, and each destination token's instant (L_dst,).

    `pooled = weights @ source_tokens` then `pooled[:, index]` gives every destination token its aligned features."""
    src_times, src_index = instants(source_seconds.double())
    dst_times, dst_index = instants(destination_seconds.double())
    # source token -> source instant: the instant's mean
    counts = torch.bincount(src_index, minlength=len(src_times)).double()
    token_mean = torch.zeros(len(src_times), len(source_seconds), dtype=torch.float64, device=source_seconds.device)
    token_mean[src_index, torch.arange(len(source_seconds), device=source_seconds.device)] = 1.0 / counts[src_index]
    # source instant -> destination instant: the ones inside its interval, else the latest one before (held)
    interval = (torch.searchsorted(dst_times, src_times, right=True) - 1).clamp(min=0)
    inside = torch.zeros(len(dst_times), len(src_times), dtype=torch.float64, device=source_seconds.device)
    inside[interval, torch.arange(len(src_times), device=source_seconds.device)] = 1.0
    held = (torch.searchsorted(src_times, dst_times, right=True) - 1).clamp(min=0)
    empty = inside.sum(1) == 0
    inside[empty, held[empty]] = 1.0
    instant_weights = inside / inside.sum(1, keepdim=True)
    return instant_weights @ token_mean, dst_index


def align(source: torch.Tensor, source_seconds: torch.Tensor, destination_seconds: torch.Tensor) -> torch.Tensor:
    """`source (B, L_src, D)` at the destination's tokens: (B, L_dst, D)."""
    weights, index = time_pooling(source_seconds, destination_seconds)
    return (weights.to(source.dtype) @ source)[:, index]


def _connector(in_dim: int, out_dim: int, mlp: bool, eps: float) -> nn.Module:
    """A linear map, or LayerNorm -> Linear -> GELU -> Linear; the last layer zero, so it starts at the identity."""
    layers = [nn.LayerNorm(in_dim, eps=eps), nn.Linear(in_dim, out_dim), nn.GELU(approximate="tanh"),
              nn.Linear(out_dim, out_dim)] if mlp else [nn.Linear(in_dim, out_dim)]
    nn.init.zeros_(layers[-1].weight)
    nn.init.zeros_(layers[-1].bias)
    return nn.Sequential(*layers)


class DirectAlignment(nn.Module):
    """One fusion point of time-aligned addition: the other modality's features at this modality's token times,
    through a connector, added. Direct alignment (AV-Link's ablation): linear connectors. CMC-PE (Ishii et al.
    2024): MLP connectors, the audio added to the video "as a positional encoding", and (our choice, where the
    summary leaves the audio side open) the video to the audio the same way. Zero-initialised both ways."""

    def __init__(self, audio_dim: int, video_dim: int, mlp: bool = False, eps: float = 1e-6):
        super().__init__()
        self.audio_from_video = _connector(video_dim, audio_dim, mlp, eps)
        self.video_from_audio = _connector(audio_dim, video_dim, mlp, eps)

    def forward(self, audio, video, audio_seconds, video_seconds, into_audio: bool = True, into_video: bool = True):
        # both updates read the inputs, so neither direction sees the other's result at this point
        new_audio = audio + self.audio_from_video(align(video, video_seconds, audio_seconds)) if into_audio else audio
        new_video = video + self.video_from_audio(align(audio, audio_seconds, video_seconds)) if into_video else video
        return new_audio, new_video


class ConcatToText(nn.Module):
    """Conditioning features -> extra text tokens of the generated backbone (one per conditioning instant)."""

    def __init__(self, conditioning_dim: int, generated_dim: int, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(conditioning_dim, eps=eps)
        self.proj = nn.Linear(conditioning_dim, generated_dim)

    def forward(self, features: torch.Tensor, seconds: torch.Tensor) -> torch.Tensor:
        """(B, L, D_cond) tokens at `seconds` (L,) -> (B, K, D_gen), one token per distinct instant."""
        times, index = instants(seconds)
        weights = torch.zeros(len(times), len(seconds), dtype=features.dtype, device=features.device)
        weights[index, torch.arange(len(seconds), device=features.device)] = 1.0
        pooled = (weights / weights.sum(1, keepdim=True)) @ features
        return self.proj(self.norm(pooled))


class GlobalConditioning(nn.Module):
    """Conditioning features (B, L, D_cond) -> (B, D_gen) offset of the generated backbone's time embedding.

    Token-wise links move what a sound is like only near the tokens they attend to; what holds for a whole clip (the
    object that is struck, so the kind of sound) is what a DiT takes through adaLN, as it takes a class label. The
    mean over every token does not depend on the input's length; the last layer is zero, so an untrained pathway
    leaves the generated backbone unchanged."""

    def __init__(self, conditioning_dim: int, generated_dim: int, eps: float = 1e-6):
        super().__init__()
        self.mlp = _connector(conditioning_dim, generated_dim, mlp=True, eps=eps)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features.mean(1))


class SyncFlowAdaptor(nn.Module):
    """SyncFlow's modality adaptor (Liu et al. 2024, Fig. 2) at one linked layer: the video tower's features through
    multi-head self-attention, LayerNorm and a linear map to the audio width, then the audio's flow-time embedding
    appended as one more token: the context the audio tower's cross-attention reads (beside its text, in av-link's
    backbones). Video to audio only, as in the paper; not the identity when untrained (the paper trains the audio
    tower with it)."""

    def __init__(self, video_dim: int, audio_dim: int, num_heads: int, eps: float = 1e-6):
        super().__init__()
        from .attention import AVLinkAttention

        self.attn = AVLinkAttention(video_dim, num_heads, qk_norm=True, eps=eps)
        self.norm = nn.LayerNorm(video_dim, eps=eps)
        self.proj = nn.Linear(video_dim, audio_dim)

    def forward(self, video: torch.Tensor, audio_time_embedding: torch.Tensor) -> torch.Tensor:
        """(B, Lv, Dv) video features, (B, Da) audio time embedding -> (B, Lv + 1, Da) context tokens."""
        tokens = self.proj(self.norm(video + self.attn(video)))
        return torch.cat([tokens, audio_time_embedding[:, None].to(tokens.dtype)], dim=1)
