"""Training throughput of the Fusion Blocks (and, with --backbone, a backbone): samples/s of full optimizer
steps on random in-memory batches (no data loading), and model FLOPs utilisation on a GPU.

    python benchmarks/training_throughput.py                          # tiny preset, CPU
    python benchmarks/training_throughput.py --preset paper --device cuda --bf16 --batch 8 --gradient-checkpointing
    python benchmarks/training_throughput.py --preset synthhits_v2 --time-bias learned --threads 1   # the v2 stack's
    python benchmarks/training_throughput.py --preset synthhits_v2 --time-bias frozen --threads 1    # V2A Fusion step
    python benchmarks/training_throughput.py --preset synthhits_v2 --time-bias frozen --threads 1 --reinject static  # V2A, static video
    python benchmarks/training_throughput.py --preset synthhits_v2 --time-bias frozen --threads 1 --task a2v --reinject static
    python benchmarks/training_throughput.py --preset synthhits_v2 --time-bias frozen --threads 1 --compile   # regional compile
    python benchmarks/training_throughput.py --preset synthhits_v2 --time-bias frozen --threads 1 --video-patch 8 --video-hidden 192  # the stack's default video

FLOPs per step are counted once on the meta device (forward + backward of the trained path, matmul-type
ops); MFU = FLOPs per second / the device's peak dense bf16 FLOPs (--peak-tflops, default 989 for H100 SXM).
"""

import argparse
import json
import os
import platform
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from av_link import AVLinkAudioTransformer, AVLinkFusionAdapter, AVLinkVideoTransformer
from av_link.training.objectives import FusionObjective, ObjectiveConfig

CLIPS = {  # (video frames, height, width, mel frames) of one training clip
    "tiny": (16, 16, 16, 172),
    "paper": (31, 36, 64, 444),
    "synthhits_v2": (24, 16, 16, 172),  # 2 s at 12 fps
}
# Size presets and overrides per benchmark preset: "synthhits_v2" is examples/synthhits_v2_train.sh's stack.
MODELS = {
    "tiny": ("tiny", {"patch_size": 2}, {"patch_size": (1, 4, 4)}, {}),
    "paper": ("paper", {}, {}, {}),
    "synthhits_v2": ("tiny", {"patch_size": 2, "hidden_size": 192, "mlp_dim": 384, "num_layers": 6},
                     {"patch_size": (1, 4, 4), "hidden_size": 128, "mlp_dim": 256, "num_layers": 4, "frame_rate": 12},
                     {"hidden_size": 128, "mlp_dim": 256, "num_blocks": 4, "time_embed_dim": 128}),
}


def build(preset: str, device, text_dim: int, text_len: int, time_bias: str = "off", reinject: str = "both", task: str = "v2a",
          video_overrides: dict | None = None):
    size, audio_kw, video_kw, adapter_kw = MODELS[preset]
    video_kw = {**video_kw, **(video_overrides or {})}
    # static conditioning features: the blocks feed only the generated backbone (the stack script's REINJECT=static)
    generated = "audio" if task == "v2a" else "video"
    adapter_kw = {**adapter_kw, "reinject": generated if reinject == "static" else reinject}
    audio = AVLinkAudioTransformer.from_preset(size, text_dim=text_dim, **audio_kw)
    video = AVLinkVideoTransformer.from_preset(size, text_dim=text_dim, **video_kw)
    adapter = AVLinkFusionAdapter.from_preset(size, audio_dim=audio.config.hidden_size, video_dim=video.config.hidden_size,
                                              num_audio_layers=len(audio.blocks), num_video_layers=len(video.blocks),
                                              time_rate=video.tokens_per_second, time_bias=time_bias != "off", **adapter_kw)
    if time_bias == "frozen":  # train_fusion.py --freeze_time_bias
        adapter.freeze_time_bias()
    for backbone in (audio, video):
        backbone.requires_grad_(False).eval()

    def encode_text(captions):
        return torch.randn(len(captions), text_len, text_dim, device=device), torch.ones(len(captions), text_len, dtype=torch.bool, device=device)

    objective = FusionObjective(adapter, audio, video, encode_text, task, ObjectiveConfig(logit_mean=-1.0))
    return objective.to(device), adapter


def batch_for(preset: str, batch: int, device):
    frames, h, w, mels = CLIPS[preset]
    return {"video": torch.rand(batch, 3, frames, h, w, device=device) * 2 - 1, "mel": torch.randn(batch, mels, 80, device=device),
            "audio_caption": ["a sound"] * batch, "video_caption": ["a video"] * batch, "index": list(range(batch))}


