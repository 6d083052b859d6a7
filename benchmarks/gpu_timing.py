"""Measured bf16 seconds per sample and training samples/s on one GPU, at real scale on random weights.

The measured counterpart of `pipeline_flops.py` (av-link's own paper-scale backbones) and `open_backbones.py`
(Wan 2.1 T2V 1.3B + LongCat-AudioDiT 1B), whose FLOP counts give the MFU here.

Parts (each writes `OUT/gpu_timing.json` when it ends, so a cut-off run keeps what it measured):
* `paper`: the real `AVLinkV2APipeline` / `AVLinkA2VPipeline.__call__` on the paper clip (5.17 s: 31 frames of
  64x36 at 6 fps; 445 mel frames), `output_type="latent"`: the teacher (64 steps, CFG 5: the batched conditional +
  unconditional pass a step) and a distilled student (8 steps, guidance 1: one pass a step; a student's LoRA is fused
  into the backbone, so random weights time it exactly).
* `open_vae`: Wan's VAE encoding the clip (81 frames of 480x832) and LongCat's VAE decoding its 5.06 s, once each,
  in float32 as both pipelines' model cards load them.
* `open_sample`: Wan + LongCat + the paper-sized adapter (8 Fusion Blocks, D = 1024), bf16: one full 64-step V2A
  sample (CFG 5) and the A2V per-step time from two step counts (the fastest of 3 runs each; extrapolated to 64
  steps and labelled so).
* `open_train`: V2A Fusion Block training steps as `accelerate --mixed_precision bf16` runs them: frozen bf16
  backbones, fp32 adapter under bf16 autocast, AdamW and an EMA copy; samples/s and peak memory, with and without
  gradient checkpointing, beside `training/memory.py`'s estimate.

Not timed: the text encoders (their states are random stand-ins of each pipeline's shapes; once per sample), and
reading or writing media. MFU = counted FLOPs (`--flops`, on the meta device; run anywhere) / seconds / the
device's dense bf16 peak (`--peak-tflops`, 989 for H100 and H200 SXM).

    python benchmarks/gpu_timing.py --out DIR                 # on a GPU: the four timed parts
    python benchmarks/gpu_timing.py --flops --out DIR         # anywhere: the FLOP counts the MFU needs
    python benchmarks/gpu_timing.py --tiny --device cpu --out DIR   # the same code paths on tiny configs
"""

import argparse
import copy
import functools
import json
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import open_backbones as ob  # noqa: E402
import pipeline_flops as pf  # noqa: E402

from av_link import AVLinkA2VPipeline, AVLinkV2APipeline  # noqa: E402
from av_link.training.memory import fusion_training_loss  # noqa: E402

PIPELINES = {"v2a": AVLinkV2APipeline, "a2v": AVLinkA2VPipeline}
TEACHER = dict(num_inference_steps=64, guidance_scale=5.0)
STUDENT = dict(num_inference_steps=8, guidance_scale=1.0)
PROMPT = pf.PROMPT


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device):
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def peak_reset(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device):
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


# -- av-link's own backbones at paper scale -------------------------------------------------------

def paper_run(direction, device, dtype, preset, text_tokens=32):
    """(pipeline, run(**sampling)) for one paper clip."""
    pipe = pf.paper_pipeline(PIPELINES[direction], text_tokens, device, dtype, preset)
    kwargs, _, _ = pf.paper_input(direction)

    def run(**sampling):
        out = pipe(**kwargs, prompt=PROMPT, conditioning_prompt=PROMPT, output_type="latent", **sampling)
        return out.audios if direction == "v2a" else out.frames

    return pipe, run


def time_paper(device, dtype, preset, repeats) -> dict:
    results = {}
    for direction in ("v2a", "a2v"):
        pipe, run = paper_run(direction, device, dtype, preset)
        with torch.no_grad():
            run(num_inference_steps=2, guidance_scale=5.0)  # warm-up: kernels, allocator
            peak_reset(device)
            teacher = [timed(lambda: run(**TEACHER), device)[0] for _ in range(repeats)]
            student = [timed(lambda: run(**STUDENT), device)[0] for _ in range(max(repeats, 3))]
        results[direction] = dict(teacher_seconds=statistics.median(teacher), teacher_runs=teacher,
                                  student_seconds=statistics.median(student), student_runs=student, peak_gib=peak_gib(device))
        del pipe, run
    return results


