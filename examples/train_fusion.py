"""Train AV-Link Fusion Blocks between two frozen backbones (paper §3.3, Appx. C).

    accelerate launch examples/train_fusion.py --task v2a --audio_model t2a --video_model t2v \
        --data_dir DATA --output_dir v2a --preset tiny --max_train_steps 2000

The conditioning modality sits at its fixed flow time (0.96 for V2A, 0.8 for A2V), the generated
one at t ~ logit-normal(-1, 1); the generated modality's prompt is dropped 50% of the time and the
conditioning one's 20%; the loss is the generated modality's velocity MSE; only the adapter is in
the optimizer (AdamW, lr 3e-4, betas 0.9/0.99, weight decay 0.01, 10k warmup steps). `--task joint`
trains one shared adapter for both directions. The output is a complete `AVLinkV2APipeline` /
`AVLinkA2VPipeline` folder (for joint: `v2a/` and `a2v/` inside the output folder). `--task joint_generation` trains
joint text-to-audio+video (both modalities from noise; AV-Link with t_a = t_v, or SyncFlow's / Ishii et al.'s links
through `--adapter_config`, docs/joint.md) and writes an `AVLinkTextToAudioVideoPipeline`.

Open backbones in latent space: `--audio_model` / `--video_model` may instead be diffusers pipeline folders of a
registered family (a `LongCatAudioDiTPipeline`, a `WanPipeline`; docs/open_backbones_training.md). Then the objective
runs on their VAE latents with each family's own text encoding, `--mixed_precision bf16` stores the frozen
transformers and text encoders in bf16 (the adapter's master weights stay float32), `--latent_cache DIR` (from
`examples/cache_latents.py`) replaces the per-step VAE and text encoder runs, and the output folder holds the trained
`fusion_adapter/`, which `AVLinkV2APipeline.from_backbones(audio=..., video=..., fusion_adapter=OUT)` links.

`--lora_targets audio video` also trains a LoRA on the frozen backbones (the paper's "w/FT" variants, cheaply);
`--lora_targets fusion --adapter_model FOLDER` fine-tunes trained Fusion Blocks through a LoRA. The LoRA is saved
beside the pipeline (`pytorch_lora_weights.safetensors`): apply it with `pipe.load_lora_weights(folder)`.
"""

import argparse
import json
import logging
import os
import sys

from av_link import (
    AVLinkA2VPipeline,
    AVLinkFusionAdapter,
    AVLinkTextToAudioPipeline,
    AVLinkTextToAudioVideoPipeline,
    AVLinkTextToVideoPipeline,
    AVLinkV2APipeline,
)
from av_link.data import AVClipDataset
from av_link.loaders import lora_save_kwargs
from av_link.pipelines.from_backbones import same_model
from av_link.schedulers import FlowMatchEulerScheduler
from av_link.training.arguments import add_training_arguments, check_training_arguments
from av_link.training.fusion_latent import add_latent_arguments, train_between_diffusers_backbones, uses_own_backbones
from av_link.training.lora import add_lora_adapters, add_lora_arguments, check_lora_arguments, lora_training_info
from av_link.training.loop import make_accelerator, train
from av_link.training.objectives import TASKS, FusionObjective, fusion_objective_config
from av_link.training.setup import training_info
from av_link.training.text import FrozenTextEncoder


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=list(TASKS), required=True,
                        help="v2a / a2v; joint: one adapter for both, alternating; joint_generation: text to audio+video "
                             "together (both from noise, local times from the adapter's timestep_gamma; docs/joint.md)")
    parser.add_argument("--audio_model", required=True,
                        help="text-to-audio pipeline folder (from train_backbone.py, or a diffusers LongCatAudioDiTPipeline)")
    parser.add_argument("--video_model", required=True, help="text-to-video pipeline folder (or a diffusers WanPipeline)")
    parser.add_argument("--preset", default="paper", help="Fusion Block size preset (widths and depths follow the backbones)")
    parser.add_argument("--adapter_config", default="{}",
                        help='JSON overrides, e.g. \'{"num_blocks": 4}\' or a placement; with --adapter_model, options that '
                             'add modules to the trained blocks (e.g. \'{"text_tokens_into": "audio"}\')')
    parser.add_argument("--adapter_model", default=None,
                        help="start from trained Fusion Blocks: a V2A/A2V pipeline folder or a fusion_adapter folder "
                             "(default: fresh blocks of --preset and --adapter_config)")
    parser.add_argument("--generated_text_dropout", type=float, default=0.5)
    parser.add_argument("--conditioning_text_dropout", type=float, default=0.2)
    parser.add_argument("--paired_text_dropout", type=float, default=0.0,
                        help="probability of dropping both prompts together, on top of the two drops above: more "
                             "training for the empty-prompt use, where the sound's kind must come from the picture")
    parser.add_argument("--logit_mean", type=float, default=-1.0,
                        help="mean of the logit-normal flow time of the generated modality (t = 0 is noise). Lower "
                             "values train more at the noisy times where only the conditioning input can decide the "
                             "timing; on SynthHits v2, -2.0 made V2A follow the motion where -1.0 did not "
                             "(docs/synthhits.md)")
    parser.add_argument("--logit_std", type=float, default=1.0)
    parser.add_argument("--freeze_time_bias", action="store_true",
                        help="keep the time-bias slopes (adapter option time_bias) at their initial or loaded values: on "
                             "CPU, learned slopes send the Fusion Blocks' attention through SDPA's math path (SynthHits v2 "
                             "V2A: 1.68 vs 1.29 s/step); trained there, the slopes stayed within 15%% of their start")
    add_training_arguments(parser)
    add_lora_arguments(parser)
    add_latent_arguments(parser)
    return parser.parse_args(argv)


