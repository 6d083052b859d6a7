"""diffusers' Wan 2.1 (`WanTransformer3DModel` + `AutoencoderKLWan` + UMT5) in av-link's pipelines, in its latent space."""

from types import SimpleNamespace

import torch
from diffusers import AutoencoderKLWan, WanPipeline, WanTransformer3DModel

from ..models.backbone_wan import WanBackbone
from .families import LatentFamily, VideoFamily, backbone_family


@backbone_family(WanTransformer3DModel)
class WanFamily(LatentFamily, VideoFamily):
    """Wan on normalised `AutoencoderKLWan` latents `(B, C, 1 + (F - 1) / 4, H / 8, W / 8)`, as `WanPipeline` runs it.

    - Codec: pixels are encoded by `video_vae` (the posterior's mode: a conditioning input is not resampled) and
      normalised with its `latents_mean` / `latents_std`, the inverse of what `WanPipeline` decodes with. The VAE is
      causal with 4x in time, so a video of F frames is first padded (last frame held) to the next 1 + 4k frames.
    - Text: `WanPipeline`'s own encoding (cleaned prompts, UMT5 states zero-padded to `max_sequence_length`, 512 by
      default, no mask); the unconditional branch is the negative prompt's, "" by default.
    - Frame rate: no Wan config holds the pixel fps, so the pipeline config's `video_fps` does (16 for Wan 2.1).

    Windows over latents (inputs longer than `clip_seconds`) treat latent frames as uniform at fps / 4: a window that
    starts at latent k > 0 places that latent, which covers 4 pixel frames, as Wan places a first frame (3 frames
    early); the ramped blend gives window edges little weight.
    """

    vae_class = AutoencoderKLWan
    sampling_dtype = torch.float32  # WanPipeline draws and steps float32 latents whatever the transformer's dtype
    default_config = dict(video_fps=16.0, height=480, width=832, max_sequence_length=512)  # Wan 2.1 T2V at 480p

    @property
    def latent_widths(self):
        return self.vae.config.z_dim, self.transformer.config.in_channels

    def problems(self) -> list[str]:
        problems = super().problems()
        if problems:
            return problems
        if not self.pipe.config.get("video_fps"):
            return ["a Wan video backbone needs the pipeline's video_fps (its pixel frame rate, 16 for Wan 2.1): no Wan config holds it"]
        return self.pixel_problems(self.vae.config.scale_factor_spatial * self.transformer.config.patch_size[1])

    @property
    def backbone(self) -> WanBackbone:
        return WanBackbone.from_vae(self.transformer, self.vae, fps=self.fps)

    @property
    def fps(self) -> float:
        return float(self.pipe.config.video_fps)

    @property
    def temporal(self) -> int:
        return self.vae.config.scale_factor_temporal

    @property
    def frame_rate(self) -> float:
        return self.fps / self.temporal

    def latent_frames(self, pixel_frames: int) -> int:
        return (pixel_frames - 2) // self.temporal + 2  # 1 + ceil((F - 1) / 4): the VAE is causal

    def num_frames(self, seconds):
        return self.latent_frames(max(1, round(seconds * self.fps)))

    def latent_shape(self, batch, frames):
        spatial = self.vae.config.scale_factor_spatial
        return (batch, self.transformer.config.in_channels, frames, self.pipe.config.height // spatial,
                self.pipe.config.width // spatial)

    def num_tokens(self, frames):
        _, _, _, height, width = self.latent_shape(1, frames)
        pt, ph, pw = self.transformer.config.patch_size
        return frames // pt * (height // ph) * (width // pw)

    @property
    def text_dim(self) -> int:
        return self.transformer.config.text_dim

    def encode_text(self, prompts, device, max_sequence_length):
        # WanPipeline's own text encoding, run on this pipeline's text encoder and tokenizer
        holder = SimpleNamespace(tokenizer=self.tokenizer, text_encoder=self.text_encoder, _execution_device=device)
        embeds = WanPipeline._get_t5_prompt_embeds(holder, prompts, max_sequence_length=max_sequence_length, device=device,
                                                   dtype=self.transformer.dtype)
        return embeds, None

    def _normalisation(self, latents):
        config = self.vae.config
        shape = (1, config.z_dim, 1, 1, 1)
        mean = torch.tensor(config.latents_mean).view(shape).to(latents.device, latents.dtype)
        std = torch.tensor(config.latents_std).view(shape).to(latents.device, latents.dtype)
        return mean, std

    def encode(self, pixels):
        frames = pixels.shape[2]
        padded = 1 + self.temporal * (self.latent_frames(frames) - 1)
        pixels = torch.cat([pixels, pixels[:, :, -1:].expand(-1, -1, padded - frames, -1, -1)], dim=2)
        latents = self.vae.encode(pixels.to(self.vae.device, self.vae.dtype)).latent_dist.mode()
        mean, std = self._normalisation(latents)
        return (latents - mean) / std

    def decode(self, latents):
        latents = latents.to(self.vae.device, self.vae.dtype)
        mean, std = self._normalisation(latents)
        return self.vae.decode(latents * std + mean, return_dict=False)[0]

    def conditioning_padding(self, signal, shape):
        return signal[:, :, -1:].expand(shape)  # the last latent frame held