def count_paper(preset) -> dict:
    """FLOPs of the same runs on the meta device: once per run + per step, from two step counts."""
    counts = {}
    with torch.no_grad():
        for direction in ("v2a", "a2v"):
            _, run = paper_run(direction, pf.META, None, preset)
            counts[direction] = {}
            for name, sampling in (("teacher", TEACHER), ("student", STUDENT)):
                r = pf.per_step(lambda n, s=sampling: run(num_inference_steps=n, guidance_scale=s["guidance_scale"]), (1, 2))
                counts[direction][name] = dict(per_step=r["per_step"], once=r["once"],
                                               per_sample=r["once"] + sampling["num_inference_steps"] * r["per_step"])
    return counts


# -- Wan 2.1 + LongCat-AudioDiT -------------------------------------------------------------------

def time_open_vae(parts, scale, device) -> dict:
    clip = scale.clip
    video_vae, audio_vae = parts["video_vae"].float(), parts["audio_vae"].float()
    video = torch.rand(1, 3, clip["frames"], clip["height"], clip["width"], device=device) * 2 - 1
    latents = torch.randn(1, audio_vae.config.latent_dim, round(scale.seconds * clip["sample_rate"] / audio_vae.config.downsampling_ratio),
                          device=device)
    with torch.no_grad():
        video_vae.encode(video[:, :, :5])  # warm-up
        audio_vae.decode(latents[..., :4])
        peak_reset(device)
        encode = timed(lambda: video_vae.encode(video), device)[0]
        encode_peak = peak_gib(device)
        decode = timed(lambda: audio_vae.decode(latents), device)[0]
    return dict(wan_vae_encode_seconds=encode, wan_vae_encode_peak_gib=encode_peak, longcat_vae_decode_seconds=decode,
                video_shape=list(video.shape), audio_latent_shape=list(latents.shape))


def open_run(direction, parts, scale, device, dtype):
    pipe = ob.real_pipeline(PIPELINES[direction], parts, shift=1.0 if direction == "v2a" else 3.0, scale=scale,
                            device=device, dtype=dtype)
    item = ob.clip_item(pipe)  # the conditioning input as the VAE encode gives it (timed in `open_vae`)
    pipe.prepare_conditioning = lambda inputs, rates: [item]

    def run(steps):
        out = pipe(item.signal, prompt=PROMPT, conditioning_prompt=PROMPT, num_inference_steps=steps,
                   guidance_scale=TEACHER["guidance_scale"], output_type="latent")
        return out.audios if direction == "v2a" else out.frames

    return run


def time_open_sample(parts, scale, device, dtype, a2v_steps=(2, 6)) -> dict:
    results = {}
    with torch.no_grad():
        run = open_run("v2a", parts, scale, device, dtype)
        run(2)  # warm-up
        peak_reset(device)
        seconds = timed(lambda: run(TEACHER["num_inference_steps"]), device)[0]
        results["v2a"] = dict(seconds_per_sample=seconds, steps=TEACHER["num_inference_steps"], peak_gib=peak_gib(device))
        run = open_run("a2v", parts, scale, device, dtype)
        run(1)  # warm-up
        peak_reset(device)
        (n1, n2) = a2v_steps
        # The per-step time is a difference of two timings: each is the fastest of 3 runs, so one run slowed by
        # something else on the machine does not skew it (single runs gave a negative slope on a loaded CPU).
        t1, t2 = (min(timed(functools.partial(run, n), device)[0] for _ in range(3)) for n in (n1, n2))
        per_step = (t2 - t1) / (n2 - n1)
        results["a2v"] = dict(steps_timed={n1: t1, n2: t2}, seconds_per_step=per_step, once=t1 - n1 * per_step,
                              seconds_per_sample_extrapolated=t1 + (TEACHER["num_inference_steps"] - n1) * per_step,
                              peak_gib=peak_gib(device))
    return results


