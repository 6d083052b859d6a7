"""Backbone families: what a pipeline needs of one modality's backbone besides the model.

A family stands for one kind of backbone (av-link's own audio DiT on mel, diffusers' LongCat-AudioDiT on its VAE's
latents, ...) and gives, over the pipeline's components:
- its codec: the user's signal (mono waveform, pixels in [-1, 1]) <-> the backbone's space (normalised mel, VAE
  latents), the model-space frame rate, and what pads a conditioning input past its end;
- its text encoding and unconditional-text rule, as the backbone's own pipeline has them;
- the model behind av-link's backbone interface (models/backbone_views.py), with the token clock the codec implies.

Pipelines pick a modality's family from the class of its transformer (`family_for`), so one V2A and one A2V class
run av-link's own backbones and diffusers' Wan / LongCat alike. A family is a runtime object read from the
components, not a component: nothing of it is saved.

Adding a family (LTX-Video, Stable Audio 3) is one file: an `AudioFamily` or `VideoFamily` subclass decorated with
`@backbone_family(ItsTransformerClass)`, imported in pipelines/__init__.py, beside its view in models/.
"""

import torch
from diffusers.video_processor import VideoProcessor

from .inputs import prepare_audio, prepare_video

FAMILIES: dict[type, type] = {}  # transformer class -> its family


def backbone_family(transformer_class: type):
    """Class decorator: `family_class` is how pipelines run `transformer_class` (and its subclasses)."""

    def register(family_class):
        FAMILIES[transformer_class] = family_class
        return family_class

    return register


def family_class(transformer) -> type | None:
    return next((FAMILIES[c] for c in type(transformer).__mro__ if c in FAMILIES), None)


def family_for(pipe, modality: str) -> "BackboneFamily":
    """The family of `pipe`'s `{modality}_transformer`; a ValueError when it has none or is the other modality's."""
    transformer = getattr(pipe, f"{modality}_transformer", None)
    cls = family_class(transformer)
    if cls is None:
        known = ", ".join(sorted(c.__name__ for c in FAMILIES))
        raise ValueError(f"{modality}_transformer is a {type(transformer).__name__}, which no av-link pipeline runs (known: {known})")
    if cls.modality != modality:
        raise ValueError(f"{modality}_transformer is a {type(transformer).__name__}, a {cls.modality} backbone")
    return cls(pipe)


def text_width(text_encoder) -> int | None:
    config = getattr(text_encoder, "config", None)
    return getattr(config, "d_model", None) or getattr(config, "hidden_size", None)


