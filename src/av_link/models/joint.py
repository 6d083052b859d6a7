"""The joint forward: both backbones block by block, the adapter's links (Fusion Blocks or an ablation's) between them."""

from dataclasses import dataclass, replace

import torch

from .backbone import BackboneState, check_timestep
from .backbone_views import as_backbone

OTHER = {"audio": "video", "video": "audio"}  # the other modality of each


@dataclass
class JointOutput:
    audio: torch.Tensor | None  # audio velocity, or None when not requested
    video: torch.Tensor | None  # video velocity, or None when not requested


@dataclass
class ConditioningStates:
    """A backbone's states at every point where the adapter reads it, for an adapter that does not reinject into it
    (static conditioning features): they do not depend on the other modality, so a sampler computes them once per
    input (`conditioning_states`) and every step reuses them. `states[k]` is the state at the adapter's k-th point
    on that side (after block `video_layers[k]` / `audio_layers[k]`; concat-to-text: its one point)."""

    states: list

    def nbytes(self) -> int:
        return sum(state.nbytes() for state in self.states)


def _layers(fusion_adapter, side: str) -> list:
    return list(fusion_adapter.config.video_layers if side == "video" else fusion_adapter.config.audio_layers)


def embed_prefix(transformer, fusion_adapter, side: str, hidden_states, timestep, text, text_mask=None) -> BackboneState:
    """Embed one backbone's input and run its blocks up to its first fusion point.

    For the conditioning modality (fixed noisy input, fixed time, fixed text) this prefix is the
    same at every sampling step, so a sampler computes it once and passes the state to
    `joint_forward` instead of the raw input.
    """
    transformer = as_backbone(transformer)
    state = transformer.embed(hidden_states, timestep, text, text_mask)
    return transformer.run_blocks(state, _layers(fusion_adapter, side)[0] + 1)


def conditioning_states(transformer, fusion_adapter, side: str, hidden_states, timestep, text,
                        text_mask=None) -> ConditioningStates:
    """`side`'s states at every fusion point, for an adapter that leaves that backbone unchanged (one run through it)."""
    if fusion_adapter.reinjects(side):
        raise ValueError(f"the adapter reinjects into the {side} backbone, so its features change with the other "
                         "modality at every step: use embed_prefix")
    transformer = as_backbone(transformer)
    state = transformer.embed(hidden_states, timestep, text, text_mask)
    layers = _layers(fusion_adapter, side)[-1:] if fusion_adapter.config.fusion_type == "concat_text" else _layers(fusion_adapter, side)
    states = []
    for layer in layers:
        state = transformer.run_blocks(state, layer + 1)
        states.append(state)
    return ConditioningStates(states)