def time_open_train(parts, scale, device, configs, warmup=1, steps=3) -> dict:
    """Training steps of the V2A adapter; each config is (batch, gradient_checkpointing)."""
    pipe = ob.real_pipeline(AVLinkV2APipeline, parts, shift=1.0, scale=scale, device=device)
    backbones = [pipe.family(m).backbone for m in ("audio", "video")]
    for backbone in backbones:  # frozen, as train_fusion.py has them: no weight gradients, nothing saved for them
        getattr(backbone, "model", backbone).requires_grad_(False)
    adapter = pipe.fusion_adapter.float().requires_grad_(True).train()
    ema = [p.detach().clone() for p in adapter.parameters()]
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=1e-4)
    results = {}
    for batch, checkpointing in configs:
        key = f"batch{batch}_{'checkpointing' if checkpointing else 'no_checkpointing'}"
        models = [*backbones, adapter]
        for m in models:
            (m.enable_gradient_checkpointing if checkpointing else m.disable_gradient_checkpointing)()
        inputs = ob.training_inputs(pipe, batch)

        def step():
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = fusion_training_loss(*backbones, adapter, **inputs, task="v2a")
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            torch._foreach_lerp_(ema, [p.detach() for p in adapter.parameters()], 1e-3)

        try:
            with torch.enable_grad():
                peak_reset(device)
                for _ in range(warmup):
                    step()
                seconds = timed(lambda: [step() for _ in range(steps)], device)[0] / steps
            frozen_grads = sum(p.grad is not None for b in backbones for p in getattr(b, "model", b).parameters())
            results[key] = dict(batch=batch, gradient_checkpointing=checkpointing, seconds_per_step=seconds,
                                samples_per_second=batch / seconds, peak_gib=peak_gib(device), frozen_grads=frozen_grads)
        except torch.OutOfMemoryError as error:  # the estimate says whether a config fits; record it and go on
            results[key] = dict(batch=batch, gradient_checkpointing=checkpointing, out_of_memory=str(error).split("\n")[0])
        optimizer.zero_grad(set_to_none=True)
        del inputs
    return results


# -- report ---------------------------------------------------------------------------------------

def report(timing: dict, flops: dict, open_counts: dict, peak_tflops: float) -> str:
    """Markdown of a timed run, with MFU from the paper counts (`--flops`) and `open_backbones.json`."""
    parts, mfu = timing["parts"], lambda f, s: f / s / (peak_tflops * 1e12)  # noqa: E731
    lines = [f"# GPU timings: {timing['device']}, {timing['dtype']}, torch {timing['torch']} (random weights)", "",
             f"MFU against {peak_tflops:.0f} TFLOP/s dense bf16; FLOPs counted on the meta device (matmul-type ops).", ""]
    if "paper" in parts and "error" not in parts["paper"]:
        lines += ["## av-link's own backbones at paper scale (5.17 s clip, latents out)", "",
                  "| direction | sampler | seconds / sample | TFLOP / sample | MFU |", "|---|---|---|---|---|"]
        for d in ("v2a", "a2v"):
            for name, steps in (("teacher", "64 steps, CFG 5"), ("student", "8 steps, guidance 1")):
                sec, f = parts["paper"][d][f"{name}_seconds"], flops["paper"][d][name]["per_sample"]
                lines.append(f"| {d.upper()} | {name} ({steps}) | {sec:.2f} | {f / 1e12:,.0f} | {mfu(f, sec):.2f} |")
        lines.append("")
    if "open_sample" in parts and "error" not in parts["open_sample"]:
        o, c = parts["open_sample"], open_counts
        v2a_flops = c["v2a"]["pipeline"]["once"] + 64 * c["v2a"]["pipeline"]["per_step"]
        lines += ["## Wan 2.1 T2V 1.3B + LongCat-AudioDiT 1B + 8 Fusion Blocks (81 frames 480x832, 5.06 s; latents out)", "",
                  "| what | seconds | TFLOP | MFU |", "|---|---|---|---|",
                  f"| V2A sample, 64 steps, CFG 5 (measured whole) | {o['v2a']['seconds_per_sample']:.1f} | {v2a_flops / 1e12:,.0f} | "
                  f"{mfu(v2a_flops, o['v2a']['seconds_per_sample']):.2f} |",
                  f"| A2V step, CFG 5 (from {', '.join(o['a2v']['steps_timed'])} steps) | {o['a2v']['seconds_per_step']:.2f} | "
                  f"{c['a2v']['pipeline']['per_step'] / 1e12:,.0f} | {mfu(c['a2v']['pipeline']['per_step'], o['a2v']['seconds_per_step']):.2f} |",
                  f"| A2V sample, 64 steps (extrapolated) | {o['a2v']['seconds_per_sample_extrapolated']:.1f} | | |"]
        if "open_vae" in parts and "error" not in parts["open_vae"]:
            v = parts["open_vae"]
            lines += [f"| Wan VAE encode of the clip (fp32) | {v['wan_vae_encode_seconds']:.2f} | | |",
                      f"| LongCat VAE decode of 5.06 s (fp32) | {v['longcat_vae_decode_seconds']:.3f} | | |"]
        lines.append("")
    if "open_train" in parts and "error" not in parts["open_train"]:
        t = open_counts["training"]["v2a"]
        lines += ["## V2A Fusion Block training (bf16 autocast, fp32 adapter, AdamW, EMA)", "",
                  "| batch | checkpointing | s / step | samples / s | MFU | peak GiB measured | GiB estimated (meta) |",
                  "|---|---|---|---|---|---|---|"]
        for r in (r for r in parts["open_train"].values() if isinstance(r, dict)):
            if "out_of_memory" in r:
                lines.append(f"| {r['batch']} | {'on' if r['gradient_checkpointing'] else 'off'} | out of memory | | | | |")
                continue
            key = "checkpointing" if r["gradient_checkpointing"] else "no_checkpointing"
            f = r["batch"] * t["step_flops"][key] / t["batch"]  # linear in the batch
            estimate = (t["memory"][key]["total_bytes"] if r["batch"] == t["batch"]
                        else t["checkpointed_totals"].get(str(r["batch"])) if r["gradient_checkpointing"] else None)
            lines.append(f"| {r['batch']} | {'on' if r['gradient_checkpointing'] else 'off'} | {r['seconds_per_step']:.2f} | "
                         f"{r['samples_per_second']:.3f} | {mfu(f, r['seconds_per_step']):.2f} | {r['peak_gib']:.1f} | "
                         + (f"{estimate / 2**30:.1f} |" if estimate else "- |"))
        lines.append("")
    return "\n".join(lines)


