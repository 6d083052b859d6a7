"""`examples/train_fusion.py` between diffusers backbones (Wan, LongCat-AudioDiT, ...), in their latent spaces.

The objective is av-link's (`objectives.fusion_loss`): the conditioning modality at its fixed flow time, the generated
one at logit-normal times, the generated velocity's MSE. Only where the signals and the text come from differs:
each family's VAE latents and own text encoding (`modality_inputs.FamilyInputs`), or the same read from a latent
cache (`latent_cache.CachedInputs`); the backbone views convert av-link's flow time and velocity to each model's.
"""

import json
import os

import torch
from accelerate.utils import DistributedType

from ..data import AVClipDataset
from .latent_cache import (
    CachedInputs,
    LatentCache,
    LatentCacheDataset,
    cache_identity,
    check_identity,
)
from .linked import (
    is_av_link_folder,
    linked_families,
    load_backbone_pipelines,
    pipeline_config,
)
from .loop import train
from .modality_inputs import FamilyInputs
from .objectives import FusionObjective, fusion_objective_config
from .setup import training_info

WEIGHT_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def add_latent_arguments(parser):
    g = parser.add_argument_group("diffusers backbones (pipeline folders of Wan, LongCat-AudioDiT, ...)")
    g.add_argument("--video_fps", type=float, default=None, help="pixel frame rate of the video backbone (Wan 2.1: 16, the default)")
    g.add_argument("--height", type=int, default=None, help="training video height (Wan 2.1 default: 480)")
    g.add_argument("--width", type=int, default=None, help="training video width (Wan 2.1 default: 832)")
    g.add_argument("--max_sequence_length", type=int, default=None, help="text tokens (Wan 2.1 default: 512)")
    g.add_argument("--latent_cache", default=None, help="train from this cache of latents and text states "
                   "(examples/cache_latents.py) instead of running the VAEs and text encoders every step")
    return parser


def uses_own_backbones(args) -> bool:
    """True for two av-link text-to-signal folders, False for two diffusers backbone folders; else one clear error."""
    own = {}
    for flag, path in (("--audio_model", args.audio_model), ("--video_model", args.video_model)):
        if not os.path.isfile(os.path.join(path, "model_index.json")):
            raise ValueError(f"{flag} {path} is not a pipeline folder (no model_index.json)")
        own[flag] = is_av_link_folder(path)
    if len(set(own.values())) > 1:
        raise ValueError("--audio_model and --video_model must both be av-link pipelines or both diffusers backbone pipelines "
                         f"(got av-link: {own})")
    return own["--audio_model"]


def load_linked(audio_model: str, video_model: str, weight_dtype, **settings):
    """The two folders, their sampling config and families (see `linked`)."""
    audio_pipe, video_pipe = load_backbone_pipelines(audio_model, video_model, weight_dtype)
    config = pipeline_config(audio_pipe, video_pipe, **settings)
    return audio_pipe, video_pipe, config, linked_families(audio_pipe, video_pipe, config)


def clip_dataset(data_dir: str, config: dict, families: dict, clip_seconds: float, **options) -> AVClipDataset:
    """Clips resampled to the families' own rates and size: waveforms (no mel) at the audio VAE's rate, pixels at the
    video backbone's fps and the training size."""
    return AVClipDataset(data_dir, fps=families["video"].fps, height=config["height"], width=config["width"],
                         sample_rate=families["audio"].sample_rate, clip_seconds=clip_seconds, modalities=("audio", "video"),
                         return_waveform=True, return_mel=False, **options)


