"""av-link's own backbones: audio on normalised log-mel (`audio_frontend`, `vocoder`), video on pixels."""

import math

import torch

from ..models.transformer_audio import AVLinkAudioTransformer
from ..models.transformer_video import AVLinkVideoTransformer
from ..utils.chunked_vocoding import chunk_sizes, vocode_in_chunks
from .families import AudioFamily, VideoFamily, backbone_family


class AVLinkTextMixin:
    """The shared `text_encoder` (T5 or any transformers encoder): hidden states and the token mask. Masked tokens
    change nothing in av-link's attention, so texts of any lengths share a batch."""

    text_padding_neutral = True

    @property
    def text_dim(self) -> int:
        return self.transformer.config.text_dim

    def encode_text(self, prompts, device, max_sequence_length):
        tokens = self.tokenizer(prompts, padding="longest", truncation=True, return_tensors="pt", max_length=max_sequence_length)
        mask = tokens.attention_mask.to(device)
        hidden = self.text_encoder(tokens.input_ids.to(device), attention_mask=mask).last_hidden_state
        return hidden, mask.bool()

    @property
    def backbone(self):
        return self.transformer

    @property
    def frame_rate(self) -> float:
        return float(self.transformer.config.frame_rate)


@backbone_family(AVLinkAudioTransformer)
class AVLinkAudioFamily(AVLinkTextMixin, AudioFamily):
    """`AVLinkAudioTransformer` on normalised log-mel frames `(B, T, n_mels)` of `audio_frontend`; `vocoder` makes them
    a waveform."""

    @property
    def frontend(self):
        return self.pipe.audio_frontend

    def problems(self) -> list[str]:
        if self.frontend is None:
            return ["the audio backbone (AVLinkAudioTransformer) works on mel spectrograms: pass audio_frontend "
                    "(an AVLinkMelSpectrogram)"]
        vocoder = getattr(self.pipe, "vocoder", None)
        if vocoder is not None and getattr(vocoder.config, "sampling_rate", None) != self.sample_rate:
            return [f"the vocoder runs at {getattr(vocoder.config, 'sampling_rate', None)} Hz but the audio front end at "
                    f"{self.sample_rate} Hz: they must match"]
        return super().problems()

    @property
    def sample_rate(self) -> int:
        return int(self.frontend.config.sample_rate)

    @property
    def min_samples(self) -> int:
        return self.frontend.config.hop_length

    def latent_shape(self, batch, frames):
        return (batch, frames, self.transformer.config.in_channels)

    def num_tokens(self, frames):
        return math.ceil(frames / self.transformer.config.patch_size)

    def encode(self, waveform):
        return self.frontend.normalize(self.frontend(waveform.to(self.frontend.device)))

    def decode(self, latents):
        vocoder, config = self.pipe.vocoder, self.frontend.config
        mel = self.frontend.denormalize(latents.float()).to(vocoder.dtype)
        if getattr(vocoder, "vocodes_in_chunks", False):  # Griffin-Lim: chunks itself, carrying its phase over
            return vocoder(mel)
        # neural vocoders: in chunks with context, so memory stays flat in the output's length
        as_rows = lambda w: w[None] if w.ndim == 1 else w  # noqa: E731
        return vocode_in_chunks(lambda lo, hi: as_rows(vocoder(mel[:, lo:hi])), mel.shape[1], config.hop_length,
                                *chunk_sizes(config.sample_rate / config.hop_length))

    def conditioning_padding(self, signal, shape):
        return self.frontend.normalize(torch.full(shape, self.frontend.silence_level)).to(signal)

    def check_output(self, output_type):
        if output_type != "latent" and getattr(self.pipe, "vocoder", None) is None:
            raise ValueError("this pipeline has no vocoder: load one (or a GriffinLimVocoder), or use output_type='latent'")


@backbone_family(AVLinkVideoTransformer)
class AVLinkVideoFamily(AVLinkTextMixin, VideoFamily):
    """`AVLinkVideoTransformer` on pixels `(B, 3, F, H, W)` in [-1, 1] at its `frame_rate`."""

    @property
    def fps(self) -> float:
        return self.frame_rate

    def problems(self) -> list[str]:
        fps = self.pipe.config.get("video_fps")
        if fps is not None and fps != self.frame_rate:
            return [f"video_fps={fps} disagrees with the video backbone's frame_rate {self.frame_rate} (leave it unset)"]
        return super().problems()

    def latent_shape(self, batch, frames):
        return (batch, self.transformer.config.in_channels, frames, self.pipe.config.height, self.pipe.config.width)

    def num_tokens(self, frames):
        patch = self.transformer.config.patch_size
        config = self.pipe.config
        return math.ceil(frames / patch[0]) * math.ceil(config.height / patch[1]) * math.ceil(config.width / patch[2])

    def encode(self, pixels):
        return pixels

    def decode(self, latents):
        return latents

    def conditioning_padding(self, signal, shape):
        return signal[:, :, -1:].expand(shape)  # the last frame held still