# -- driver -----------------------------------------------------------------------------------------

def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--parts", nargs="*", default=["paper", "open_vae", "open_sample", "open_train"])
    parser.add_argument("--flops", action="store_true", help="count the FLOPs of the paper runs on the meta device instead")
    parser.add_argument("--report", nargs="+", metavar="TIMING_JSON",
                        help="write OUT/gpu_timing.md from timed runs (merged in order) and OUT/gpu_timing_flops.json")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the device (H100/H200 SXM: 989)")
    parser.add_argument("--tiny", action="store_true", help="tiny configs (checks the code paths on a CPU)")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"], help="of the transformers")
    parser.add_argument("--repeats", type=int, default=1, help="timed teacher runs per direction (median)")
    parser.add_argument("--train-configs", nargs="*", default=["1:1", "4:1", "1:0"],
                        help="BATCH:CHECKPOINTING training configs (1 = gradient checkpointing on)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    preset, scale = ("tiny", ob.tiny_scale()) if args.tiny else ("paper", ob.REAL)
    if args.tiny:
        pf.PAPER.update(height=16, width=16)  # the tiny preset's own frame size
        TEACHER["num_inference_steps"], STUDENT["num_inference_steps"] = 4, 2
    if args.report:
        timing = json.loads(Path(args.report[0]).read_text())
        for extra in args.report[1:]:
            timing["parts"].update(json.loads(Path(extra).read_text())["parts"])
        flops = json.loads((out / "gpu_timing_flops.json").read_text())
        open_counts = json.loads((Path(__file__).parent / "results" / "open_backbones.json").read_text())
        (out / "gpu_timing.json").write_text(json.dumps(timing, indent=2) + "\n")
        (out / "gpu_timing.md").write_text(report(timing, flops, open_counts, args.peak_tflops) + "\n")
        print((out / "gpu_timing.md").read_text())
        return timing
    if args.flops:
        counts = dict(preset=preset, paper=count_paper(preset))
        (out / "gpu_timing_flops.json").write_text(json.dumps(counts, indent=2) + "\n")
        print(json.dumps(counts, indent=2))
        return counts

    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    torch.backends.cuda.matmul.allow_tf32 = True  # the float32 VAEs, as diffusers users run them
    results = dict(device=torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
                   dtype=str(dtype), preset=preset, torch=torch.__version__, python=platform.python_version(),
                   clip=scale.clip, paper_clip=pf.PAPER, parts={})
    path = out / "gpu_timing.json"

    def save(name, value, started):
        results["parts"][name] = dict(value, wall_seconds=time.perf_counter() - started)
        path.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"{name}: {json.dumps(results['parts'][name], default=str)}", flush=True)

    parts = None
    for name in args.parts:
        started = time.perf_counter()
        try:
            if name == "paper":
                save(name, time_paper(device, dtype, preset, args.repeats), started)
                continue
            if parts is None:
                parts = ob.real_components(scale, device, dtype)
            if name == "open_vae":
                save(name, time_open_vae(parts, scale, device), started)
                parts["video_vae"].to("cpu"), parts["audio_vae"].to("cpu")  # not resident while sampling or training
            elif name == "open_sample":
                save(name, time_open_sample(parts, scale, device, dtype), started)
            elif name == "open_train":
                configs = [(int(b), c == "1") for b, c in (s.split(":") for s in args.train_configs)]
                save(name, time_open_train(copy.copy(parts), scale, device, configs), started)
            else:
                parser.error(f"unknown part {name!r}")
        except Exception as error:  # one part's failure must not cost the others' device time
            traceback.print_exc()
            save(name, dict(error=f"{type(error).__name__}: {error}"), started)
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
