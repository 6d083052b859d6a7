"""diffusers' LongCat-AudioDiT (`LongCatAudioDiTTransformer` + `LongCatAudioDiTVae` + UMT5) in av-link's pipelines, in
its latent space."""

import math
from types import SimpleNamespace

import torch
from diffusers import LongCatAudioDiTPipeline, LongCatAudioDiTTransformer, LongCatAudioDiTVae
from diffusers.pipelines.longcat_audio_dit.pipeline_longcat_audio_dit import _normalize_text

from ..models.backbone_longcat import LongCatBackbone, check_downsampling_ratio
from .families import AudioFamily, LatentFamily, backbone_family


@backbone_family(LongCatAudioDiTTransformer)
class LongCatFamily(LatentFamily, AudioFamily):
    """LongCat on `LongCatAudioDiTVae` latents `(B, L, latent_dim)`, one per `downsampling_ratio` samples, as
    `LongCatAudioDiTPipeline` runs it.

    - Codec: a waveform is zero-padded to whole latents and encoded by `audio_vae` to its posterior mean (a
      conditioning input is not resampled); decoding is the VAE's, as in LongCat's pipeline. Generated audio gets
      the latents that cover its seconds and is cut to them.
    - Text: `LongCatAudioDiTPipeline`'s own encoding (normalised prompts, layer-normed UMT5 states plus the
      embedding layer's, the token mask). Without a negative prompt the unconditional branch is
      `zeros_like(prompt_embeds)` with the prompt's mask, LongCat's rule. LongCat's text convolution sees padded
      tokens, so branches of different text lengths run as separate batches.
    """

    vae_class = LongCatAudioDiTVae

    @property
    def sampling_dtype(self) -> torch.dtype:
        return self.text_encoder.dtype  # LongCatAudioDiTPipeline samples in its prompt states' dtype

    @property
    def latent_widths(self):
        return self.vae.config.latent_dim, self.transformer.config.latent_dim

    def problems(self) -> list[str]:
        problems = super().problems()
        if problems:
            return problems
        try:
            check_downsampling_ratio(self.vae)
        except ValueError as error:
            return [str(error)]
        return []

    @property
    def backbone(self) -> LongCatBackbone:
        return LongCatBackbone.from_vae(self.transformer, self.vae)

    @property
    def sample_rate(self) -> int:
        return int(self.vae.config.sample_rate)

    @property
    def ratio(self) -> int:
        return self.vae.config.downsampling_ratio

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.ratio

    def num_frames(self, seconds):
        return max(1, math.ceil(round(seconds * self.sample_rate) / self.ratio))  # every sample of the output covered

    def latent_shape(self, batch, frames):
        return (batch, frames, self.transformer.config.latent_dim)

    def num_tokens(self, frames):
        return frames

    @property
    def text_dim(self) -> int:
        return self.transformer.config.dit_text_dim

    def encode_text(self, prompts, device, max_sequence_length):
        # LongCatAudioDiTPipeline's own text encoding (its `max_length` is the tokenizer's), on this pipeline's encoder;
        # the two flags are constants its __init__ sets
        holder = SimpleNamespace(tokenizer=self.tokenizer, text_encoder=self.text_encoder, text_norm_feat=True, text_add_embed=True)
        embeds, lengths = LongCatAudioDiTPipeline.encode_prompt(holder, [_normalize_text(p) for p in prompts], device)
        return embeds, torch.arange(embeds.shape[1], device=device)[None] < lengths[:, None]

    def unconditional_text(self, prompt_embeds, prompt_attention_mask):
        return torch.zeros_like(prompt_embeds), prompt_attention_mask

    def encode(self, waveform):
        samples = waveform.shape[-1]
        waveform = torch.nn.functional.pad(waveform, (0, -samples % self.ratio))
        latents = self.vae.encode(waveform[:, None].to(self.vae.device, self.vae.dtype), sample_posterior=False).latents
        return latents.transpose(1, 2)

    def decode(self, latents):
        return self.vae.decode(latents.transpose(1, 2).to(self.vae.device, self.vae.dtype)).sample[:, 0]

    def conditioning_padding(self, signal, shape):
        silence = torch.zeros(shape[0], shape[1] * self.ratio, device=signal.device)
        return self.encode(silence).to(signal)
