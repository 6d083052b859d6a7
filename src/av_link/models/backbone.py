"""Machinery shared by the audio and video backbones.

Both backbones are the same DiT trunk; they differ only in how a signal becomes tokens (and back)
and in the positions their tokens carry. The trunk exposes a block-level interface,

    state = model.embed(x, t, text, text_mask)      # tokens + everything the blocks need
    state = model.run_blocks(state, stop)           # blocks [state.next_block, stop)
    v = model.unembed(state)                        # final adaLN layer + unpatchify

so a Fusion adapter can run two backbones side by side and act between blocks. `forward` is
exactly that path with no fusion.
"""

from dataclasses import dataclass, field, replace

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from torch import nn

from .casting import compute_dtype
from .dit_block import AVLinkDiTBlock, modulate
from .presets import PresetMixin


@dataclass
class BackboneState:
    """Activations of one backbone between blocks, plus what its blocks and output layer need."""

    hidden: torch.Tensor  # (B, L, D) tokens
    temb: torch.Tensor  # (B, D) flow-time conditioning for adaLN
    text: torch.Tensor  # (B, Lt, D) projected text embeddings
    text_mask: torch.Tensor | None  # (B, Lt) bool, True = real token
    rope: tuple[torch.Tensor, torch.Tensor]  # cos/sin (L, head_dim)
    time_positions: torch.Tensor  # (L,) seconds of every token, for time-aligned fusion
    layout: tuple  # what unpatchify needs (padded grid and original size)
    next_block: int = 0
    extra: dict = field(default_factory=dict)  # a foreign model's other block / output-layer inputs (backbone_views)

    def with_hidden(self, hidden: torch.Tensor, next_block: int) -> "BackboneState":
        return replace(self, hidden=hidden, next_block=next_block)

    def nbytes(self) -> int:
        """Bytes of the tensors the state holds (those it shares with other states counted too)."""
        fields = [self.hidden, self.temb, self.text, self.text_mask, self.rope, self.time_positions, self.extra.values()]
        return sum(_tensor_bytes(f) for f in fields)


def _tensor_bytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (tuple, list, type({}.values()))):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def check_timestep(timestep, batch_size: int, device) -> torch.Tensor:
    t = torch.as_tensor(timestep, device=device)
    if not t.is_floating_point():
        t = t.float()
    if t.ndim == 0:
        t = t.expand(batch_size)
    if t.ndim != 1 or t.shape[0] != batch_size:
        raise ValueError(f"timestep must be a scalar or have shape ({batch_size},), got {tuple(t.shape)}")
    return t


def checkpointed(model, block, *args):
    """`block(*args)`, under `model`'s gradient checkpointing when it is on (diffusers' `gradient_checkpointing`
    flag and `_gradient_checkpointing_func`, set by `enable_gradient_checkpointing`)."""
    if torch.is_grad_enabled() and getattr(model, "gradient_checkpointing", False):
        return model._gradient_checkpointing_func(block, *args)
    return block(*args)


class BlockLoopMixin:
    """`run_blocks` over a backbone's `run_block` and `blocks`: shared by av-link's backbones and the foreign views."""

    def run_blocks(self, state: BackboneState, stop: int | None = None) -> BackboneState:
        """Run blocks `state.next_block .. stop-1` (all remaining ones by default)."""
        stop = len(self.blocks) if stop is None else stop
        while state.next_block < stop:
            state = self.run_block(state)
        return state