def joint_forward(
    audio_transformer,
    video_transformer,
    fusion_adapter,
    audio: torch.Tensor | BackboneState,
    video: torch.Tensor | BackboneState,
    audio_timestep,
    video_timestep,
    audio_text: torch.Tensor | None = None,
    video_text: torch.Tensor | None = None,
    audio_text_mask: torch.Tensor | None = None,
    video_text_mask: torch.Tensor | None = None,
    return_audio: bool = True,
    return_video: bool = True,
    unfused_rows: int = 0,
) -> JointOutput:
    """Velocities of both modalities with the adapter (Fusion Blocks, or an ablation's links) between the two backbones.

    `audio` / `video` are the noisy inputs (or a `BackboneState` from `embed_prefix`, whose text is
    then already embedded, or for a side the adapter does not reinject into, its `ConditioningStates`). Work whose result is unused is skipped: with `return_video=False` (V2A)
    the last Fusion Block's video MLP, the video blocks after it and the video output layer never run; A2V is
    symmetric with `return_audio=False`.

    `unfused_rows`: the returned modality's input has this many extra rows, after the others, that run
    through its backbone alone (no fusion, no other modality): classifier-free guidance's unconditional
    branch, batched with the conditional rows. Needs exactly one of `return_audio` / `return_video`.
    """
    if not (return_audio or return_video):
        raise ValueError("joint_forward: request at least one of return_audio / return_video")
    if unfused_rows and return_audio == return_video:
        raise ValueError("joint_forward: unfused_rows needs exactly one of return_audio / return_video")
    # av-link's own backbones, or views of diffusers ones (built with their token clocks: backbone_views.as_backbone)
    models = dict(audio=as_backbone(audio_transformer), video=as_backbone(video_transformer))
    fusion_adapter.check_backbones(models["audio"], models["video"])
    states = dict(audio=audio, video=video)
    given = dict(audio=(audio_timestep, audio_text, audio_text_mask), video=(video_timestep, video_text, video_text_mask))
    for side, state in states.items():
        if isinstance(state, ConditioningStates):
            if fusion_adapter.reinjects(side):
                raise ValueError(f"{side} is given as ConditioningStates, but the adapter reinjects into it")
        elif not isinstance(state, BackboneState):
            states[side] = models[side].embed(state, *given[side])
    first = {side: s.states[0] if isinstance(s, ConditioningStates) else s for side, s in states.items()}
    extra = {"audio": unfused_rows if return_audio else 0, "video": unfused_rows if return_video else 0}
    batch = first["audio"].hidden.shape[0] - extra["audio"]  # rows that go through the adapter
    if first["video"].hidden.shape[0] - extra["video"] != batch or batch < 1:
        raise ValueError(f"audio batch size {first['audio'].hidden.shape[0]} != video batch size "
                         f"{first['video'].hidden.shape[0]}" + (f" + {unfused_rows} unfused rows" if unfused_rows else ""))
    kind = fusion_adapter.config.fusion_type
    into = fusion_adapter.config.get("global_into")
    if into is not None:  # the other backbone's first point, pooled, into this one's time embedding
        source_layers = _layers(fusion_adapter, OTHER[into])
        _add_global(fusion_adapter, models, states, into, source_layers[-1 if kind == "concat_text" else 0], batch)
    if kind == "concat_text":  # the generated backbone alone, its text extended by the other's last fusion point
        generated = fusion_adapter.config.reinject
        _extend_text(fusion_adapter, models, states, generated, _layers(fusion_adapter, OTHER[generated])[-1], batch)
        out = models[generated].unembed(models[generated].run_blocks(states[generated]))
        return JointOutput(**{generated: out, OTHER[generated]: None})
    into = fusion_adapter.config.get("text_tokens_into")
    if into is not None:  # beside the links: the other backbone's first fusion point as extra text tokens of this one
        _extend_text(fusion_adapter, models, states, into, _layers(fusion_adapter, OTHER[into])[0], batch)
    audio_seconds, video_seconds = first["audio"].time_positions, first["video"].time_positions
    if kind in ("fusion_blocks", "cross_attention"):
        t_a = check_timestep(audio_timestep, batch + extra["audio"], first["audio"].hidden.device)[:batch]
        t_v = check_timestep(video_timestep, batch + extra["video"], first["video"].hidden.device)[:batch]
        audio_mod, video_mod = fusion_adapter.modulation(t_a, t_v)
        rope = fusion_adapter.time_rope(audio_seconds, video_seconds)
        time_distance = fusion_adapter.time_distance(audio_seconds, video_seconds)

    last = len(fusion_adapter.placement) - 1
    for index, (video_layer, audio_layer) in enumerate(fusion_adapter.placement):
        audio = _state_at(models["audio"], states["audio"], index, audio_layer)
        video = _state_at(models["video"], states["video"], index, video_layer)
        into_audio = (return_audio or index < last) and fusion_adapter.reinjects("audio")
        into_video = (return_video or index < last) and fusion_adapter.reinjects("video")
        if kind == "syncflow":  # the audio blocks from here on read this point's video context beside their text
            if index == 0:
                text, text_mask = audio.text, audio.text_mask
            context = fusion_adapter.adaptors[index](video.hidden[:batch], audio.temb[:batch])
            audio = _with_extra_text(audio, context, batch, text, text_mask)
            fused_audio, fused_video = audio.hidden[:batch], video.hidden[:batch]
        elif kind in ("direct", "cmc_pe"):
            fused_audio, fused_video = fusion_adapter.direct[index](
                audio.hidden[:batch], video.hidden[:batch], audio_seconds, video_seconds, into_audio, into_video)
        else:
            fused_audio, fused_video = fusion_adapter.fuse(
                index, audio.hidden[:batch], video.hidden[:batch], audio_mod, video_mod, rope,
                return_audio=into_audio, return_video=into_video, time_distance=time_distance,
            )
        for side, state, fused, into in (("audio", audio, fused_audio, into_audio), ("video", video, fused_video, into_video)):
            if not isinstance(states[side], ConditioningStates):  # those stay the precomputed list
                states[side] = state.with_hidden(_with_unfused(fused, state.hidden, batch), state.next_block) if into else state

    return JointOutput(
        audio=models["audio"].unembed(models["audio"].run_blocks(states["audio"])) if return_audio else None,
        video=models["video"].unembed(models["video"].run_blocks(states["video"])) if return_video else None,
    )