def count_flops(preset, batch, text_dim, text_len, gradient_checkpointing, time_bias, reinject="both", task="v2a",
                video_overrides=None) -> float:
    with torch.device("meta"):
        objective, adapter = build(preset, "meta", text_dim, text_len, time_bias, reinject, task, video_overrides)
        data = batch_for(preset, batch, "meta")
    if gradient_checkpointing:
        adapter.enable_gradient_checkpointing()
    with FlopCounterMode(display=False) as counter:
        objective(data, 0, 0).backward()
    return counter.get_total_flops()


def processor_name() -> str:
    """The CPU's model name (CPU timings differ 1.8x between this project's 2-core machines), with its widest SIMD."""
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), platform.machine())
    simd = next((flag for flag in ("avx512f", "avx2", "neon", "asimd") if f" {flag}" in info), None)
    return f"{name} ({simd})" if simd else name


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", choices=sorted(CLIPS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--time-bias", choices=["off", "learned", "frozen"], default=None,
                        help="the Fusion Blocks' time-distance bias (default: learned for synthhits_v2, off otherwise); "
                             "frozen = train_fusion.py --freeze_time_bias")
    parser.add_argument("--task", choices=["v2a", "a2v"], default="v2a")
    parser.add_argument("--compile", action="store_true",
                        help="regional compilation: torch.compile each backbone's and the adapter's repeated blocks "
                             "(diffusers' compile_repeated_blocks). On a CPU it does not pay (synthhits_v2, one thread, "
                             "AMD EPYC: 2.19 s/step against 2.16 eager, after 191 s of compilation): the step is matmuls "
                             "and SDPA's flash kernel, which compilation leaves as they are")
    parser.add_argument("--reinject", choices=["both", "static"], default="both",
                        help="both: symmetric reinjection (the method); static: the blocks feed only the generated backbone, "
                             "the conditioning features are static (docs/ablations.md)")
    parser.add_argument("--video-patch", type=int, default=None,
                        help="the video backbone's spatial patch size (the stack script's VIDEO_PATCH; default: the preset's)")
    parser.add_argument("--video-hidden", type=int, default=None, help="the video backbone's width (mlp 2x; VIDEO_HIDDEN)")
    args = parser.parse_args()
    video_overrides = {}
    if args.video_patch:
        video_overrides["patch_size"] = (1, args.video_patch, args.video_patch)
    if args.video_hidden:
        video_overrides.update(hidden_size=args.video_hidden, mlp_dim=2 * args.video_hidden)
    if args.threads:
        torch.set_num_threads(args.threads)
    time_bias = args.time_bias or ("learned" if args.preset == "synthhits_v2" else "off")
    text_dim, text_len = (4096, 32) if args.preset == "paper" else (32, 16)
    device = torch.device(args.device)
    objective, adapter = build(args.preset, device, text_dim, text_len, time_bias, args.reinject, args.task, video_overrides)
    if args.gradient_checkpointing:
        for m in (adapter, objective.audio_model, objective.video_model):
            m.enable_gradient_checkpointing()
    if args.compile:
        for m in (adapter, objective.audio_model, objective.video_model):
            m.compile_repeated_blocks()
    optimizer = torch.optim.AdamW([p for p in adapter.parameters() if p.requires_grad], lr=3e-4, betas=(0.9, 0.99), weight_decay=0.01)
    data = batch_for(args.preset, args.batch, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)

    def step(i):
        with autocast:
            loss = objective(data, 0, i)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    start = time.perf_counter()
    for i in range(args.warmup):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    warmup_seconds = time.perf_counter() - start  # with --compile: mostly compilation
    start = time.perf_counter()
    for i in range(args.steps):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.steps
    flops = count_flops(args.preset, args.batch, text_dim, text_len, args.gradient_checkpointing, time_bias, args.reinject, args.task,
                        video_overrides)
    result = {"preset": args.preset, "video_overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in video_overrides.items()}, "task": args.task, "time_bias": time_bias, "reinject": args.reinject, "compile": args.compile, "device": str(device), "batch": args.batch, "bf16": args.bf16, "threads": torch.get_num_threads(),
              "processor": processor_name(),
              "warmup_seconds": warmup_seconds, "seconds_per_step": seconds, "samples_per_second": args.batch / seconds, "tflop_per_step": flops / 1e12,
              "achieved_tflops": flops / seconds / 1e12}
    if device.type == "cuda":
        result["mfu"] = result["achieved_tflops"] / args.peak_tflops
    print(json.dumps(result, indent=1))
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", f"training_throughput_{args.preset}{'' if time_bias == 'off' else '_' + time_bias}"
                       f"{'' if args.task == 'v2a' else '_a2v'}{'' if args.reinject == 'both' else '_reinject_' + args.reinject}{'_compile' if args.compile else ''}{f'_video_patch{args.video_patch}' if args.video_patch else ''}"
                       f"{f'_video_hidden{args.video_hidden}' if args.video_hidden else ''}_{device.type}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
