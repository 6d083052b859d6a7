"""Wall-clock overhead of the V2A / A2V pipelines over the bare sum of their module calls (tiny models, CPU).

Method
------
* Pipeline: `AVLinkV2APipeline(**tiny_components(), **TINY_PIPELINE_CONFIG)` (and `AVLinkA2VPipeline`),
  called on a 2 s input already at the model's rate and size (V2A: a float video `(1, 3, 12, 16, 16)` in
  [0, 1] at 6 fps; A2V: 2 s of 22.05 kHz audio), `num_inference_steps` steps (default 32), guidance 5,
  `output_type="latent"` and `"np"`, progress bar disabled (and, separately, enabled).
* Bare: the same module calls written out in a plain loop, no pipeline: tokenizer + text encoder for the
  prompt, the conditioning prompt and the negative prompt (the pipeline encodes all three), the conditioning
  noise, `embed_prefix`, then per step `joint_forward(return_<conditioning>=False)` + the generated backbone
  alone with the negative prompt + CFG + `scheduler.step`; for A2V the mel front end first; for "np" the
  vocoder (V2A) or the [-1, 1] -> [0, 1] numpy conversion (A2V). The bare loop uses the same generator
  draws in the same order, and its output is checked to equal the pipeline's exactly.
* `torch.set_num_threads(--threads)` (default 1); each repeat runs pipeline and bare back to back
  (order alternating), after warm-up; the figure is the median over repeats of the per-repeat ratio
  pipeline / bare - 1 (medians of the two times are reported too).
* In-run attribution (`ModuleCallTimer`): the pipeline call with its model-level calls wrapped in timers;
  own time = call time - time inside them, overhead = own / model-level. Both parts come from one run,
  so other load on the machine cancels out; this is the figure to trust on a busy machine.
* `--profile` adds a cProfile of the pipeline call: the functions with the most own time outside
  torch module calls.

Run: `/work/venv/bin/python benchmarks/pipeline_overhead.py` (about a minute on 2 CPU cores).
"""

import argparse
import cProfile
import io
import json
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from av_link import AVLinkA2VPipeline, AVLinkV2APipeline
from av_link.models.joint import embed_prefix, joint_forward
from av_link.pipelines.inputs import prepare_audio
from av_link.schedulers import noisy_sample, scheduler_output, time_from_timestep
from av_link.testing import TINY_PIPELINE_CONFIG, tiny_components

PROMPT = "a hammer hits a metal plate"
SECONDS = 2.0


def build(cls):
    pipe = cls(**tiny_components(0), **TINY_PIPELINE_CONFIG)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def make_input(direction: str):
    gen = torch.Generator().manual_seed(123)
    if direction == "v2a":
        frames = round(SECONDS * 6)
        return torch.rand(1, 3, frames, TINY_PIPELINE_CONFIG["height"], TINY_PIPELINE_CONFIG["width"], generator=gen)
    return (torch.randn(1, round(SECONDS * 22050), generator=gen) * 0.1).numpy()


def run_pipeline(pipe, direction, x, steps, guidance, output_type, seed=0):
    gen = torch.Generator().manual_seed(seed)
    common = dict(prompt=PROMPT, num_inference_steps=steps, guidance_scale=guidance, output_type=output_type, generator=gen)
    if direction == "v2a":
        return pipe(video=x, video_fps=6.0, **common).audios
    return pipe(audio=x, sample_rate=22050, **common).frames