def load_backbones(args):
    for flag, path in (("--audio_model", args.audio_model), ("--video_model", args.video_model)):
        if not os.path.isfile(os.path.join(path, "model_index.json")):
            raise ValueError(f"{flag} {path} is not a pipeline folder (no model_index.json)")
    t2a = AVLinkTextToAudioPipeline.from_pretrained(args.audio_model)
    t2v = AVLinkTextToVideoPipeline.from_pretrained(args.video_model)
    if not same_model(t2a.text_encoder, t2v.text_encoder):  # configs bar where each was saved, and weights
        logging.warning("the two backbones come with different text encoders; using the audio model's")
    return t2a, t2v


def load_adapter(args, audio_model, video_model) -> AVLinkFusionAdapter:
    """The adapter to train; `audio_model` / `video_model`: av-link backbones or views of diffusers ones."""
    if args.adapter_model:  # --adapter_config may add modules to the trained blocks (they start fresh)
        folder = os.path.join(args.adapter_model, "fusion_adapter")
        adapter = AVLinkFusionAdapter.from_trained(folder if os.path.isdir(folder) else args.adapter_model,
                                                   **json.loads(args.adapter_config))
    else:
        adapter_kwargs = dict(audio_dim=audio_model.hidden_size, video_dim=video_model.hidden_size,
                              num_audio_layers=len(audio_model.blocks), num_video_layers=len(video_model.blocks),
                              time_rate=video_model.tokens_per_second)
        adapter = AVLinkFusionAdapter.from_preset(args.preset, **{**adapter_kwargs, **json.loads(args.adapter_config)})
    if args.freeze_time_bias:
        adapter.freeze_time_bias()
    return adapter


def main(argv=None):
    args = parse_args(argv)
    check_training_arguments(args)
    check_lora_arguments(args)
    logging.basicConfig(level=logging.INFO)
    accelerator = make_accelerator(args, find_unused_parameters=True)
    if not uses_own_backbones(args):
        return train_between_diffusers_backbones(args, accelerator, load_adapter)
    if args.latent_cache:
        raise ValueError("--latent_cache holds VAE latents: it trains between diffusers backbones, not av-link's own")
    t2a, t2v = load_backbones(args)
    audio_model, video_model = t2a.audio_transformer, t2v.video_transformer
    adapter = load_adapter(args, audio_model, video_model)
    adapter.check_backbones(audio_model, video_model)  # fail before any data is read
    for backbone in (audio_model, video_model):
        backbone.requires_grad_(False).eval()
        if args.gradient_checkpointing:
            backbone.enable_gradient_checkpointing()
    if args.gradient_checkpointing:
        adapter.enable_gradient_checkpointing()
    add_lora_adapters(dict(audio=audio_model, video=video_model, fusion=adapter), args)
    clip_seconds = args.clip_seconds or t2a.config.clip_seconds
    dataset = AVClipDataset(
        args.data_dir, fps=video_model.config.frame_rate, height=t2v.config.height, width=t2v.config.width,
        mel_frontend=t2a.audio_frontend, clip_seconds=clip_seconds, random_crop=True, modalities=("audio", "video"),
        cache_dir=args.cache_dir, seed=args.seed, return_waveform=False, repeat_fps=args.repeat_fps,
    )
    encoder = FrozenTextEncoder(t2a.text_encoder, t2a.tokenizer).to(accelerator.device)
    cfg = fusion_objective_config(args)
    objective = FusionObjective(adapter, audio_model, video_model, encoder, args.task, cfg)
    # A backbone's LoRA lives inside the backbone: then the trained parameters are all those of the objective.
    trainable = objective if {"audio", "video"} & set(args.lora_targets) else adapter
    trained = train(args, accelerator, objective, trainable, dataset, run_name=f"train_fusion_{args.task}")
    if accelerator.is_main_process:
        audio_model, video_model, adapter = audio_model.cpu(), video_model.cpu(), trained.adapter.float().cpu()
        lora = None
        if args.lora_targets:
            lora = lora_save_kwargs(audio_transformer=audio_model, video_transformer=video_model, fusion_adapter=adapter)
            for model in (audio_model, video_model, adapter):  # the pipeline folder keeps the base weights
                if getattr(model, "peft_config", None):
                    model.unload_lora()
        components = dict(audio_transformer=audio_model, video_transformer=video_model, fusion_adapter=adapter,
                          scheduler=FlowMatchEulerScheduler(), text_encoder=t2a.text_encoder.cpu(), tokenizer=t2a.tokenizer,
                          audio_frontend=t2a.audio_frontend, vocoder=t2a.vocoder)
        sampling = dict(height=t2v.config.height, width=t2v.config.width, clip_seconds=clip_seconds)
        info = {**training_info(args, dataset, accelerator), **lora_training_info(args)}
        targets = {"v2a": [(AVLinkV2APipeline, args.output_dir)], "a2v": [(AVLinkA2VPipeline, args.output_dir)],
                   "joint_generation": [(AVLinkTextToAudioVideoPipeline, args.output_dir)],
                   "joint": [(AVLinkV2APipeline, os.path.join(args.output_dir, "v2a")), (AVLinkA2VPipeline, os.path.join(args.output_dir, "a2v"))]}
        for cls, path in targets[args.task]:
            cls(**components, **sampling).save_pretrained(path, training_info=info)
            if lora:
                cls.save_lora_weights(path, **lora)
            accelerator.print(f"saved {cls.__name__} to {path}")


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"train_fusion: error: {error}")
