"""diffusers' LongCat-AudioDiT (`LongCatAudioDiTTransformer`) behind av-link's backbone interface."""

import math
from dataclasses import replace

import torch
from diffusers.models.transformers.transformer_longcat_audio_dit import LongCatAudioDiTTransformer
from torch import nn

from .backbone import BackboneState
from .backbone_views import ForeignBackbone, backbone_view


def vae_downsampling(vae) -> int:
    """Samples per latent of a `LongCatAudioDiTVae`: the product of its encoder's convolution strides (the config's
    `strides` are padded or cut to the number of `c_mults`, so the modules are what is certain)."""
    return math.prod(m.stride[0] for m in vae.encoder.modules() if isinstance(m, nn.Conv1d))


def check_downsampling_ratio(vae) -> int:
    """The VAE's samples per latent; a ValueError when its config's `downsampling_ratio` (which LongCat's pipeline
    sizes latents with, and which gives the latents their times) says otherwise."""
    ratio = vae_downsampling(vae)
    if vae.config.downsampling_ratio != ratio:
        raise ValueError(
            f"{type(vae).__name__}: config downsampling_ratio={vae.config.downsampling_ratio}, but its encoder's strides "
            f"compress {ratio} samples into one latent; set downsampling_ratio={ratio} in the VAE config"
        )
    return ratio