class BackboneFamily:
    """Base of the families. Subclasses give the model-space side (`backbone`, `frame_rate`, `num_frames`,
    `latent_shape`, `num_tokens`, `text_dim`), the codec (`encode`, `decode`, `conditioning_padding`) and the text
    (`encode_text`, optionally `unconditional_text`); `AudioFamily` / `VideoFamily` add the signal side."""

    modality: str = None
    # True where the backbone's own diffusers pipeline draws its initial noise before any other random number: the
    # cross-modal sampler then draws the generated latents before the conditioning noise, so a zero-gated adapter
    # reproduces that pipeline for the same generator. av-link's own backbones keep the order their released
    # checkpoints were sampled with (conditioning noise first).
    noise_first: bool = False
    # True where padding a text with masked tokens leaves the output unchanged, so both guidance branches can share
    # one batch whatever their text lengths; otherwise branches of different lengths run as separate batches.
    text_padding_neutral: bool = False
    # Pipeline settings this family's models were made for (from_backbones' defaults).
    default_config: dict = {}

    def __init__(self, pipe):
        self.pipe = pipe
        self.transformer = getattr(pipe, f"{self.modality}_transformer")

    def _own_or_shared(self, name: str):
        own = getattr(self.pipe, f"{self.modality}_{name}", None)
        return own if own is not None else getattr(self.pipe, name, None)

    @property
    def text_encoder(self):
        """The modality's own text encoder (`audio_text_encoder`, ...) if the pipeline has one, else the shared one."""
        return self._own_or_shared("text_encoder")

    @property
    def tokenizer(self):
        return self._own_or_shared("tokenizer")

    def problems(self) -> list[str]:
        """What keeps the pipeline's components from running this backbone (empty when they fit)."""
        name = f"the {self.modality} backbone ({type(self.transformer).__name__})"
        if self.text_encoder is None or self.tokenizer is None:
            return [f"{name} needs a text encoder and tokenizer: text_encoder/tokenizer, or {self.modality}_text_encoder/"
                    f"{self.modality}_tokenizer"]
        width = text_width(self.text_encoder)
        if width is not None and width != self.text_dim:
            return [f"{name} takes text of width {self.text_dim}, but its text encoder "
                    f"({type(self.text_encoder).__name__}) gives {width}"]
        return []

    # -- the model side ---------------------------------------------------------------------------------------
    @property
    def backbone(self):
        """The transformer behind av-link's backbone interface."""
        raise NotImplementedError

    @property
    def sampling_dtype(self) -> torch.dtype:
        """The dtype the initial noise is drawn in and the latents are integrated in (the backbone's own pipeline's
        choice; the backbone itself is fed its own dtype)."""
        return self.backbone.dtype

    @property
    def frame_rate(self) -> float:
        """Model-space frames per second (the time axis the sampler and its windows work on)."""
        raise NotImplementedError

    def num_frames(self, seconds: float) -> int:
        """Model-space frames of a generated signal of `seconds`."""
        return max(1, round(seconds * self.frame_rate))

    def latent_shape(self, batch: int, frames: int) -> tuple:
        raise NotImplementedError

    def num_tokens(self, frames: int) -> int:
        """Tokens one sample of `frames` model frames becomes (sizes the batched passes)."""
        raise NotImplementedError

    @property
    def text_dim(self) -> int:
        raise NotImplementedError

    # -- text ---------------------------------------------------------------------------------------------------
    def encode_text(self, prompts: list[str], device, max_sequence_length: int):
        """Text states `(B, L, D)` and a boolean mask `(B, L)` (or None: every token counts), as the backbone's own
        pipeline encodes them."""
        raise NotImplementedError

    def unconditional_text(self, prompt_embeds, prompt_attention_mask):
        """The unconditional branch's text when no negative prompt is given, or None: encode "" (the default rule)."""
        return None

    # -- the codec ----------------------------------------------------------------------------------------------
    def encode(self, signal: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def conditioning_padding(self, signal: torch.Tensor, shape) -> torch.Tensor:
        """What a conditioning input holds past its end (windows may reach past it by less than a video frame)."""
        raise NotImplementedError

    def check_output(self, output_type: str) -> None:
        """Raise a ValueError if this family cannot give `output_type`."""


class LatentFamily(BackboneFamily):
    """A backbone in the latent space of a VAE: the pipeline's `{modality}_vae`, a `vae_class`. (Mixed in before
    `AudioFamily` / `VideoFamily`.)"""

    vae_class: type = None
    noise_first = True  # diffusers' pipelines draw their initial latents before anything else

    @property
    def vae(self):
        return getattr(self.pipe, f"{self.modality}_vae", None)

    @property
    def latent_widths(self) -> tuple[int, int]:
        """(channels the VAE's latents have, channels the transformer takes)."""
        raise NotImplementedError

    def problems(self) -> list[str]:
        name = type(self.transformer).__name__
        if not isinstance(self.vae, self.vae_class):
            return [f"the {self.modality} backbone ({name}) works in {self.vae_class.__name__} latents: pass {self.modality}_vae "
                    f"(got {type(self.vae).__name__})"]
        made, taken = self.latent_widths
        if made != taken:
            return [f"{self.modality}_vae makes latents of {made} channels but {name} takes {taken}"]
        return super().problems()


class AudioFamily(BackboneFamily):
    """Audio backbones: mono waveforms at `sample_rate` in and out."""

    modality = "audio"

    @property
    def sample_rate(self) -> int:
        raise NotImplementedError

    @property
    def min_samples(self) -> int:
        """The shortest input the codec takes."""
        return 1

    def prepare(self, audio, rate) -> list[tuple[torch.Tensor, float]]:
        """A user's audio (see `inputs.prepare_audio`) -> `[(model-space signal, batch of 1), seconds]`, one per row."""
        waveform = prepare_audio(audio, rate, self.sample_rate, self.min_samples)
        seconds = waveform.shape[-1] / self.sample_rate
        return [(x[None], seconds) for x in self.encode(waveform)]

    def postprocess(self, latents: torch.Tensor, output_type: str, seconds: list[float]) -> list:
        """Latents -> one waveform (or latent) per row, each cut or padded to its own seconds."""
        if output_type == "latent":
            return list(latents)
        rows = self.fit_lengths(self.decode(latents).float(), seconds)
        return rows if output_type == "pt" else [r.numpy() for r in rows]

    def fit_lengths(self, waveform: torch.Tensor, seconds: list[float]) -> list[torch.Tensor]:
        """Decoded `(B, samples)` (or `(samples,)`) -> one row per entry of `seconds`, cut or zero-padded to it, on CPU."""
        if waveform.ndim == 1:
            waveform = waveform[None]
        lengths = [round(s * self.sample_rate) for s in seconds]
        return [torch.nn.functional.pad(w, (0, max(0, n - w.shape[-1])))[:n].cpu() for w, n in zip(waveform, lengths)]


class VideoFamily(BackboneFamily):
    """Video backbones: frames at `fps`, `config.height` x `config.width`, in and out."""

    modality = "video"

    @property
    def fps(self) -> float:
        """Frames per second of the pixel video (input and output)."""
        raise NotImplementedError

    def prepare(self, video, rate) -> list[tuple[torch.Tensor, float]]:
        """A user's video (see `inputs.prepare_video`) -> `[(model-space signal, batch of 1), seconds]`, one per row."""
        pixels, seconds = prepare_video(video, rate, self.fps, self.pipe.config.height, self.pipe.config.width)
        return [(x[None], seconds) for x in self.encode(pixels)]

    def postprocess(self, latents: torch.Tensor, output_type: str, seconds: list[float]) -> list:
        """Latents -> one video (or latent) per row, each cut to the frames of its own seconds."""
        if output_type == "latent":
            return list(latents)
        pixels = self.decode(latents).float().clamp(-1, 1).cpu()
        frames = [max(1, round(s * self.fps)) for s in seconds]
        processor = VideoProcessor(do_resize=False)
        return [processor.postprocess_video(p[None, :, :n], output_type=output_type)[0] for p, n in zip(pixels, frames)]

    def pixel_problems(self, multiple: int) -> list[str]:
        height, width = self.pipe.config.height, self.pipe.config.width
        if height % multiple or width % multiple:
            return [f"the {type(self.transformer).__name__} video backbone needs height and width in multiples of {multiple}, "
                    f"got {height} x {width}"]
        return []

