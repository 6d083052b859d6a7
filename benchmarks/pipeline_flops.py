"""FLOPs of one V2A and one A2V sampling run at paper scale: the real pipeline against a paper-faithful sampler.

Method
------
* Paper-scale models (`AVLinkAudioTransformer()`, `AVLinkVideoTransformer()`, `AVLinkFusionAdapter()`
  defaults: 24 blocks, width 1024, 8 Fusion Blocks) are built on the **meta device**, so counting costs
  no arithmetic and no memory; FLOPs are counted with `torch.utils.flop_counter.FlopCounterMode`
  (matmul-type ops only, 2 FLOPs per multiply-add; elementwise ops, norms, softmax are not counted).
  On the meta device `scaled_dot_product_attention` decomposes into the math path (two `bmm`s), so
  attention FLOPs are counted; on real CPU tensors the fused `_scaled_dot_product_flash_attention_for_cpu`
  has no registered formula and attention would silently count as 0. `check_counting()` compares the
  count of one standalone backbone forward with a closed-form formula.
* The real sampler is the real pipeline code path: `AVLinkV2APipeline.__call__` / `AVLinkA2VPipeline.__call__`
  with `output_type="latent"`, on a paper clip (video 31 frames of 64x36 px at 6 fps = 5.17 s, the matching
  mel of 445 frames at 22050/256 frames/s; A2V: 5.17 s of 22.05 kHz audio -> 444 mel frames). Two
  substitutions, neither of which changes a counted FLOP of the denoiser:
    - `_get_prompt_embeds` returns random (meta) T5-XXL-width states, (B, 32, 4096) for a non-empty prompt and
      (B, 1, 4096) for the empty negative prompt (ByT5/T5 encode "" as the single EOS token), with no mask
      (a mask changes no matmul FLOPs). The text encoder itself is not counted in either sampler.
    - the scheduler keeps its time grid on the CPU (a meta grid cannot be indexed by value); its Euler
      arithmetic is elementwise and uncounted anyway.
    - the mel front end stays on the CPU (its input checks read values), so `_execution_device` is pinned
      to meta (diffusers would pick the alphabetically first component, the front end). The A2V mel
      (one 80x513 matmul, 0.04 GFLOP) is counted in both samplers.
* The baseline is a straightforward paper-faithful sampler (paper §3.3): at every step the conditional
  branch is the full joint model (`joint_forward` with both outputs: both backbones, every block, every
  Fusion Block, both output layers) and the unconditional branch is the generated modality's backbone alone
  with the empty text, as the paper's guidance prescribes; nothing is cached (the conditioning input is
  noised once, FLOP-free, and re-embedded at every step) and nothing is pruned.
* An extra row keeps the previous baseline, labelled as such: a "naive" sampler whose unconditional branch
  is a second full joint forward on empty text. That is a different guidance algorithm (it keeps the
  conditioning modality in the unconditional branch), so the pipeline's ratio to it (0.44 V2A) overstated
  the saving; it is reported for continuity only.
* Per-step FLOPs come from two runs with different step counts (default 2 and 4):
  per_step = (F(n2) - F(n1)) / (n2 - n1), once-per-run = F(n1) - n1 * per_step. The ratio that matters
  is per-step real / per-step paper-faithful; totals at the pipeline default of 64 steps are extrapolated.
* Ablation: the same hand-written loop with the pipeline's savings switched on one at a time (skip dead
  work, which includes the last Fusion Block's dead query rows; cached conditioning prefix; both guidance
  branches in one batched pass, which pads the empty negative text to the prompt's length). With all on it
  must count exactly what the pipeline counts (checked).

Run: `/work/venv/bin/python benchmarks/pipeline_flops.py` (about 2 minutes on 2 CPU cores: each counted run
still walks every op through the dispatcher).
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from av_link import AVLinkA2VPipeline, AVLinkV2APipeline
from av_link.models.audio_frontend import AVLinkMelSpectrogram
from av_link.models.fusion import AVLinkFusionAdapter
from av_link.models.joint import embed_prefix, joint_forward
from av_link.models.transformer_audio import AVLinkAudioTransformer
from av_link.models.transformer_video import AVLinkVideoTransformer
from av_link.training.setup import tiny_text_encoder
from av_link.schedulers import FlowMatchEulerScheduler, noisy_sample, scheduler_output, time_from_timestep

META = torch.device("meta")

# The paper clip: 64x36 px video at 6 fps; 31 frames = 5.17 s (the paper's 5.16 s rounds to 31 frames).
PAPER = dict(height=36, width=64, clip_seconds=5.16, fps=6.0, frames=31, sample_rate=22050)
PROMPT = "a hammer hits a metal plate"


class CPUGridScheduler(FlowMatchEulerScheduler):
    """`FlowMatchEulerScheduler` whose time grid stays on the CPU (a meta grid can't be looked up by value)."""

    def set_timesteps(self, num_inference_steps=None, device=None, **kwargs):
        super().set_timesteps(num_inference_steps, device="cpu", **kwargs)


def placeholder(shape, device=META, dtype=None) -> torch.Tensor:
    """An input of `shape`: empty on the meta device (counting), random elsewhere (timing)."""
    make = torch.empty if torch.device(device).type == "meta" else torch.randn
    return make(*shape, device=device, dtype=dtype)


def fake_text(batch: int, tokens: int, width: int, device=META, dtype=None) -> torch.Tensor:
    """Text-encoder states."""
    return placeholder((batch, tokens, width), device, dtype)


def paper_models(device=META, preset: str = "paper", **adapter_config):
    with torch.device(device):
        audio, video = AVLinkAudioTransformer.from_preset(preset), AVLinkVideoTransformer.from_preset(preset)
        adapter = AVLinkFusionAdapter.from_preset(preset, audio_dim=audio.config.hidden_size, video_dim=video.config.hidden_size,
                                                  num_audio_layers=len(audio.blocks), num_video_layers=len(video.blocks),
                                                  **adapter_config)
        return audio, video, adapter


def paper_pipeline(cls, text_tokens: int, device=META, dtype=None, preset: str = "paper", **adapter_config):
    """The pipeline at paper scale: counting on the meta device, or timing with random weights on `device` in
    `dtype` (the mel front end stays float32). `adapter_config`: e.g. reinject="audio" (static features)."""
    audio, video, adapter = (m.to(dtype=dtype) if dtype else m for m in paper_models(device, preset, **adapter_config))
    # Say where the models run: diffusers would otherwise pick the alphabetically first component, the mel front
    # end, which stays on the CPU when counting (its input checks read values).
    cls = type(cls.__name__, (cls,), {"_execution_device": property(lambda self: torch.device(device))})
    scheduler = CPUGridScheduler() if torch.device(device).type == "meta" else FlowMatchEulerScheduler()
    frontend = AVLinkMelSpectrogram() if torch.device(device).type == "meta" else AVLinkMelSpectrogram().to(device)
    with torch.device(META):  # a stand-in of the text width, never called (see get_prompt_embeds below)
        text_encoder, tokenizer = tiny_text_encoder(text_dim=audio.config.text_dim)
    pipe = cls(
        audio_transformer=audio, video_transformer=video, fusion_adapter=adapter, scheduler=scheduler,
        text_encoder=text_encoder, tokenizer=tokenizer, audio_frontend=frontend, vocoder=None,
        height=PAPER["height"], width=PAPER["width"], clip_seconds=PAPER["clip_seconds"],
    )
    width = audio.config.text_dim

    def get_prompt_embeds(prompts, device=None, max_sequence_length=None, modality=None):
        length = max(text_tokens if p else 1 for p in prompts)  # "" -> the EOS token alone
        return fake_text(len(prompts), length, width, pipe._execution_device, dtype), None

    pipe._get_prompt_embeds = get_prompt_embeds
    pipe.set_progress_bar_config(disable=True)
    register_groups(pipe)
    return pipe


def paper_input(direction: str):
    """(pipeline kwargs, conditioning input, its rate) for one paper clip."""
    seconds = PAPER["frames"] / PAPER["fps"]
    if direction == "v2a":
        video = torch.rand(1, 3, PAPER["frames"], PAPER["height"], PAPER["width"])
        return dict(video=video, video_fps=PAPER["fps"]), video, PAPER["fps"]
    audio = (np.random.default_rng(0).standard_normal(round(seconds * PAPER["sample_rate"])) * 0.1).astype(np.float32)
    return dict(audio=audio, sample_rate=PAPER["sample_rate"]), audio, PAPER["sample_rate"]


class GroupedFlopCounter(FlopCounterMode):
    """FlopCounterMode that also attributes every counted op to the model it ran in.

    FlopCounterMode's own per-module names depend on which `forward` was entered first (a block run
    through the block-level interface is named by its class only), so attribution is done here from
    object identity: a global forward hook keeps a stack of the models being run."""

    def __init__(self, owners: dict):
        super().__init__(display=False)
        self.owners = owners  # id(module) -> group
        self.stack = ["other"]
        self.groups = {}

    def _count_flops(self, func_packet, out, args, kwargs):
        before = sum(self.flop_counts["Global"].values())
        out = super()._count_flops(func_packet, out, args, kwargs)
        delta = sum(self.flop_counts["Global"].values()) - before
        if delta:
            self.groups[self.stack[-1]] = self.groups.get(self.stack[-1], 0) + delta
        return out

    def __enter__(self):
        def pre(module, args):
            group = self.owners.get(id(module))
            if group is not None:
                self.stack.append(group)

        def post(module, args, output):
            if id(module) in self.owners and len(self.stack) > 1:
                self.stack.pop()

        self._hooks = [torch.nn.modules.module.register_module_forward_pre_hook(pre),
                       torch.nn.modules.module.register_module_forward_hook(post, always_call=True)]
        return super().__enter__()

    def __exit__(self, *exc):
        for hook in self._hooks:
            hook.remove()
        return super().__exit__(*exc)


OWNERS: dict = {}


def register_groups(pipe) -> None:
    for group, model in (("video backbone", pipe.video_transformer), ("audio backbone", pipe.audio_transformer),
                         ("fusion adapter", pipe.fusion_adapter)):
        for module in model.modules():
            OWNERS[id(module)] = group


def count(fn):
    """Run `fn` under the counter -> (total FLOPs, FLOPs per model, result)."""
    with GroupedFlopCounter(OWNERS) as counter:
        result = fn()
    total = counter.get_total_flops()
    if sum(counter.groups.values()) != total:
        raise RuntimeError("FLOP attribution lost ops")
    return total, dict(counter.groups), result


# -- a hand-written sampler with the pipeline's savings as switches (for the baselines and the ablation) --

def sample(pipe, cond_input, rate, steps: int, guidance: float, *, uncond_alone: bool, skip_dead: bool,
           cache_prefix: bool, text_tokens: int, batch_branches: bool = False):
    """The cross-modal sampling loop written out by hand. `uncond_alone` with the other switches off: the
    paper-faithful sampler; all on: what the pipeline does (its batched pass of both guidance branches counts
    as the two calls here, with the negative text padded to the prompt's length as the batch needs); all off:
    the old "naive" sampler (two full joint forwards per step)."""
    gen, cond = pipe.generated, pipe.conditioning
    audio_model, video_model, adapter = pipe.audio_transformer, pipe.video_transformer, pipe.fusion_adapter
    models = {"audio": audio_model, "video": video_model}
    t_c = pipe.config.conditioning_timestep
    item = pipe.prepare_conditioning(cond_input, rate)[0]
    signal, num_video_frames, num_audio_frames = item.signal, item.num_video_frames, item.num_audio_frames
    width = audio_model.config.text_dim
    text, cond_text = fake_text(1, text_tokens, width), fake_text(1, text_tokens, width)
    empty = fake_text(1, text_tokens if batch_branches else 1, width)
    signal = signal.to(META)
    noisy = noisy_sample(signal, torch.randn_like(signal), t_c)
    if gen == "audio":
        shape = (1, num_audio_frames, audio_model.config.in_channels)
    else:
        shape = (1, video_model.config.in_channels, num_video_frames, PAPER["height"], PAPER["width"])
    x = torch.randn(shape, device=META)
    cond_state = embed_prefix(models[cond], adapter, cond, noisy, t_c, cond_text) if cache_prefix else noisy
    scheduler = CPUGridScheduler()
    scheduler.set_timesteps(steps)

    def joint(x, t, gen_text, cond_text, cond_input, dead_skipped):
        inputs, times, texts = {gen: x, cond: cond_input}, {gen: t, cond: t_c}, {gen: gen_text, cond: cond_text}
        out = joint_forward(
            audio_model, video_model, adapter, audio=inputs["audio"], video=inputs["video"],
            audio_timestep=times["audio"], video_timestep=times["video"], audio_text=texts["audio"], video_text=texts["video"],
            return_audio=gen == "audio" or not dead_skipped, return_video=gen == "video" or not dead_skipped,
        )
        return getattr(out, gen)

    for timestep in scheduler.timesteps:
        t = time_from_timestep(timestep).expand(1)
        v_cond = joint(x, t, text, cond_text, cond_state, skip_dead)
        if uncond_alone:
            v_uncond = models[gen](x, t, empty).sample
        else:
            v_uncond = joint(x, t, empty, empty, noisy, skip_dead)
        x = scheduler.step(scheduler_output(v_uncond + guidance * (v_cond - v_uncond)), timestep, x).prev_sample
    return x


VARIANTS = [
    ("paper-faithful: joint cond + gen. backbone uncond", dict(uncond_alone=True, skip_dead=False, cache_prefix=False)),
    ("+ skip dead work (return_<cond>=False)", dict(uncond_alone=True, skip_dead=True, cache_prefix=False)),
    ("+ cached conditioning prefix", dict(uncond_alone=True, skip_dead=True, cache_prefix=True)),
    ("+ guidance branches batched (= pipeline)", dict(uncond_alone=True, skip_dead=True, cache_prefix=True, batch_branches=True)),
]
# The previous baseline, kept as a labelled extra row: a different guidance algorithm (see the module docstring).
OLD_NAIVE = ("old 'naive' (uncond = 2nd full joint forward)", dict(uncond_alone=False, skip_dead=False, cache_prefix=False))


def per_step(run, steps):
    """Count `run(n)` for two step counts -> dict(per_step, once, totals, groups per step)."""
    (n1, n2) = steps
    f1, g1, out1 = count(lambda: run(n1))
    f2, g2, _ = count(lambda: run(n2))
    step = (f2 - f1) / (n2 - n1)
    groups = {k: (g2.get(k, 0) - g1.get(k, 0)) / (n2 - n1) for k in sorted(set(g1) | set(g2))}
    return dict(per_step=step, once=f1 - n1 * step, totals={n1: f1, n2: f2},
                per_step_groups={k: v for k, v in groups.items() if v}, output_shape=tuple(out1.shape))


def measure(direction: str, steps, guidance: float, text_tokens: int, extrapolate: int) -> dict:
    cls = AVLinkV2APipeline if direction == "v2a" else AVLinkA2VPipeline
    pipe = paper_pipeline(cls, text_tokens)
    kwargs, cond_input, rate = paper_input(direction)
    item = pipe.prepare_conditioning(cond_input, rate)[0]
    seconds, num_video_frames, num_audio_frames = item.seconds, item.num_video_frames, item.num_audio_frames
    vcfg, acfg = pipe.video_transformer.config, pipe.audio_transformer.config
    video_tokens = num_video_frames * -(-PAPER["height"] // vcfg.patch_size[1]) * -(-PAPER["width"] // vcfg.patch_size[2])
    audio_tokens = -(-num_audio_frames // acfg.patch_size)

    def pipeline_run(n):
        out = pipe(**kwargs, prompt=PROMPT, conditioning_prompt=PROMPT, num_inference_steps=n,
                   guidance_scale=guidance, output_type="latent")
        return out.audios if direction == "v2a" else out.frames

    result = dict(
        direction=direction, seconds=seconds, video_frames=num_video_frames, audio_frames=num_audio_frames,
        video_tokens=video_tokens, audio_tokens=audio_tokens, text_tokens=text_tokens, guidance_scale=guidance,
        conditioning_timestep=pipe.config.conditioning_timestep, steps_counted=list(steps),
    )
    result["pipeline"] = per_step(pipeline_run, steps)
    # Static conditioning features (issue 13): the adapter reinjects only into the generated backbone, so the
    # pipeline runs the conditioning backbone once per input; same input, prompts and steps.
    static_pipe = paper_pipeline(cls, text_tokens, reinject=cls.generated)

    def static_run(n):
        out = static_pipe(**kwargs, prompt=PROMPT, conditioning_prompt=PROMPT, num_inference_steps=n,
                          guidance_scale=guidance, output_type="latent")
        return out.audios if direction == "v2a" else out.frames

    result["pipeline_static_features"] = per_step(static_run, steps)
    result["variants"] = {}
    for name, switches in [*VARIANTS, OLD_NAIVE]:
        result["variants"][name] = per_step(
            lambda n, s=switches: sample(pipe, cond_input, rate, n, guidance, text_tokens=text_tokens, **s), steps)

    base, real = result["variants"][VARIANTS[0][0]], result["pipeline"]
    old = result["variants"][OLD_NAIVE[0]]
    hand = result["variants"][VARIANTS[-1][0]]
    result["hand_loop_matches_pipeline"] = hand["per_step"] == real["per_step"] and hand["once"] == real["once"]
    result["ratio_per_step"] = real["per_step"] / base["per_step"]
    result["ratio_total_counted"] = {n: real["totals"][n] / base["totals"][n] for n in steps}
    total = lambda r, n: r["once"] + n * r["per_step"]  # noqa: E731
    result["extrapolated_steps"] = extrapolate
    result["ratio_total_extrapolated"] = total(real, extrapolate) / total(base, extrapolate)
    result["total_extrapolated"] = {"pipeline": total(real, extrapolate), "paper_faithful": total(base, extrapolate),
                                    "pipeline_static_features": total(result["pipeline_static_features"], extrapolate)}
    result["static_features_ratio_total_extrapolated"] = (result["total_extrapolated"]["pipeline_static_features"]
                                                          / result["total_extrapolated"]["pipeline"])
    result["old_naive_ratio_per_step"] = real["per_step"] / old["per_step"]  # the previous headline, for continuity
    return result


# -- checks -------------------------------------------------------------------------------------

def analytic_backbone_flops(model, tokens: int, text_tokens: int, patch_dim: int) -> int:
    """Closed-form matmul FLOPs of one standalone backbone forward (batch 1)."""
    c = model.config
    d, m, td, layers = c.hidden_size, c.mlp_dim, c.text_dim, c.num_layers
    block = (
        2 * 6 * d * d  # adaLN modulation of temb
        + 2 * tokens * 4 * d * d + 4 * tokens * tokens * d  # self-attention: q, k, v, out; QK^T and AV
        + 2 * tokens * 2 * d * d + 2 * text_tokens * 2 * d * d + 4 * tokens * text_tokens * d  # cross-attention
        + 2 * tokens * 2 * d * m  # MLP
    )
    embed = 2 * (256 * d + d * d) + 2 * tokens * patch_dim * d + 2 * text_tokens * (td * td + td * d)
    out = 2 * d * 2 * d + 2 * tokens * d * patch_dim
    return embed + layers * block + out


def check_counting(text_tokens: int) -> dict:
    audio, video, _ = paper_models()
    checks = {}
    text = fake_text(1, text_tokens, audio.config.text_dim)
    x_video = torch.empty(1, 3, PAPER["frames"], PAPER["height"], PAPER["width"], device=META)
    counted, _, _ = count(lambda: video(x_video, 0.5, text))
    tokens = PAPER["frames"] * (PAPER["height"] // 2) * (PAPER["width"] // 2)
    checks["video_forward"] = dict(counted=counted, analytic=analytic_backbone_flops(video, tokens, text_tokens, 12))
    x_audio = torch.empty(1, 445, 80, device=META)
    counted, _, _ = count(lambda: audio(x_audio, 0.5, text))
    checks["audio_forward"] = dict(counted=counted, analytic=analytic_backbone_flops(audio, 445, text_tokens, 80))
    for c in checks.values():
        c["match"] = c["counted"] == c["analytic"]
    return checks


# -- report -------------------------------------------------------------------------------------

def gflop(x):
    return f"{x / 1e9:12,.1f}"


def report(results: dict) -> None:
    print(f"FLOPs per sampling step at paper scale (GFLOP = 1e9 FLOPs, 2 per multiply-add; text {results['text_tokens']} tokens, "
          f"guidance {results['guidance_scale']}, steps counted {results['steps_counted']})")
    for direction in ("v2a", "a2v"):
        r = results[direction]
        print(f"\n{direction.upper()}: {r['video_frames']} video frames -> {r['video_tokens']} video tokens, "
              f"{r['audio_frames']} mel frames -> {r['audio_tokens']} audio tokens, conditioning t = {r['conditioning_timestep']}")
        base = r["variants"][VARIANTS[0][0]]
        print(f"  {'sampler':50s} {'GFLOP/step':>12s} {'vs paper':>9s} {'once/run GFLOP':>15s}")
        rows = [*r["variants"].items()]
        rows.insert(len(VARIANTS), ("pipeline __call__ (measured)", r["pipeline"]))
        rows.insert(len(VARIANTS) + 1, ("pipeline, static conditioning features", r["pipeline_static_features"]))
        for name, v in rows:
            print(f"  {name:50s} {gflop(v['per_step'])} {v['per_step'] / base['per_step']:9.3f} {gflop(v['once']):>15s}")
        print(f"  hand-written loop == pipeline: {r['hand_loop_matches_pipeline']}")
        print(f"  ratio pipeline/paper-faithful: per step {r['ratio_per_step']:.3f}; totals at counted steps "
              + ", ".join(f"{n}: {x:.3f}" for n, x in r["ratio_total_counted"].items())
              + f"; extrapolated to {r['extrapolated_steps']} steps {r['ratio_total_extrapolated']:.3f}"
              + f" (vs the old 'naive' row: {r['old_naive_ratio_per_step']:.3f})")
        totals = r["total_extrapolated"]
        print(f"  per {r['extrapolated_steps']}-step sample: pipeline {gflop(totals['pipeline']).strip()} GFLOP, with static "
              f"conditioning features {gflop(totals['pipeline_static_features']).strip()} "
              f"(x{r['static_features_ratio_total_extrapolated']:.3f}), paper-faithful {gflop(totals['paper_faithful']).strip()}")
        print("  per-step GFLOP by module:  " + "   ".join(
            f"{label}: pipeline {gflop(r['pipeline']['per_step_groups'].get(g, 0)).strip()} / paper-faithful "
            f"{gflop(base['per_step_groups'].get(g, 0)).strip()}"
            for label, g in (("video", "video backbone"), ("audio", "audio backbone"), ("fusion", "fusion adapter"))))
    print("\ncounting check (standalone forward, counted vs closed form): "
          + ", ".join(f"{k}: {v['counted'] / 1e9:,.1f} vs {v['analytic'] / 1e9:,.1f} GFLOP, match={v['match']}"
                      for k, v in results["counting_check"].items()))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, nargs=2, default=[2, 4], metavar=("N1", "N2"),
                        help="two step counts; per-step FLOPs are their difference (default 2 4)")
    parser.add_argument("--guidance-scale", type=float, default=5.0)
    parser.add_argument("--text-tokens", type=int, default=32)
    parser.add_argument("--extrapolate", type=int, default=64, help="step count for extrapolated totals (pipeline default 64)")
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "pipeline_flops.json"))
    args = parser.parse_args(argv)
    if args.steps[0] == args.steps[1]:
        parser.error("--steps needs two different step counts")

    start = time.perf_counter()
    results = dict(text_tokens=args.text_tokens, guidance_scale=args.guidance_scale, steps_counted=args.steps,
                   torch=torch.__version__, python=platform.python_version())
    with torch.no_grad():
        for direction in ("v2a", "a2v"):
            results[direction] = measure(direction, args.steps, args.guidance_scale, args.text_tokens, args.extrapolate)
        results["counting_check"] = check_counting(args.text_tokens)
    results["seconds"] = time.perf_counter() - start
    report(results)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nwrote {path} ({results['seconds']:.1f} s)")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