@backbone_view(LongCatAudioDiTTransformer)
class LongCatBackbone(ForeignBackbone):
    """A `LongCatAudioDiTTransformer` as an av-link audio backbone over LongCat VAE latents `(B, L, latent_dim)`.

    Time: LongCat takes av-link's `t` itself (in [0, 1), rising from 0 = noise; its pipeline divides an inverted
    `FlowMatchEulerDiscreteScheduler(shift=1, invert_sigmas=True)`'s timesteps by 1000) and predicts `data - noise`,
    which is av-link's velocity.

    Text: the mask is LongCat's `encoder_attention_mask`; None means every token is real.
    `embed` also takes LongCat's `attention_mask` (B, L) over latent frames and `latent_cond` (B, L, latent_dim),
    the prompt audio of in-context generation: zeros by default, as LongCat's pipeline passes them.

    Token times: one latent per `downsampling_ratio` samples; latent n stands for its first sample, at
    n * downsampling_ratio / sample_rate seconds.

    Args:
        model: the `LongCatAudioDiTTransformer`.
        sample_rate: waveform samples per second (`vae.config.sample_rate`, 24000).
        downsampling_ratio: samples per latent (`vae.config.downsampling_ratio`, 2048; `from_vae` checks it).
    """

    def __init__(self, model: LongCatAudioDiTTransformer, sample_rate: float | None = None, downsampling_ratio: int | None = None):
        super().__init__(model)
        for name, value in (("sample_rate", sample_rate), ("downsampling_ratio", downsampling_ratio)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        self.sample_rate = sample_rate
        self.downsampling_ratio = downsampling_ratio

    @classmethod
    def from_vae(cls, model, vae) -> "LongCatBackbone":
        """The view with the rates of `vae` (a `LongCatAudioDiTVae`), its `downsampling_ratio` checked."""
        return cls(model, sample_rate=vae.config.sample_rate, downsampling_ratio=check_downsampling_ratio(vae))

    @property
    def hidden_size(self) -> int:
        return self.model.config.dit_dim

    @property
    def tokens_per_second(self) -> float:
        if self.sample_rate is None or self.downsampling_ratio is None:
            raise self._missing_rate("sample_rate", "downsampling_ratio")
        return self.sample_rate / self.downsampling_ratio

    # -- conventions ----------------------------------------------------------------------------------------
    def model_timestep(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def flow_time(self, timestep: torch.Tensor) -> torch.Tensor:
        return timestep

    def velocity(self, prediction: torch.Tensor) -> torch.Tensor:
        return prediction

    def token_seconds(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.arange(hidden_states.shape[1], device=hidden_states.device, dtype=torch.float64) / self.tokens_per_second

    # -- block-level interface --------------------------------------------------------------------------------
    def embed(self, hidden_states, timestep, encoder_hidden_states, encoder_attention_mask=None, attention_mask=None,
              latent_cond=None) -> BackboneState:
        """`LongCatAudioDiTTransformer.forward` up to its blocks."""
        model, config = self.model, self.model.config
        if hidden_states.ndim != 3 or hidden_states.shape[-1] != config.latent_dim or hidden_states.shape[1] == 0:
            raise ValueError(f"LongCat latents must be (batch, frames>0, {config.latent_dim}), got {tuple(hidden_states.shape)}")
        seconds = self.token_seconds(hidden_states)
        dtype = hidden_states.dtype
        text = encoder_hidden_states.to(dtype)
        if encoder_attention_mask is None:
            text_mask = torch.ones(text.shape[:2], dtype=torch.bool, device=text.device)
        else:
            text_mask = encoder_attention_mask.bool()
        timestep_embed = model.time_embed(self._timestep(timestep, hidden_states).to(dtype))
        text = model.text_embed(text, text_mask)
        if model.text_conv:
            text = model.text_conv_layer(text).masked_fill(text_mask.logical_not().unsqueeze(-1), 0.0)
        hidden = model.input_embed(hidden_states, attention_mask)
        if model.use_latent_condition:
            latent_cond = torch.zeros_like(hidden_states) if latent_cond is None else latent_cond
            hidden = model.latent_cond_embedder(torch.cat([hidden, model.latent_embed(latent_cond.to(hidden.dtype), attention_mask)], dim=-1))
        norm_cond, adaln_global_out = timestep_embed, None
        if config.adaln_type == "global":
            if config.adaln_use_text_cond:
                norm_cond = timestep_embed + text.sum(1) / text_mask.sum(1).clamp(min=1).to(text.dtype).unsqueeze(1)
            adaln_global_out = model.adaln_global_mlp(norm_cond)
        return BackboneState(
            hidden=hidden, temb=norm_cond, text=text, text_mask=text_mask, rope=model.rotary_embed(hidden, hidden.shape[1]),
            time_positions=seconds, layout=None,
            extra=dict(timestep_embed=timestep_embed, cond_rope=model.rotary_embed(text, text.shape[1]),
                       adaln_global_out=adaln_global_out, attention_mask=attention_mask,
                       residual=hidden if config.long_skip else None),  # the long skip: input embedding -> output layer
        )

    def add_to_time_embedding(self, state: BackboneState, offset: torch.Tensor) -> BackboneState:
        """LongCat's timestep embedding plus `offset`, in what its blocks read (the embedding, or with global adaLN
        the shared modulation made from it again) and in its output norm's condition."""
        e, offset = state.extra, offset.to(state.temb.dtype)
        norm_cond = state.temb + offset
        adaln = self.model.adaln_global_mlp(norm_cond) if e["adaln_global_out"] is not None else None
        return replace(state, temb=norm_cond,
                       extra={**e, "timestep_embed": e["timestep_embed"] + offset, "adaln_global_out": adaln})

    def block_args(self, state: BackboneState) -> tuple:
        e = state.extra
        return (state.hidden, e["timestep_embed"], state.text, e["attention_mask"], state.text_mask, state.rope,
                e["cond_rope"], e["adaln_global_out"])

    def output(self, state: BackboneState) -> torch.Tensor:
        """LongCat's long skip, output norm and projection: its prediction `data - noise`, `(B, L, latent_dim)`."""
        model, hidden = self.model, state.hidden
        if model.config.long_skip:
            hidden = hidden + state.extra["residual"]
        hidden = model.proj_out(model.norm_out(hidden, state.temb))
        mask = state.extra["attention_mask"]
        return hidden if mask is None else hidden * mask.unsqueeze(-1).to(hidden.dtype)
