"""Foreign backbones behind av-link's block-level interface: diffusers transformers seen as av-link backbones.

A view wraps a diffusers transformer (e.g. `WanTransformer3DModel`, `LongCatAudioDiTTransformer`) and calls its own
modules (patch / condition embedders, RoPE, blocks with their attention processors, output layer) in the order its
`forward` does, split where the Fusion Blocks step in:

    backbone = as_backbone(transformer, vae=vae, fps=16)   # av-link's own backbones come back unchanged
    state = backbone.embed(x, t, text, text_mask)           # a BackboneState, as av-link's own backbones give
    state = backbone.run_blocks(state, stop)                # blocks [state.next_block, stop)
    v = backbone.unembed(state)                             # output layer, as an av-link velocity

so `joint_forward` / `embed_prefix` run it beside any other backbone. A view is a runtime object, not a component:
pipelines save the plain diffusers transformer (folders of diffusers' own pipelines load as they are) and build
the view when they run it. Nothing of diffusers is copied or patched.

Conventions at the interface (the same as av-link's own backbones):
- time: av-link's flow time `t` (0 = noise, 1 = data) in, the velocity `dx/dt = data - noise` out. Each view
  converts to its model's own timestep and prediction (`model_timestep`, `flow_time`, `velocity`) at this one
  boundary. A sampling `shift` is not part of this mapping: it lives in the schedule (the scheduler's `shift` /
  `flow_shift` decides which times are visited, training's time sampler which times are drawn); the model is
  always called with the actual time of its input.
- token times: `time_positions` holds each token's time in seconds, the instant of the first input frame / sample
  the token covers (av-link's own backbones use the same instant), from the VAE's real compression.
  The rates that turn latent indices into seconds (pixel fps, sample rate, VAE compression) are not in the
  diffusers transformer configs: they are the view's constructor arguments, which `from_vae` reads from the VAE
  config (plus the pixel fps for video, which no Wan config holds); whoever builds the pipeline passes them.

Adding a family (e.g. LTX-Video, Stable Audio 3) is one file: a `ForeignBackbone` subclass decorated with
`@backbone_view(ItsDiffusersTransformer)`, imported in `models/__init__.py`.
"""

import functools

import torch
import torch.utils.checkpoint
from diffusers.models.modeling_outputs import Transformer2DModelOutput

from .backbone import AVLinkBackboneMixin, BackboneState, BlockLoopMixin, check_timestep, checkpointed

BACKBONE_VIEWS: dict[type, type] = {}  # diffusers transformer class -> its view class


def backbone_view(model_class: type):
    """Class decorator: register a `ForeignBackbone` subclass as the view of `model_class` (and its subclasses)."""

    def register(view_class):
        BACKBONE_VIEWS[model_class] = view_class
        view_class.model_class = model_class
        return view_class

    return register


def as_backbone(model, vae=None, **rates):
    """`model` behind av-link's backbone interface.

    av-link's own backbones and views come back unchanged; a registered diffusers transformer comes back in its
    view, built with `rates` (its token clock, see the view class), read from `vae` through `from_vae` when given.
    Without rates a view still runs and reports its width and depth, but has no token times: `embed` raises.
    """
    if isinstance(model, (AVLinkBackboneMixin, ForeignBackbone)):
        if vae is not None or rates:
            raise ValueError(f"{type(model).__name__} is already a backbone: its token clock cannot be changed here")
        return model
    view = next((BACKBONE_VIEWS[c] for c in type(model).__mro__ if c in BACKBONE_VIEWS), None)
    if view is None:
        known = ", ".join(sorted(c.__name__ for c in BACKBONE_VIEWS))
        raise TypeError(f"{type(model).__name__} has no av-link backbone view (known: {known}); see models/backbone_views.py")
    return view.from_vae(model, vae, **rates) if vae is not None else view(model, **rates)


