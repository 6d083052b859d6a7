"""diffusers' Wan video DiT (`WanTransformer3DModel`, Wan 2.1 T2V) behind av-link's backbone interface."""

from dataclasses import replace

import torch
from diffusers.models.transformers.transformer_wan import WanTransformer3DModel

from .backbone import BackboneState
from .backbone_views import ForeignBackbone, backbone_view


@backbone_view(WanTransformer3DModel)
class WanBackbone(ForeignBackbone):
    """A `WanTransformer3DModel` as an av-link video backbone over Wan VAE latents `(B, C, F, H, W)`.

    Time: Wan takes `timestep = sigma * 1000` with `sigma = 1 - t` (1000 = noise) and predicts `noise - data`, the
    `dx/dsigma` its pipeline steps diffusers' flow schedulers with; the velocity is that output negated.

    Text: Wan attends to every text token, and its pipeline zero-pads the prompt embeddings to 512 tokens; a text
    mask therefore zeroes the masked tokens (pad to the same length for Wan's exact results).

    Token times: Wan's VAE is causal with `temporal_compression` (4) in time: latent frame 0 is pixel frame 0, and
    latent frame k > 0 covers pixel frames 1 + 4(k-1) .. 4k. A token stands for the first pixel frame it covers, as
    av-link's own video tokens do: latent frame k > 0 is at (1 + 4(k-1)) / fps seconds, latent frame 0 at 0.

    Args:
        model: the `WanTransformer3DModel`.
        fps: pixel frames per second of the videos its VAE encodes (Wan 2.1 generates 16 fps); no Wan config holds it.
        temporal_compression: pixel frames per latent frame after the first (`vae.config.scale_factor_temporal`).
    """

    num_train_timesteps = 1000  # Wan's timestep is sigma times this

    def __init__(self, model: WanTransformer3DModel, fps: float | None = None, temporal_compression: int = 4):
        super().__init__(model)
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if int(temporal_compression) < 1:
            raise ValueError(f"temporal_compression must be a positive integer, got {temporal_compression}")
        self.fps = fps
        self.temporal_compression = int(temporal_compression)

    @classmethod
    def from_vae(cls, model, vae, fps: float | None = None) -> "WanBackbone":
        """The view with the temporal compression of `vae` (an `AutoencoderKLWan`) and the videos' `fps`."""
        return cls(model, fps=fps, temporal_compression=vae.config.scale_factor_temporal)

    @property
    def hidden_size(self) -> int:
        return self.model.config.num_attention_heads * self.model.config.attention_head_dim

    @property
    def tokens_per_second(self) -> float:
        """Token frames per second after the first latent frame (16 fps / 4 = 4 for Wan 2.1): the Fusion adapter's
        `time_rate` when video sets the RoPE scale."""
        if self.fps is None:
            raise self._missing_rate("fps")
        return self.fps / (self.temporal_compression * self.model.config.patch_size[0])

    # -- conventions ----------------------------------------------------------------------------------------
    def model_timestep(self, t: torch.Tensor) -> torch.Tensor:
        return (1 - t) * self.num_train_timesteps

    def flow_time(self, timestep: torch.Tensor) -> torch.Tensor:
        return 1 - timestep / self.num_train_timesteps

    def velocity(self, prediction: torch.Tensor) -> torch.Tensor:
        return -prediction

    def latent_frame_seconds(self, num_latent_frames: int, device=None) -> torch.Tensor:
        """(F,) float64 seconds of each latent frame: its first pixel frame, 0 and then 1 + 4(k-1), over fps."""
        if self.fps is None:
            raise self._missing_rate("fps")
        k = torch.arange(num_latent_frames, device=device, dtype=torch.float64)
        return (1 + self.temporal_compression * (k - 1)).clamp(min=0) / self.fps

    def token_seconds(self, hidden_states: torch.Tensor) -> torch.Tensor:
        pt, ph, pw = self.model.config.patch_size
        _, _, frames, height, width = hidden_states.shape
        starts = self.latent_frame_seconds(frames, hidden_states.device)[::pt][: frames // pt]  # a token's first frame
        return starts.repeat_interleave((height // ph) * (width // pw))  # tokens are (frame, row, column) ordered

    # -- block-level interface --------------------------------------------------------------------------------
    def _check_input(self, hidden_states: torch.Tensor) -> None:
        config = self.model.config
        if hidden_states.ndim != 5 or hidden_states.shape[1] != config.in_channels:
            raise ValueError(f"Wan latents must be (batch, {config.in_channels}, frames, height, width), got {tuple(hidden_states.shape)}")
        if any(n == 0 or n % p for n, p in zip(hidden_states.shape[2:], config.patch_size)):
            raise ValueError(f"Wan latent frames/height/width {tuple(hidden_states.shape[2:])} must be positive multiples of "
                             f"its patch size {tuple(config.patch_size)}")

    def embed(self, hidden_states, timestep, encoder_hidden_states, encoder_attention_mask=None) -> BackboneState:
        """`WanTransformer3DModel.forward` up to its blocks (text-to-video: no image embeddings)."""
        model = self.model
        self._check_input(hidden_states)
        seconds = self.token_seconds(hidden_states)
        rotary_emb = model.rope(hidden_states)
        hidden = model.patch_embedding(hidden_states).flatten(2).transpose(1, 2).contiguous()
        if encoder_attention_mask is not None:
            encoder_hidden_states = encoder_hidden_states * encoder_attention_mask[..., None].to(encoder_hidden_states.dtype)
        temb, timestep_proj, text, _ = model.condition_embedder(self._timestep(timestep, hidden_states), encoder_hidden_states, None)
        grid = tuple(n // p for n, p in zip(hidden_states.shape[2:], model.config.patch_size))
        return BackboneState(
            hidden=hidden, temb=temb, text=text, text_mask=None, rope=rotary_emb, time_positions=seconds, layout=grid,
            extra={"timestep_proj": timestep_proj.unflatten(1, (6, -1))},
        )

    def block_args(self, state: BackboneState) -> tuple:
        return state.hidden, state.text, state.extra["timestep_proj"], state.rope

    def add_to_time_embedding(self, state: BackboneState, offset: torch.Tensor) -> BackboneState:
        """Wan's time embedding plus `offset`, and the blocks' six modulations projected from it again."""
        embedder = self.model.condition_embedder
        temb = state.temb + offset.to(state.temb.dtype)
        proj = embedder.time_proj(embedder.act_fn(temb)).unflatten(1, (6, -1))
        return replace(state, temb=temb, extra={**state.extra, "timestep_proj": proj})

    def output(self, state: BackboneState) -> torch.Tensor:
        """Wan's output norm, projection and unpatchify: its prediction `noise - data`, `(B, C, F, H, W)`."""
        model, hidden = self.model, state.hidden
        shift, scale = (model.scale_shift_table.to(state.temb.device) + state.temb.unsqueeze(1)).chunk(2, dim=1)
        shift, scale = shift.to(hidden.device), scale.to(hidden.device)
        hidden = model.proj_out((model.norm_out(hidden.float()) * (1 + scale) + shift).type_as(hidden))
        hidden = hidden.reshape(hidden.shape[0], *state.layout, *model.config.patch_size, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return hidden.flatten(6, 7).flatten(4, 5).flatten(2, 3)
