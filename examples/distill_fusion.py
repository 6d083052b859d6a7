"""Distil a V2A or A2V pipeline (64 steps + guidance) into a few-step student (docs/distillation.md).

    accelerate launch examples/distill_fusion.py --teacher runs/v2/v2a --data_dir DATA/train \
        --output_dir runs/v2/v2a_8step --num_student_steps 8 --max_train_steps 2000 --resume_from_checkpoint latest

1. The teacher samples `--num_trajectories` clips of `--data_dir` with its own steps and guidance; its states at
   the student's grid times are cached in `OUTPUT_DIR/trajectories` (or `--trajectory_dir`), shard by shard, so
   an interrupted run keeps what it made. Processes split the shards.
2. The student (the teacher's Fusion Blocks, trained in full, and a LoRA on the generated modality's backbone)
   learns to cover each of the teacher's segments in one Euler step without guidance
   (`av_link.training.distillation`). Checkpoints and `--resume_from_checkpoint latest` as in train_fusion.py.
3. OUTPUT_DIR becomes a pipeline folder that keeps only what the student changed (`fusion_adapter/`, the LoRA,
   its scheduler and config) and takes the rest from the teacher's folder (`_components_from`, relative; move the
   two folders together). Its config samples with the student's grid, `--num_student_steps` steps and no guidance:
   `AVLinkV2APipeline.from_pretrained(OUTPUT_DIR)(video=...)`.
"""

import argparse
import json
import logging
import os
import sys

import av_link.pipelines  # noqa: F401  (first: importing av_link.loaders first runs into diffusers' registration of them)
from av_link.data import AVClipDataset
from av_link.loaders import lora_save_kwargs
from av_link.pipelines.folders import mark_adapter_only, mark_fused_lora, pipeline_class
from av_link.pipelines.pipeline_av_link_base import check_guidance_span
from av_link.pipelines.pipeline_av_link_cross_modal import AVLinkCrossModalPipeline
from av_link.schedulers import FlowMatchEulerScheduler
from av_link.training.arguments import add_training_arguments, check_training_arguments
from av_link.training.distillation import DistillationObjective
from av_link.training.lora import add_lora_adapters, add_lora_arguments, check_lora_arguments, lora_training_info
from av_link.training.loop import make_accelerator, train
from av_link.training.setup import training_info
from av_link.training.text import FrozenTextEncoder
from av_link.training.trajectories import (
    TrajectoryConfig,
    TrajectoryDataset,
    generate_trajectories,
    prepare_cache,
    teacher_sigmas,
)

LORA_FILE = "pytorch_lora_weights.safetensors"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="the V2A or A2V pipeline folder to distil")
    parser.add_argument("--num_student_steps", type=int, default=8, help="must divide the teacher's steps")
    parser.add_argument("--teacher_steps", type=int, default=None, help="default: the teacher's config (64)")
    parser.add_argument("--teacher_guidance_scale", type=float, default=None, help="default: the teacher's config (5.0)")
    parser.add_argument("--teacher_guidance_start", type=float, default=None,
                        help="the teacher guides from this fraction of its steps (default: the teacher's config, 0)")
    parser.add_argument("--teacher_guidance_stop", type=float, default=None,
                        help="... up to this one (default: the teacher's config, e.g. 0.3 for the shipped V2A; 1: every step)")
    parser.add_argument("--num_trajectories", type=int, default=256, help="teacher samples to distil from")
    parser.add_argument("--trajectory_batch_size", type=int, default=16, help="teacher batch size = trajectories per cache shard")
    parser.add_argument("--trajectory_dir", default=None, help="the trajectory cache (default: OUTPUT_DIR/trajectories)")
    parser.add_argument("--generated_text_dropout", type=float, default=0.25, help="share of trajectories with no prompt")
    parser.add_argument("--conditioning_text_dropout", type=float, default=0.2)
    parser.add_argument("--components_from", default=None,
                        help="where the student folder says the shared components are (default: the teacher's folder, "
                             "relative to OUTPUT_DIR)")
    add_training_arguments(parser)
    add_lora_arguments(parser)
    # A fine-tune of trained blocks: a lower rate, a short warmup; the LoRA goes on the generated backbone unless told.
    parser.set_defaults(learning_rate=2e-4, lr_warmup_steps=100, checkpointing_steps=250, lora_rank=8, lora_targets=None,
                        lora_layers="to_q,to_k,to_v,to_out,linear_1,linear_2")
    return parser.parse_args(argv)


def load_teacher(path: str) -> AVLinkCrossModalPipeline:
    if not os.path.isfile(os.path.join(path, "model_index.json")):
        raise ValueError(f"--teacher {path} is not a pipeline folder (no model_index.json)")
    teacher = pipeline_class(path).from_pretrained(path)
    if not isinstance(teacher, AVLinkCrossModalPipeline):
        raise ValueError(f"--teacher {path} holds a {type(teacher).__name__}; distil a V2A or A2V pipeline")
    return teacher


