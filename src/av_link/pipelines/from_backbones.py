"""Link two diffusers pipelines with a Fusion adapter: `AVLinkV2APipeline.from_backbones(audio=..., video=..., fusion_adapter=...)`.

    pipe = AVLinkV2APipeline.from_backbones(audio="LongCat-AudioDiT-1B-Diffusers", video="Wan2.1-T2V-1.3B-Diffusers",
                                            fusion_adapter="path/to/fusion_adapter", torch_dtype=torch.bfloat16)
    pipe.save_pretrained("av-link-v2a-wan-longcat")   # one complete folder; from_pretrained loads it back

Each source is a pipeline folder, a Hub id (fetched by diffusers) or a loaded `DiffusionPipeline` that holds a
`transformer`, `vae`, `text_encoder` and `tokenizer`: a `LongCatAudioDiTPipeline` for audio, a `WanPipeline` for video.

Text encoders: where both pipelines hold the same model (the same config apart from `_name_or_path`, the same
weights) it is loaded and kept once, as `text_encoder`; the video folder's copy is compared tensor by tensor from
its safetensors files against the loaded one and not loaded. Different models become `audio_text_encoder` and
`video_text_encoder` (tokenizers likewise).

Sampler: the paper's first-order Euler on its uniform grid (av-link's `FlowMatchEulerScheduler`), shifted by the
generated backbone's own shift (a Wan folder's `flow_shift`; LongCat's pipeline uses none).
"""

import glob
import os

import torch
from diffusers import DiffusionPipeline

from ..models.fusion import AVLinkFusionAdapter
from ..schedulers import FlowMatchEulerScheduler
from .families import family_class
from .folders import LOADING_KWARGS

NEEDED = ("transformer", "vae", "text_encoder", "tokenizer")
HUB_KWARGS = ("cache_dir", "token", "revision", "local_files_only", "force_download", "proxies")
# config keys that say where, by what or in which dtype a model was saved, not which model it is (weights are compared
# in the loaded dtype)
PROVENANCE_KEYS = ("_name_or_path", "transformers_version", "_diffusers_version", "architectures", "dtype", "torch_dtype")


def link_pipelines(cls, audio, video, fusion_adapter, **kwargs):
    loading = {k: kwargs.pop(k) for k in (*LOADING_KWARGS, *HUB_KWARGS) if k in kwargs}
    audio_pipe = load_backbone_pipeline(audio, "audio", loading)
    video_pipe = load_backbone_pipeline(video, "video", loading, reuse=audio_pipe)
    generated = audio_pipe if cls.generated == "audio" else video_pipe
    config = {}
    for pipe in (audio_pipe, video_pipe):
        config.update(getattr(family_class(pipe.transformer), "default_config", {}))
    config.update(kwargs)
    if isinstance(fusion_adapter, (str, os.PathLike)):
        sub = "fusion_adapter" if os.path.isdir(os.path.join(fusion_adapter, "fusion_adapter")) else None
        fusion_adapter = AVLinkFusionAdapter.from_pretrained(fusion_adapter, subfolder=sub,
                                                             **{k: v for k, v in loading.items() if k == "torch_dtype"})
    return cls(
        audio_transformer=audio_pipe.transformer, video_transformer=video_pipe.transformer, fusion_adapter=fusion_adapter,
        scheduler=euler_scheduler(generated.scheduler), audio_vae=audio_pipe.vae, video_vae=video_pipe.vae,
        **shared_or_per_modality("text_encoder", audio_pipe.text_encoder, video_pipe.text_encoder, same_model),
        **shared_or_per_modality("tokenizer", audio_pipe.tokenizer, video_pipe.tokenizer, same_tokenizer),
        base_models={"audio": source_name(audio, audio_pipe), "video": source_name(video, video_pipe)}, **config,
    )