def _state_at(model, state, index: int, layer: int) -> BackboneState:
    """The backbone's state after block `layer`, the adapter's point `index`: run to it, or precomputed."""
    if isinstance(state, ConditioningStates):
        return state.states[index]
    state = model.run_blocks(state, layer + 1)
    if state.next_block != layer + 1:
        raise ValueError(f"a precomputed backbone state has run past fusion point {index}'s position")
    return state


def _prefix_and_target(models: dict, states: dict, into: str, layer: int, what: str):
    """The other backbone's state after its block `layer` (its first precomputed state; kept in `states`), and the
    `into` backbone's state, which must not have run a block yet: `what` changes what every one of them reads."""
    source = OTHER[into]
    features = _state_at(models[source], states[source], 0, layer)
    if not isinstance(states[source], ConditioningStates):
        states[source] = features
    target = states[into]
    if target.next_block != 0:
        raise ValueError(f"{what} changes what every {into} block reads: give the {into} as its input")
    return features, target


def _extend_text(fusion_adapter, models: dict, states: dict, into: str, layer: int, batch: int) -> None:
    """Concat-to-text, in place in `states`: the other backbone's features after its block `layer` become extra text
    tokens of the `into` backbone (masked out for the unfused rows)."""
    features, target = _prefix_and_target(models, states, into, layer, "concat-to-text")
    tokens = fusion_adapter.concat(features.hidden[:batch], features.time_positions)
    states[into] = _with_extra_text(target, tokens, batch, target.text, target.text_mask)


def _add_global(fusion_adapter, models: dict, states: dict, into: str, layer: int, batch: int) -> None:
    """Global conditioning, in place in `states`: the other backbone's features after its block `layer`, pooled,
    added to the `into` backbone's time embedding (not to the unfused rows')."""
    features, target = _prefix_and_target(models, states, into, layer, "global conditioning")
    offset = fusion_adapter.global_conditioning(features.hidden[:batch])
    offset = torch.cat([offset, offset.new_zeros(target.hidden.shape[0] - batch, *offset.shape[1:])])
    states[into] = models[into].add_to_time_embedding(target, offset)


def _with_extra_text(state: BackboneState, tokens: torch.Tensor, batch: int, text, text_mask) -> BackboneState:
    """`state` whose blocks cross-attend to `text` followed by `tokens` (the first `batch` rows; the unfused rows
    past them get masked-out padding)."""
    if text.shape[-1] != tokens.shape[-1]:
        raise ValueError(f"extra context tokens need the backbone's text tokens at their width ({tokens.shape[-1]}); "
                         f"its state holds text of width {text.shape[-1]}")
    rows, count = text.shape[0], tokens.shape[1]
    tokens = torch.cat([tokens.to(text.dtype), text.new_zeros(rows - batch, count, text.shape[-1])])
    mask = text_mask if text_mask is not None else torch.ones(text.shape[:2], dtype=torch.bool, device=text.device)
    added = torch.arange(rows, device=mask.device)[:, None].expand(rows, count) < batch
    return replace(state, text=torch.cat([text, tokens], 1), text_mask=torch.cat([mask, added], 1))


def _with_unfused(fused: torch.Tensor, hidden: torch.Tensor, batch: int) -> torch.Tensor:
    """The fused rows, followed by the rows past `batch` that skip fusion."""
    return fused if hidden.shape[0] == batch else torch.cat([fused, hidden[batch:]])