def make_trajectories(args, accelerator, teacher, encoder) -> TrajectoryDataset:
    """Step 1: the teacher's trajectories, made once (per process a share of the missing shards)."""
    cfg = TrajectoryConfig(
        num_trajectories=args.num_trajectories, shard_size=args.trajectory_batch_size,
        num_teacher_steps=args.teacher_steps or teacher.config.num_inference_steps,
        guidance_scale=teacher.config.guidance_scale if args.teacher_guidance_scale is None else args.teacher_guidance_scale,
        guidance_start=teacher.config.get("guidance_start", 0.0) if args.teacher_guidance_start is None else args.teacher_guidance_start,
        guidance_stop=teacher.config.get("guidance_stop", 1.0) if args.teacher_guidance_stop is None else args.teacher_guidance_stop,
        num_student_steps=args.num_student_steps, conditioning_time=teacher.config.conditioning_timestep,
        generated_text_dropout=args.generated_text_dropout, conditioning_text_dropout=args.conditioning_text_dropout, seed=args.seed,
    )
    check_guidance_span(cfg.guidance_start, cfg.guidance_stop)
    cache_dir = args.trajectory_dir or os.path.join(args.output_dir, "trajectories")
    sigmas = teacher_sigmas(teacher, cfg.num_teacher_steps)
    if accelerator.is_main_process:
        prepare_cache(cache_dir, cfg, sigmas)
    accelerator.wait_for_everyone()
    dataset = AVClipDataset(
        args.data_dir, fps=teacher.video_fps, height=teacher.config.height, width=teacher.config.width,
        mel_frontend=teacher.audio_frontend, clip_seconds=args.clip_seconds or teacher.config.clip_seconds, random_crop=True,
        modalities=(teacher.conditioning,), cache_dir=args.cache_dir, seed=args.seed, return_waveform=False,
    )
    made = generate_trajectories(cache_dir, teacher, dataset, cfg, encoder, accelerator.process_index, accelerator.num_processes,
                                 progress=accelerator.is_local_main_process)
    accelerator.print(f"teacher trajectories: {made} shards made here, cache {cache_dir}")
    accelerator.wait_for_everyone()
    return TrajectoryDataset(cache_dir)


def guided_span(grid: dict) -> str:
    span = grid.get("guidance_start", 0.0), grid.get("guidance_stop", 1.0)
    return "" if span == (0.0, 1.0) else f" on the steps from {span[0]:g} to {span[1]:g} of the way"


def save_student(args, teacher, objective, trajectories, accelerator) -> None:
    """Step 3: the student's pipeline folder, holding only what differs from the teacher's."""
    audio_model, video_model, adapter = objective.audio_model.cpu(), objective.video_model.cpu(), objective.adapter.float().cpu()
    lora = lora_save_kwargs(audio_transformer=audio_model, video_transformer=video_model, fusion_adapter=adapter)
    for model in (audio_model, video_model, adapter):  # the folder's weights are the base ones; the LoRA goes beside them
        if getattr(model, "peft_config", None):
            model.unload_lora()
    config = {k: teacher.config[k] for k in ("conditioning_timestep", "height", "width", "clip_seconds", "window_overlap_seconds",
                                             "max_sequence_length")}
    sigmas = trajectories.sigmas[:-1]  # the pipeline's convention: the scheduler appends the final 0
    student = type(teacher)(
        audio_transformer=audio_model, video_transformer=video_model, fusion_adapter=adapter, scheduler=FlowMatchEulerScheduler(),
        text_encoder=teacher.text_encoder, tokenizer=teacher.tokenizer, audio_frontend=teacher.audio_frontend,
        vocoder=teacher.vocoder, num_inference_steps=len(sigmas), guidance_scale=1.0, sigmas=sigmas, **config,
    )
    grid = trajectories.config
    info = {
        **training_info(args, trajectories, accelerator), **lora_training_info(args),
        "distillation": f"{len(sigmas)}-step student of {os.path.abspath(args.teacher)} ({grid['num_teacher_steps']} steps, guidance "
                        f"{grid['guidance_scale']}{guided_span(grid)}), trajectory matching on {grid['num_trajectories']} teacher trajectories "
                        "(docs/distillation.md)",
        "sigmas": json.dumps([round(s, 6) for s in sigmas]),
    }
    out = args.output_dir
    student.save_pretrained(out, training_info=info)
    keep = {"scheduler"} | ({"fusion_adapter"} if "fusion" not in args.lora_targets else set())
    mark_adapter_only(out, args.components_from or os.path.relpath(os.path.abspath(args.teacher), os.path.abspath(out)),
                      [name for name in student.components if name not in keep])
    type(teacher).save_lora_weights(out, weight_name=LORA_FILE, **lora)
    mark_fused_lora(out, LORA_FILE)
    accelerator.print(f"saved the {len(sigmas)}-step {type(teacher).__name__} student to {out}")


def main(argv=None):
    args = parse_args(argv)
    teacher = load_teacher(args.teacher)
    args.lora_targets = args.lora_targets or [teacher.generated]
    args.adapter_model = args.teacher  # a LoRA on the Fusion Blocks adapts the teacher's
    check_training_arguments(args)
    check_lora_arguments(args)
    logging.basicConfig(level=logging.INFO)
    accelerator = make_accelerator(args, find_unused_parameters=True)
    teacher.to(accelerator.device)
    encoder = FrozenTextEncoder(teacher.text_encoder, teacher.tokenizer, teacher.config.max_sequence_length)
    trajectories = make_trajectories(args, accelerator, teacher, encoder)

    # The student starts as the teacher's conditional branch: the same adapter, a zero LoRA.
    audio_model, video_model, adapter = teacher.audio_transformer, teacher.video_transformer, teacher.fusion_adapter
    audio_model.requires_grad_(False)
    video_model.requires_grad_(False)
    adapter.requires_grad_(True)
    if args.gradient_checkpointing:
        for model in (audio_model, video_model, adapter):
            model.enable_gradient_checkpointing()
    add_lora_adapters(dict(audio=audio_model, video=video_model, fusion=adapter), args)
    objective = DistillationObjective(adapter, audio_model, video_model, encoder, teacher.generated,
                                      trajectories.config["conditioning_time"], trajectories.sigmas, seed=args.seed)
    trained = train(args, accelerator, objective, objective, trajectories, run_name=f"distill_{teacher.generated}")
    if accelerator.is_main_process:
        save_student(args, teacher, trained, trajectories, accelerator)


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"distill_fusion: error: {error}")