def load_backbone_pipeline(source, modality: str, loading: dict, reuse: DiffusionPipeline | None = None) -> DiffusionPipeline:
    """`source` as a loaded pipeline; a folder's text encoder is not loaded when it is `reuse`'s model."""
    if isinstance(source, DiffusionPipeline):
        pipe = source
    elif isinstance(source, (str, os.PathLike)):
        folder = str(source)
        if not os.path.isdir(folder):
            folder = DiffusionPipeline.download(folder, **{k: v for k, v in loading.items() if k in HUB_KWARGS})
        if not os.path.isfile(os.path.join(folder, "model_index.json")):
            raise ValueError(f"{modality}={source!r} is not a diffusers pipeline folder (no model_index.json)")
        passed = {}
        if reuse is not None and same_model_on_disk(os.path.join(folder, "text_encoder"), reuse.text_encoder):
            passed["text_encoder"] = reuse.text_encoder
        pipe = DiffusionPipeline.from_pretrained(folder, **passed, **loading)
    else:
        raise ValueError(f"{modality}= takes a pipeline folder, a Hub id or a DiffusionPipeline, got {type(source).__name__}")
    missing = [name for name in NEEDED if getattr(pipe, name, None) is None]
    if missing:
        raise ValueError(f"{modality}={source!r} ({type(pipe).__name__}) lacks {missing}: from_backbones takes a diffusers "
                         f"pipeline with {list(NEEDED)} ({'LongCatAudioDiTPipeline' if modality == 'audio' else 'WanPipeline'})")
    if getattr(pipe, "transformer_2", None) is not None:
        raise ValueError(f"{modality}={source!r} has two transformers (Wan 2.2's experts): av-link links one backbone per modality")
    return pipe


def euler_scheduler(scheduler) -> FlowMatchEulerScheduler:
    """The paper's Euler sampler with `scheduler`'s shift (`flow_shift` of schedulers that use flow sigmas)."""
    config = getattr(scheduler, "config", {})
    if config.get("use_dynamic_shifting"):
        raise ValueError(f"{type(scheduler).__name__} shifts by resolution (use_dynamic_shifting): pass a fixed shift instead")
    shift = config.get("flow_shift") if config.get("use_flow_sigmas") else config.get("shift")
    return FlowMatchEulerScheduler(shift=float(shift or 1.0))


def shared_or_per_modality(name: str, audio, video, same) -> dict:
    """`{name: audio}` where the two are the same, else `{audio_<name>: audio, video_<name>: video}`."""
    return {name: audio} if same(audio, video) else {f"audio_{name}": audio, f"video_{name}": video}


def _identity(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in PROVENANCE_KEYS}


def same_model(a, b) -> bool:
    """Two loaded models with the same class, config (apart from where they were loaded from) and weights."""
    if a is b:
        return True
    if type(a) is not type(b) or _identity(a.config.to_dict()) != _identity(b.config.to_dict()):
        return False
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k].to(sa[k].device)) for k in sa)


def same_model_on_disk(folder: str, model) -> bool:
    """Whether loading the transformers model saved in `folder` would give `model` again: its saved config (apart
    from `_name_or_path`) is `model`'s, and every tensor of its safetensors files equals `model`'s, read one at a time
    (so nothing is loaded twice). Folders without safetensors weights are not compared (False)."""
    from safetensors import safe_open

    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files or not os.path.isfile(os.path.join(folder, "config.json")) or not hasattr(model, "config"):
        return False
    saved = type(model.config).from_pretrained(folder)  # with the class's defaults, which config.json leaves out
    if type(model).__name__ not in (saved.architectures or [type(model).__name__]):
        return False
    if _identity(saved.to_dict()) != _identity(model.config.to_dict()):
        return False
    state = model.state_dict()
    for path in files:
        with safe_open(path, framework="pt") as weights:
            for key in weights.keys():
                if key not in state or not torch.equal(weights.get_tensor(key).to(state[key].dtype), state[key].cpu()):
                    return False
    return True


def same_tokenizer(a, b) -> bool:
    if a is b:
        return True
    return (type(a) is type(b) and a.get_vocab() == b.get_vocab() and a.all_special_tokens == b.all_special_tokens
            and a.model_max_length == b.model_max_length)


def source_name(source, pipe) -> str:
    """How the model card names a base model: a Hub id as given, a local folder by its name (no build paths), a
    pipeline built in code by its class."""
    name = source if isinstance(source, (str, os.PathLike)) else pipe.name_or_path
    if not name:
        return type(pipe).__name__
    name = str(name)
    return os.path.basename(os.path.normpath(name)) if os.path.isdir(name) else name