class AVLinkBackboneMixin(BlockLoopMixin, PresetMixin):
    """Trunk construction and the block-level interface; subclasses provide the patchify pair."""

    _supports_gradient_checkpointing = True
    _no_split_modules = ["AVLinkDiTBlock"]
    _repeated_blocks = ["AVLinkDiTBlock"]
    # Layerwise casting stores only the blocks' attention/MLP weights in a low-precision dtype: the embeddings,
    # the patch (un)embedding, norms and adaLN modulation are small and precision-sensitive.
    _skip_layerwise_casting_patterns = ["time_embedder", "text_proj", "proj_in", "proj_out", "norm", "modulation"]
    # Block-level group offloading onloads the top-level layers only when `forward` runs; the joint forward
    # calls `embed` / `unembed` directly, so these layers are made groups of their own, onloaded when called.
    _group_offload_block_modules = ["time_embedder", "proj_in", "proj_out"]

    def _build_trunk(self, num_layers, hidden_size, num_attention_heads, mlp_dim, text_dim, qk_norm, eps, mlp_conv_kernel=1):
        for name, value in dict(num_layers=num_layers, hidden_size=hidden_size, num_attention_heads=num_attention_heads,
                                mlp_dim=mlp_dim, text_dim=text_dim).items():
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if hidden_size % num_attention_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_attention_heads {num_attention_heads}")
        self.head_dim = hidden_size // num_attention_heads
        if self.head_dim % 2:
            raise ValueError(f"hidden_size / num_attention_heads = {self.head_dim} must be even for RoPE")
        # Flow time t in [0, 1]; x1000 puts it on the frequency range sinusoidal embeddings are tuned for.
        self.time_proj = Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0, scale=1000)
        self.time_embedder = TimestepEmbedding(256, hidden_size)
        # Text projection: an MLP at the text encoder's width, then down to the model's width.
        self.text_proj = nn.Sequential(nn.Linear(text_dim, text_dim), nn.GELU(approximate="tanh"), nn.Linear(text_dim, hidden_size))
        self.blocks = nn.ModuleList(
            AVLinkDiTBlock(hidden_size, num_attention_heads, mlp_dim, qk_norm=qk_norm, eps=eps, mlp_conv_kernel=mlp_conv_kernel)
            for _ in range(num_layers)
        )
        self.norm_out = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=eps)
        self.out_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))
        nn.init.zeros_(self.out_modulation[-1].weight)
        nn.init.zeros_(self.out_modulation[-1].bias)
        self.gradient_checkpointing = False

    # -- subclass hooks -------------------------------------------------------------------
    def _check_input(self, x: torch.Tensor) -> None:
        raise NotImplementedError

    def _patchify(self, x: torch.Tensor):
        """-> tokens (B, L, D), positions (L, n_axes) for RoPE, seconds (L,), layout."""
        raise NotImplementedError

    def _unpatchify(self, tokens: torch.Tensor, layout) -> torch.Tensor:
        raise NotImplementedError

    @property
    def tokens_per_second(self) -> float:
        raise NotImplementedError

    @property
    def hidden_size(self) -> int:
        """Token width, as the Fusion adapter reads it from any backbone (foreign views have no such config)."""
        return self.config.hidden_size

    # -- block-level interface ------------------------------------------------------------
    def embed(
        self,
        hidden_states: torch.Tensor,
        timestep,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> BackboneState:
        if not isinstance(hidden_states, torch.Tensor) or not hidden_states.is_floating_point():
            raise ValueError(f"{type(self).__name__} expects a floating-point tensor, got {getattr(hidden_states, 'dtype', type(hidden_states))}")
        self._check_input(hidden_states)
        batch = hidden_states.shape[0]
        if encoder_hidden_states.ndim != 3 or encoder_hidden_states.shape[0] != batch:
            raise ValueError(
                f"encoder_hidden_states must be (batch={batch}, tokens, {self.config.text_dim}), got {tuple(encoder_hidden_states.shape)}"
            )
        if encoder_hidden_states.shape[-1] != self.config.text_dim:
            raise ValueError(f"encoder_hidden_states width {encoder_hidden_states.shape[-1]} != text_dim {self.config.text_dim}")
        text_mask = None
        if encoder_attention_mask is not None:
            if tuple(encoder_attention_mask.shape) != tuple(encoder_hidden_states.shape[:2]):
                raise ValueError(
                    f"encoder_attention_mask must be {tuple(encoder_hidden_states.shape[:2])}, got {tuple(encoder_attention_mask.shape)}"
                )
            text_mask = encoder_attention_mask.bool()
            # A data-dependent check: skipped on meta tensors (shape-only FLOP counts) and under torch.compile,
            # where it would break the graph (the pipelines' prompt encoding never masks every token).
            checkable = text_mask.device.type != "meta" and not torch.compiler.is_compiling()
            if checkable and not text_mask.any(-1).all():
                raise ValueError("encoder_attention_mask masks every text token of a sample; encode an empty prompt instead")
        t = check_timestep(timestep, batch, hidden_states.device)
        dtype = compute_dtype(self.time_embedder.linear_1)
        temb = self.time_embedder(self.time_proj(t).to(dtype))
        tokens, positions, seconds, layout = self._patchify(hidden_states.to(dtype))
        return BackboneState(
            hidden=tokens,
            temb=temb,
            text=self.text_proj(encoder_hidden_states.to(dtype)),
            text_mask=text_mask,
            rope=self._rope(positions),
            time_positions=seconds,
            layout=layout,
        )

    def add_to_time_embedding(self, state: BackboneState, offset: torch.Tensor) -> BackboneState:
        """`state` whose blocks and output layer read the flow-time embedding plus `offset` (B, D): a global
        conditioning vector, as a DiT adds its class embedding. Before any block has run."""
        return replace(state, temb=state.temb + offset.to(state.temb.dtype))

    def run_block(self, state: BackboneState) -> BackboneState:
        args = (state.hidden, state.temb, state.text, state.text_mask, state.rope)
        return state.with_hidden(checkpointed(self, self.blocks[state.next_block], *args), state.next_block + 1)

    def unembed(self, state: BackboneState) -> torch.Tensor:
        shift, scale = self.out_modulation(state.temb).chunk(2, dim=-1)
        tokens = self.proj_out(modulate(self.norm_out(state.hidden), shift, scale))
        return self._unpatchify(tokens, state.layout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
        return_dict: bool = True,
    ):
        """Velocity prediction `x1 - x0` at flow time `timestep` in [0, 1] (0 = noise, 1 = data)."""
        state = self.run_blocks(self.embed(hidden_states, timestep, encoder_hidden_states, encoder_attention_mask))
        sample = self.unembed(state)
        return Transformer2DModelOutput(sample=sample) if return_dict else (sample,)