class ForeignBackbone(BlockLoopMixin):
    """Base of the views. Subclasses give the conventions and the three stages; the block loop, checkpointing and
    the standalone call are shared.

    Subclass contract: `hidden_size`, `tokens_per_second`, `model_timestep`, `flow_time`, `velocity`, `token_seconds`, `embed`,
    `block_args` (the arguments of one block call from the state, hidden states first), `output` (the output
    layer, in the model's own prediction convention), and `from_vae`.
    """

    model_class: type = None  # set by @backbone_view

    def __init__(self, model):
        self.model = model

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, {self.hidden_size} x {len(self.blocks)} blocks)"

    @classmethod
    def from_vae(cls, model, vae, **rates):
        raise NotImplementedError

    # -- what the Fusion adapter and pipelines read --------------------------------------------------------
    @property
    def blocks(self):
        return self.model.blocks

    @property
    def hidden_size(self) -> int:
        raise NotImplementedError

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    @property
    def device(self) -> torch.device:
        return self.model.device

    # -- conventions ----------------------------------------------------------------------------------------
    def model_timestep(self, t: torch.Tensor) -> torch.Tensor:
        """av-link flow time (0 noise, 1 data) -> the `timestep` the model takes."""
        raise NotImplementedError

    def flow_time(self, timestep: torch.Tensor) -> torch.Tensor:
        """The model's `timestep` -> av-link flow time; the inverse of `model_timestep`."""
        raise NotImplementedError

    def velocity(self, prediction: torch.Tensor) -> torch.Tensor:
        """The model's output -> av-link's velocity `data - noise`."""
        raise NotImplementedError

    def token_seconds(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """(L,) float64 time in seconds of every token `embed(hidden_states, ...)` makes, in token order."""
        raise NotImplementedError

    def _timestep(self, t, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.model_timestep(check_timestep(t, hidden_states.shape[0], hidden_states.device))

    # -- block-level interface --------------------------------------------------------------------------------
    def embed(self, hidden_states, timestep, encoder_hidden_states, encoder_attention_mask=None, **kwargs) -> BackboneState:
        raise NotImplementedError

    def block_args(self, state: BackboneState) -> tuple:
        raise NotImplementedError

    def output(self, state: BackboneState) -> torch.Tensor:
        raise NotImplementedError

    def add_to_time_embedding(self, state: BackboneState, offset: torch.Tensor) -> BackboneState:
        """See `AVLinkBackboneMixin.add_to_time_embedding`; each view adds to what its model's blocks read."""
        raise ValueError(f"{type(self).__name__} does not take a global conditioning vector (global_into): "
                         "av-link's own backbones, Wan and LongCat-AudioDiT do")

    def run_block(self, state: BackboneState) -> BackboneState:
        hidden = checkpointed(self.model, self.blocks[state.next_block], *self.block_args(state))
        return state.with_hidden(hidden, state.next_block + 1)

    def unembed(self, state: BackboneState) -> torch.Tensor:
        return self.velocity(self.output(state))

    def __call__(self, hidden_states, timestep, encoder_hidden_states, encoder_attention_mask=None, return_dict=True, **kwargs):
        """The standalone velocity at av-link flow time `timestep`: the block path with no fusion, like the
        `forward` of av-link's own backbones."""
        state = self.run_blocks(self.embed(hidden_states, timestep, encoder_hidden_states, encoder_attention_mask, **kwargs))
        sample = self.unembed(state)
        return Transformer2DModelOutput(sample=sample) if return_dict else (sample,)

    # -- training -------------------------------------------------------------------------------------------
    def enable_gradient_checkpointing(self, gradient_checkpointing_func=None) -> None:
        """Checkpoint every block `run_blocks` runs, through the model's own flag and function. A model whose
        `forward` does not implement checkpointing (`_supports_gradient_checkpointing = False`) gets the flag set
        directly: the view's block loop is what reads it."""
        if self.model._supports_gradient_checkpointing:
            self.model.enable_gradient_checkpointing(gradient_checkpointing_func)
            return
        self.model._gradient_checkpointing_func = gradient_checkpointing_func or functools.partial(
            torch.utils.checkpoint.checkpoint, use_reentrant=False
        )
        self.model.gradient_checkpointing = True

    def disable_gradient_checkpointing(self) -> None:
        if self.model._supports_gradient_checkpointing:
            self.model.disable_gradient_checkpointing()
        else:
            self.model.gradient_checkpointing = False

    def _missing_rate(self, *names: str) -> ValueError:
        return ValueError(
            f"{type(self).__name__} has no token clock ({', '.join(names)}): build it with "
            f"as_backbone(transformer, vae=vae, ...) or {type(self).__name__}.from_vae(...) to give its tokens times"
        )