def train_between_diffusers_backbones(args, accelerator, load_adapter):
    if args.task == "joint_generation":
        raise ValueError("--task joint_generation is not supported between diffusers backbones yet")
    if args.lora_targets:
        raise ValueError("--lora_targets is not supported between diffusers backbones yet")
    weight_dtype = WEIGHT_DTYPES.get(accelerator.mixed_precision, torch.float32)
    if accelerator.distributed_type == DistributedType.FSDP:
        # FSDP flattens each unit's parameters into one tensor of one dtype, and a unit holds frozen backbone and
        # float32 adapter parameters side by side: keep everything float32 (sharded, so each rank stores 1/N) and let
        # FSDP's mixed precision compute in bf16.
        weight_dtype = torch.float32
    audio_pipe, video_pipe, config, families = load_linked(args.audio_model, args.video_model, weight_dtype, video_fps=args.video_fps,
                                                           height=args.height, width=args.width,
                                                           max_sequence_length=args.max_sequence_length)
    views = tuple(families[m].backbone for m in ("audio", "video"))
    adapter = load_adapter(args, *views)
    adapter.check_backbones(*views)  # fail before any data is read
    if args.gradient_checkpointing:  # the frozen blocks too: their activations dominate at real scale
        for view in views:
            view.enable_gradient_checkpointing()
        adapter.enable_gradient_checkpointing()
    device = accelerator.device
    if args.latent_cache:
        cache = LatentCache(args.latent_cache)
        clip_seconds = args.clip_seconds or cache.identity["clip_seconds"]
        check_identity(args.latent_cache, cache_identity(config, families, clip_seconds, config["max_sequence_length"]))
        inputs = {m: CachedInputs(cache, m, device) for m in ("audio", "video")}
        dataset = LatentCacheDataset(cache)  # the VAEs and text encoders stay unused, off the accelerator
    else:
        clip_seconds = args.clip_seconds or config.get("clip_seconds", 5.0)
        dataset = clip_dataset(args.data_dir, config, families, clip_seconds, random_crop=True, cache_dir=args.cache_dir,
                               seed=args.seed, repeat_fps=args.repeat_fps)
        inputs = {m: FamilyInputs(families[m], config["max_sequence_length"], device) for m in ("audio", "video")}
        for pipe in (audio_pipe, video_pipe):
            pipe.vae.to(device)
            pipe.text_encoder.to(device)
    cfg = fusion_objective_config(args)
    objective = FusionObjective(adapter, audio_pipe.transformer, video_pipe.transformer, inputs, args.task, cfg, views=views)
    trained = train(args, accelerator, objective, adapter, dataset, run_name=f"train_fusion_{args.task}")
    if accelerator.is_main_process:
        info = {**training_info(args, dataset, accelerator), "data": args.latent_cache or args.data_dir,
                "frozen weights": str(weight_dtype).replace("torch.", "")}
        save_adapter(trained.adapter.float().cpu(), args, config, clip_seconds, info, accelerator.print)
    return trained


def save_adapter(adapter, args, config: dict, clip_seconds: float, info: dict, log=print) -> None:
    """The trained adapter, `OUT/fusion_adapter` (joint: `OUT/v2a/...` and `OUT/a2v/...`, the same weights), with a
    note of how to link it; the frozen backbones stay in their own folders."""
    folders = [args.output_dir] if args.task != "joint" else [os.path.join(args.output_dir, t) for t in ("v2a", "a2v")]
    settings = {k: config[k] for k in ("video_fps", "height", "width", "max_sequence_length") if k in config}
    settings["clip_seconds"] = clip_seconds
    for folder in folders:
        adapter.save_pretrained(os.path.join(folder, "fusion_adapter"))
        task = os.path.basename(folder) if args.task == "joint" else args.task
        cls = "AVLinkV2APipeline" if task == "v2a" else "AVLinkA2VPipeline"
        with open(os.path.join(folder, "linking.json"), "w") as f:
            json.dump({"pipeline": cls, "audio": os.path.basename(os.path.normpath(args.audio_model)),
                       "video": os.path.basename(os.path.normpath(args.video_model)), "settings": settings,
                       "training": {k: str(v) for k, v in info.items()}}, f, indent=2)
        log(f"saved the {task} fusion adapter to {folder}: link it with {cls}.from_backbones(audio=..., video=..., "
            f"fusion_adapter={folder!r}, **{settings})")