def run_bare(c: dict, direction, x, steps, guidance, output_type, seed=0):
    """The pipeline's module calls, written out (components `c` are the pipeline's own modules)."""
    gen = torch.Generator().manual_seed(seed)
    audio_model, video_model, adapter, scheduler = c["audio_transformer"], c["video_transformer"], c["fusion_adapter"], c["scheduler"]
    tokenizer, text_encoder, frontend = c["tokenizer"], c["text_encoder"], c["audio_frontend"]

    def encode(prompt):
        tokens = tokenizer([prompt], padding="longest", truncation=True, max_length=128, return_tensors="pt")
        mask = tokens.attention_mask
        return text_encoder(tokens.input_ids, attention_mask=mask).last_hidden_state, mask.bool()

    text, text_mask = encode(PROMPT)
    cond_text, cond_mask = encode("")
    neg_text, neg_mask = encode("")
    if direction == "v2a":
        gen_name, cond_name, gen_model, cond_model, t_c = "audio", "video", audio_model, video_model, 0.96
        signal = x * 2 - 1
        num_audio = max(1, round(SECONDS * audio_model.config.frame_rate))
        shape = (1, num_audio, audio_model.config.in_channels)
    else:
        gen_name, cond_name, gen_model, cond_model, t_c = "video", "audio", video_model, audio_model, 0.8
        signal = frontend.normalize(frontend(torch.from_numpy(x)))
        shape = (1, 3, round(SECONDS * 6), TINY_PIPELINE_CONFIG["height"], TINY_PIPELINE_CONFIG["width"])
    noisy = noisy_sample(signal, torch.randn(signal.shape, generator=gen), t_c)
    latents = torch.randn(shape, generator=gen)
    prefix = embed_prefix(cond_model, adapter, cond_name, noisy, t_c, cond_text, cond_mask)
    scheduler.set_timesteps(steps)
    for t in scheduler.timesteps:
        tt = time_from_timestep(t).expand(1)
        inputs, times = {gen_name: latents, cond_name: prefix}, {gen_name: tt, cond_name: t_c}
        out = joint_forward(
            audio_model, video_model, adapter, audio=inputs["audio"], video=inputs["video"],
            audio_timestep=times["audio"], video_timestep=times["video"],
            audio_text=text if gen_name == "audio" else None, video_text=text if gen_name == "video" else None,
            audio_text_mask=text_mask if gen_name == "audio" else None, video_text_mask=text_mask if gen_name == "video" else None,
            return_audio=gen_name == "audio", return_video=gen_name == "video",
        )
        v = getattr(out, gen_name)
        v_uncond = gen_model(latents, tt, neg_text, neg_mask).sample
        latents = scheduler.step(scheduler_output(v_uncond + guidance * (v - v_uncond)), t, latents).prev_sample
    if output_type == "latent":
        return latents
    if direction == "v2a":
        waveform = c["vocoder"](frontend.denormalize(latents))
        num_samples = round(SECONDS * 22050)
        return torch.nn.functional.pad(waveform, (0, max(0, num_samples - waveform.shape[-1])))[:, :num_samples].numpy()
    return ((latents.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 4, 1).numpy()


class ModuleCallTimer:
    """Attribute a pipeline call's wall time in-run: wrap every model-level call the pipeline makes
    (`encode_prompt` = tokenizer + text encoder, the mel front end, `embed_prefix`, `joint_forward`, the
    generated backbone's standalone forward (CFG branch), `scheduler.step`, the vocoder) and sum their
    time; the rest of the call is the pipeline's own work. Less sensitive to machine load than comparing
    two separately timed runs, since both parts are measured in the same run."""

    def __init__(self, pipe):
        from av_link.pipelines import pipeline_av_link_cross_modal as module

        self.pipe, self.module, self.spent, self.depth = pipe, module, 0.0, 0
        self.patches = []  # (owner, name, original, was_instance_attribute)
        for owner, name in [(module, "embed_prefix"), (module, "joint_forward"), (pipe, "encode_prompt"),
                            (pipe.scheduler, "step"), (pipe.audio_transformer, "forward"), (pipe.video_transformer, "forward"),
                            (pipe.audio_frontend, "forward")] + ([(pipe.vocoder, "forward")] if pipe.vocoder is not None else []):
            self.patches.append((owner, name, getattr(owner, name), name in vars(owner)))

    def _wrap(self, fn):
        def wrapper(*args, **kwargs):
            if self.depth:  # nested in another timed call (e.g. a backbone inside joint_forward)
                return fn(*args, **kwargs)
            self.depth += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent += time.perf_counter() - start
                self.depth -= 1
        return wrapper

    def __enter__(self):
        for owner, name, original, _ in self.patches:
            setattr(owner, name, self._wrap(original))
        return self

    def __exit__(self, *exc):
        for owner, name, original, was_instance in self.patches:
            if was_instance:
                setattr(owner, name, original)
            else:
                delattr(owner, name)


def attribute(pipe, direction, x, steps, guidance, output_type, repeats) -> dict:
    shares, own_ms, totals = [], [], []
    with torch.no_grad():
        for _ in range(repeats):
            with ModuleCallTimer(pipe) as timer:
                start = time.perf_counter()
                run_pipeline(pipe, direction, x, steps, guidance, output_type)
                total = time.perf_counter() - start
            totals.append(total)
            own_ms.append(1000 * (total - timer.spent))
            shares.append(100 * (total - timer.spent) / timer.spent)
    return dict(pipeline_own_ms_median=statistics.median(own_ms), pipeline_total_ms_median=1000 * statistics.median(totals),
                overhead_pct_median=statistics.median(shares), overhead_pct_max=max(shares))


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(direction, steps, guidance, output_type, repeats, warmup, progress_bar=False):
    pipe = build(AVLinkV2APipeline if direction == "v2a" else AVLinkA2VPipeline)
    pipe.set_progress_bar_config(disable=not progress_bar, file=io.StringIO() if progress_bar else None)
    components = dict(pipe.components)
    x = make_input(direction)
    with torch.no_grad():
        p = run_pipeline(pipe, direction, x, steps, guidance, output_type)
        b = run_bare(components, direction, x, steps, guidance, output_type)
        p, b = np.asarray(p), np.asarray(b)
        same = p.shape == b.shape and np.array_equal(p, b)
        max_diff = float(np.abs(p - b).max()) if p.shape == b.shape else float("nan")
        pipe_fn = lambda: run_pipeline(pipe, direction, x, steps, guidance, output_type)  # noqa: E731
        bare_fn = lambda: run_bare(components, direction, x, steps, guidance, output_type)  # noqa: E731
        for _ in range(warmup):
            pipe_fn(), bare_fn()
        pipe_times, bare_times = [], []
        for i in range(repeats):
            if i % 2:
                bare_times.append(timed(bare_fn))
                pipe_times.append(timed(pipe_fn))
            else:
                pipe_times.append(timed(pipe_fn))
                bare_times.append(timed(bare_fn))
    result = dict(direction=direction, output_type=output_type, steps=steps, progress_bar=progress_bar,
                  outputs_identical=bool(same), max_abs_diff=max_diff,
                  in_run=attribute(pipe, direction, x, steps, guidance, output_type, repeats))
    for k, clock in enumerate(("wall", "cpu")):
        pipe_t, bare_t = [t[k] for t in pipe_times], [t[k] for t in bare_times]
        result[clock] = dict(
            pipeline_median_s=statistics.median(pipe_t), bare_median_s=statistics.median(bare_t),
            overhead_pct=100 * statistics.median([p / b - 1 for p, b in zip(pipe_t, bare_t)]),  # median of paired ratios
            overhead_of_medians_pct=100 * (statistics.median(pipe_t) / statistics.median(bare_t) - 1),
            overhead_of_minima_pct=100 * (min(pipe_t) / min(bare_t) - 1),
            overhead_median_ms=1000 * statistics.median([p - b for p, b in zip(pipe_t, bare_t)]),
            pipeline_s=pipe_t, bare_s=bare_t,
        )
    return result


def profile(direction, steps, guidance, output_type, top=25) -> str:
    pipe = build(AVLinkV2APipeline if direction == "v2a" else AVLinkA2VPipeline)
    x = make_input(direction)
    with torch.no_grad():
        run_pipeline(pipe, direction, x, steps, guidance, output_type)
        profiler = cProfile.Profile()
        profiler.enable()
        run_pipeline(pipe, direction, x, steps, guidance, output_type)
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--guidance-scale", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--directions", nargs="+", default=["v2a", "a2v"], choices=["v2a", "a2v"])
    parser.add_argument("--output-types", nargs="+", default=["latent", "np"], choices=["latent", "np"])
    parser.add_argument("--progress-bar", action="store_true", help="also time with the progress bar enabled (to a string buffer)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one pipeline call per direction/output type")
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "pipeline_overhead.json"))
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = dict(threads=args.threads, steps=args.steps, repeats=args.repeats, warmup=args.warmup,
                   torch=torch.__version__, python=platform.python_version(), machine=platform.machine(), runs=[])
    print(f"pipeline vs bare module calls: tiny models, {SECONDS:g} s input, {args.steps} steps, guidance {args.guidance_scale}, "
          f"{args.threads} thread(s), median of {args.repeats} repeats after {args.warmup} warm-up")
    print("overhead = median over repeats of (pipeline / bare - 1); 'min' = min(pipeline) / min(bare) - 1; "
          "CPU = the same on process CPU time;\n  in-run = pipeline's own time / time in its model-level calls, "
          "measured inside the same call (least sensitive to other load); own ms = that own time")
    print(f"{'direction':9s} {'output':7s} {'bar':4s} {'pipeline ms':>12s} {'bare ms':>9s} {'overhead':>9s} {'ms':>6s} {'min':>7s}"
          f" {'CPU ovh':>8s} {'CPU min':>8s} {'in-run':>7s} {'own ms':>7s}  identical")
    for direction in args.directions:
        for output_type in args.output_types:
            for bar in ([False, True] if args.progress_bar else [False]):
                r = measure(direction, args.steps, args.guidance_scale, output_type, args.repeats, args.warmup, bar)
                results["runs"].append(r)
                w, c = r["wall"], r["cpu"]
                print(f"{direction:9s} {output_type:7s} {'on' if bar else 'off':4s} {1000 * w['pipeline_median_s']:12.1f} "
                      f"{1000 * w['bare_median_s']:9.1f} {w['overhead_pct']:8.2f}% {w['overhead_median_ms']:6.1f} "
                      f"{w['overhead_of_minima_pct']:6.2f}% {c['overhead_pct']:7.2f}% {c['overhead_of_minima_pct']:7.2f}% "
                      f"{r['in_run']['overhead_pct_median']:6.2f}% {r['in_run']['pipeline_own_ms_median']:7.2f}  {r['outputs_identical']}")
            if args.profile:
                print(profile(direction, args.steps, args.guidance_scale, output_type))
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
