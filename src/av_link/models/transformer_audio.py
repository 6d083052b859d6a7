"""Text-to-audio DiT over a 1D sequence of mel (or latent) frames, with 1D RoPE over time."""

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.attention import AttentionMixin
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from .backbone import AVLinkBackboneMixin
from .rope import rope_1d


class AVLinkAudioTransformer(AVLinkBackboneMixin, ModelMixin, ConfigMixin, AttentionMixin, PeftAdapterMixin):
    """The frozen audio generator of AV-Link (paper scale by default: 24 blocks, width 1024, 576M parameters).

    Input `(B, T, in_channels)`: T frames of a mel spectrogram (or of an audio latent) at
    `frame_rate` frames per second. Every `patch_size` consecutive frames form one token; T need not
    be a multiple of it (the tail is padded and cropped again). Output: the velocity, same shape.

    Args:
        in_channels: features per frame (80 mel bins by default).
        out_channels: output features per frame (defaults to `in_channels`).
        patch_size: frames per token.
        frame_rate: input frames per second (22050 / 256 for the HiFi-GAN mel front end); gives every
            token its time in seconds for the Fusion Blocks.
        num_layers, hidden_size, num_attention_heads, mlp_dim: DiT size.
        text_dim: width of the text encoder's hidden states (4096 for T5-XXL).
        qk_norm: RMS-normalise queries and keys per head.
        rope_theta: RoPE base.
        mlp_conv_kernel: 1 (default) for plain MLPs; an odd k >= 3 adds a depthwise convolution of width k over
            neighbouring tokens inside every block's MLP (`attention.ConvFeedForward`).
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 80,
        out_channels: int | None = None,
        patch_size: int = 1,
        frame_rate: float = 22050 / 256,
        num_layers: int = 24,
        hidden_size: int = 1024,
        num_attention_heads: int = 16,
        mlp_dim: int = 4096,
        text_dim: int = 4096,
        qk_norm: bool = True,
        eps: float = 1e-6,
        rope_theta: float = 10000.0,
        mlp_conv_kernel: int = 1,
    ):
        super().__init__()
        if patch_size < 1 or in_channels < 1:
            raise ValueError(f"patch_size and in_channels must be positive, got {patch_size} and {in_channels}")
        if frame_rate <= 0:
            raise ValueError(f"frame_rate must be positive, got {frame_rate}")
        self.out_channels = out_channels or in_channels
        self._build_trunk(num_layers, hidden_size, num_attention_heads, mlp_dim, text_dim, qk_norm, eps, mlp_conv_kernel)
        self.proj_in = nn.Linear(in_channels * patch_size, hidden_size)
        self.proj_out = nn.Linear(hidden_size, self.out_channels * patch_size)

    @property
    def tokens_per_second(self) -> float:
        return self.config.frame_rate / self.config.patch_size

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 3 or x.shape[-1] != self.config.in_channels or x.shape[1] == 0:
            raise ValueError(f"audio input must be (batch, frames>0, {self.config.in_channels}), got {tuple(x.shape)}")

    def _patchify(self, x: torch.Tensor):
        batch, frames, _ = x.shape
        p = self.config.patch_size
        x = F.pad(x, (0, 0, 0, -frames % p))
        tokens = self.proj_in(x.reshape(batch, -1, p * x.shape[-1]))
        index = torch.arange(tokens.shape[1], device=x.device, dtype=torch.float64)
        return tokens, index[:, None], index / self.tokens_per_second, frames

    def _rope(self, positions: torch.Tensor):
        return rope_1d(positions[:, 0], self.head_dim, self.config.rope_theta)

    def _unpatchify(self, tokens: torch.Tensor, frames: int) -> torch.Tensor:
        return tokens.reshape(tokens.shape[0], -1, self.out_channels)[:, :frames]
