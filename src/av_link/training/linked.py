"""Frozen diffusers backbones for Fusion training: two pipeline folders (a `LongCatAudioDiTPipeline`, a `WanPipeline`,
or any registered family's) loaded as `from_backbones` loads them, so training and sampling see the same components.

    audio_pipe, video_pipe = load_backbone_pipelines("LongCat-AudioDiT-1B-Diffusers", "Wan2.1-T2V-1.3B-Diffusers", torch.bfloat16)
    config = pipeline_config(audio_pipe, video_pipe, video_fps=16)
    families = linked_families(audio_pipe, video_pipe, config)   # encode, encode_text, backbone (the view)

Training needs the families before any adapter exists (a fresh adapter is sized from the views), so they are read
from the loaded pipelines directly rather than from a linked `AVLinkV2APipeline`; the trained adapter is linked
afterwards with `from_backbones`.
"""

import os
from types import SimpleNamespace

import torch
from diffusers.configuration_utils import FrozenDict

from ..pipelines.families import family_class
from ..pipelines.from_backbones import load_backbone_pipeline

FOREIGN_HINT = "a diffusers pipeline folder of a registered backbone family (LongCatAudioDiTPipeline for audio, WanPipeline for video)"


def is_av_link_folder(folder: str) -> bool:
    """Whether `folder` is one of av-link's own text-to-signal pipelines (rather than a diffusers backbone's)."""
    import json

    with open(os.path.join(folder, "model_index.json")) as f:
        return json.load(f).get("_class_name", "").startswith("AVLink")


def load_backbone_pipelines(audio: str, video: str, weight_dtype: torch.dtype = torch.float32):
    """The two folders loaded (a UMT5 that both hold is loaded once), frozen; their transformers and text encoders in
    `weight_dtype` (the frozen weights bf16 training stores; diffusers keeps the modules a model marks float32), the
    VAEs in float32: they make the regression targets, once per clip in the cache."""
    loading = {}
    if weight_dtype != torch.float32:
        loading["dtype"] = {"transformer": weight_dtype, "text_encoder": weight_dtype, "default": torch.float32}
    audio_pipe = load_backbone_pipeline(audio, "audio", loading)
    video_pipe = load_backbone_pipeline(video, "video", loading, reuse=audio_pipe)
    for modality, pipe in (("audio", audio_pipe), ("video", video_pipe)):
        family = family_class(pipe.transformer)
        if family is None or family.modality != modality:
            kind = "no family" if family is None else f"a {family.modality} family"
            raise ValueError(f"--{modality}_model {pipe.name_or_path or type(pipe).__name__}: its transformer is a "
                             f"{type(pipe.transformer).__name__} ({kind}); give {FOREIGN_HINT}")
        for name in ("transformer", "text_encoder", "vae"):
            getattr(pipe, name).requires_grad_(False).eval()
    return audio_pipe, video_pipe


def pipeline_config(audio_pipe, video_pipe, **overrides) -> dict:
    """Sampling settings: the families' defaults (Wan 2.1: 16 fps, 480 x 832), then the given ones (not None)."""
    config = {}
    for pipe in (audio_pipe, video_pipe):
        config.update(getattr(family_class(pipe.transformer), "default_config", {}))
    config.update({k: v for k, v in overrides.items() if v is not None})
    return config


def linked_families(audio_pipe, video_pipe, config: dict) -> dict:
    """{"audio": family, "video": family} of the two loaded pipelines under the sampling `config`, as a linked
    pipeline would hold them (the same text encoder object where both pipelines hold one), without building one:
    training needs no adapter to exist first. One ValueError lists every component that does not fit."""
    holder = SimpleNamespace(config=FrozenDict(config))
    for modality, pipe in (("audio", audio_pipe), ("video", video_pipe)):
        for name in ("transformer", "vae", "text_encoder", "tokenizer"):
            setattr(holder, f"{modality}_{name}", getattr(pipe, name))
    families = {m: family_class(getattr(holder, f"{m}_transformer"))(holder) for m in ("audio", "video")}
    problems = [p for family in families.values() for p in family.problems()]
    if problems:
        raise ValueError("the backbones do not fit together: " + "; ".join(problems))
    return families
