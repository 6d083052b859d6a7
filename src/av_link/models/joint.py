"""The joint forward: both backbones block by block, the Fusion Blocks between them."""

from dataclasses import dataclass

import torch

from .backbone import BackboneState, check_timestep
from .backbone_views import as_backbone


@dataclass
class JointOutput:
    audio: torch.Tensor | None  # audio velocity, or None when not requested
    video: torch.Tensor | None  # video velocity, or None when not requested


def embed_prefix(transformer, fusion_adapter, side: str, hidden_states, timestep, text, text_mask=None) -> BackboneState:
    """Embed one backbone's input and run its blocks up to its first fusion point.

    For the conditioning modality (fixed noisy input, fixed time, fixed text) this prefix is the
    same at every sampling step, so a sampler computes it once and passes the state to
    `joint_forward` instead of the raw input.
    """
    layers = fusion_adapter.config.video_layers if side == "video" else fusion_adapter.config.audio_layers
    transformer = as_backbone(transformer)
    state = transformer.embed(hidden_states, timestep, text, text_mask)
    return transformer.run_blocks(state, layers[0] + 1)


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
    """Velocities of both modalities with the Fusion Blocks linking the two backbones.

    `audio` / `video` are the noisy inputs (or a `BackboneState` from `embed_prefix`, whose text is
    then already embedded). Work whose result is unused is skipped: with `return_video=False` (V2A)
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
    audio_transformer, video_transformer = as_backbone(audio_transformer), as_backbone(video_transformer)
    fusion_adapter.check_backbones(audio_transformer, video_transformer)
    if not isinstance(audio, BackboneState):
        audio = audio_transformer.embed(audio, audio_timestep, audio_text, audio_text_mask)
    if not isinstance(video, BackboneState):
        video = video_transformer.embed(video, video_timestep, video_text, video_text_mask)
    extra = {"audio": unfused_rows if return_audio else 0, "video": unfused_rows if return_video else 0}
    batch = audio.hidden.shape[0] - extra["audio"]  # rows that go through the Fusion Blocks
    if video.hidden.shape[0] - extra["video"] != batch or batch < 1:
        raise ValueError(f"audio batch size {audio.hidden.shape[0]} != video batch size {video.hidden.shape[0]}"
                         + (f" + {unfused_rows} unfused rows" if unfused_rows else ""))
    t_a = check_timestep(audio_timestep, batch + extra["audio"], audio.hidden.device)[:batch]
    t_v = check_timestep(video_timestep, batch + extra["video"], video.hidden.device)[:batch]
    audio_mod, video_mod = fusion_adapter.modulation(t_a, t_v)
    rope = fusion_adapter.time_rope(audio.time_positions, video.time_positions)
    time_distance = fusion_adapter.time_distance(audio.time_positions, video.time_positions)

    last = len(fusion_adapter.placement) - 1
    for index, (video_layer, audio_layer) in enumerate(fusion_adapter.placement):
        audio = audio_transformer.run_blocks(audio, audio_layer + 1)
        video = video_transformer.run_blocks(video, video_layer + 1)
        if audio.next_block != audio_layer + 1 or video.next_block != video_layer + 1:
            raise ValueError(f"a precomputed backbone state has run past fusion block {index}'s position")
        fused_audio, fused_video = fusion_adapter.fuse(
            index, audio.hidden[:batch], video.hidden[:batch], audio_mod, video_mod, rope,
            return_audio=return_audio or index < last, return_video=return_video or index < last,
            time_distance=time_distance,
        )
        audio = audio.with_hidden(_with_unfused(fused_audio, audio.hidden, batch), audio.next_block)
        video = video.with_hidden(_with_unfused(fused_video, video.hidden, batch), video.next_block)

    return JointOutput(
        audio=audio_transformer.unembed(audio_transformer.run_blocks(audio)) if return_audio else None,
        video=video_transformer.unembed(video_transformer.run_blocks(video)) if return_video else None,
    )


def _with_unfused(fused: torch.Tensor, hidden: torch.Tensor, batch: int) -> torch.Tensor:
    """The fused rows, followed by the rows past `batch` that skip fusion."""
    return fused if hidden.shape[0] == batch else torch.cat([fused, hidden[batch:]])
