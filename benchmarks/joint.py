"""Joint text-to-audio+video on SynthHits v2: AV-Link joint, SyncFlow, Ishii et al. (three gammas), the T2V -> V2A
cascade, and zero-shot V2A by latent replacement against AV-Link's trained V2A (docs/joint.md).

    python benchmarks/joint.py --work_dir runs/joint              # trains what is missing, then scores every row
    python benchmarks/joint.py --work_dir runs/joint --report_only

Method
------
* Backbones, data, budget: the shipped SynthHits v2 backbones (frozen; `synthhits_cells.prepare`), 800 training
  clips, and for every trained system the same budget: `--steps` steps at batch `--batch_size` with the shipped V2A
  model's schedule and adapter size (`synthhits_cells.train_command`), one seed.
* Systems (`SYSTEMS`): AV-Link joint (Fusion Blocks trained with t_a = t_v, `--task joint_generation`); SyncFlow
  (its modality adaptor, the audio tower trained through a LoRA of rank 8, video to audio only); Ishii et al. (CMC-PE
  both ways, gamma 0, 1.5 (the paper's value, on our flow-time map) and -1.5 (video ahead)); the cascade (the
  video backbone alone from the video caption, then V2A Fusion Blocks trained with the same budget, from the audio
  caption); and the baseline "independent": the same pipeline with an untrained (zero-gated, so identity) adapter,
  each backbone generating from its own caption alone: the sync and kind agreement that the captions give without
  any link.
* Pair rows: for each held-out clip's two captions, one generated pair of `clip_seconds` (2 s; 64 steps, CFG 5), scored
  against itself (`evaluation.pair_scores`): the generated audio's onsets against the generated video's contact
  times (read from the motion) both ways within 0.1 s, their F1, and whether the sound's and the look's kinds agree.
* V2A rows: zero-shot V2A with the AV-Link joint model (`replace_video=`) and the trained V2A, on the first 2 s of
  each held-out clip, captioned: Onset Acc / F1 against the clip's true impacts in those seconds.
* Seconds per sample: wall time of one sample on this CPU (one thread), the mean over the clips.
* Resumable: every system's training resumes from its checkpoint; every scored row is kept in `rows/<name>.json`.
"""

import argparse
import dataclasses
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthhits_cells import (BASE_ADAPTER, RESULTS, child_env, interval, load_trained, prepare, train,  # noqa: E402
                             train_command)

SYSTEMS = {  # name -> (task, adapter config over BASE_ADAPTER, extra train_fusion.py arguments)
    "avlink_joint": ("joint_generation", {}, []),
    "syncflow": ("joint_generation", {"fusion_type": "syncflow", "reinject": "audio"}, ["--lora_targets", "audio", "--lora_rank", "8"]),
    "ishii_gamma_0": ("joint_generation", {"fusion_type": "cmc_pe", "timestep_gamma": 0.0}, []),
    "ishii_gamma_1.5": ("joint_generation", {"fusion_type": "cmc_pe", "timestep_gamma": 1.5}, []),
    "ishii_gamma_-1.5": ("joint_generation", {"fusion_type": "cmc_pe", "timestep_gamma": -1.5}, []),
    "v2a": ("v2a", {}, []),  # the cascade's second stage and the trained-V2A row
}
PAIR_ROWS = ["avlink_joint", "syncflow", "ishii_gamma_0", "ishii_gamma_1.5", "ishii_gamma_-1.5", "cascade", "independent"]
JOINT_ROWS = PAIR_ROWS[:5]  # pair rows sampled by a trained joint model
V2A_ROWS = ["zero_shot_v2a", "trained_v2a"]
PAIR_METRICS = ("audio_to_video", "video_to_audio", "sync_f1", "kind_agreement")


def score_row(work: Path, row: str, clips: int, steps: int) -> dict:
    """One table row: per clip scores and seconds, on the id split."""
    import numpy as np
    import torch

    from av_link import AVLinkTextToAudioVideoPipeline, AVLinkTextToVideoPipeline, AVLinkV2APipeline
    from av_link.evaluation import (audio_scores, fit_kind_classifier, fit_video_kind_classifier, load_clips,
                                    pair_scores)
    from av_link.utils.media_io import read_video

    sound, look = fit_kind_classifier(), fit_video_kind_classifier()
    systems = work / "systems"
    sampling = dict(num_inference_steps=steps, guidance_scale=5.0)
    if row in JOINT_ROWS or row in ("zero_shot_v2a", "independent"):
        joint = load_trained(systems / (row if row in JOINT_ROWS else "avlink_joint"), AVLinkTextToAudioVideoPipeline)
        seconds = joint.config.clip_seconds
    if row == "independent":  # the baseline: an untrained (zero-gated) adapter, each backbone from its caption alone
        adapter = joint.fusion_adapter
        joint.register_modules(fusion_adapter=type(adapter).from_config(adapter.config).to(adapter.dtype))
    if row in ("cascade", "trained_v2a"):
        v2a = load_trained(systems / "v2a", AVLinkV2APipeline)
        seconds = v2a.config.clip_seconds
    if row == "cascade":
        t2v = load_trained(work / "backbones" / "t2v", AVLinkTextToVideoPipeline)
    results = []
    for i, clip in enumerate(load_clips(str(work / "heldout" / "id"), clips)):
        generator = torch.Generator().manual_seed(i)
        started = time.perf_counter()
        if row in V2A_ROWS:
            frames, fps = read_video(clip.video)
            frames = frames[: int(round(seconds * fps))]
            if row == "zero_shot_v2a":
                out = joint(audio_prompt=clip.audio_caption, video_prompt=clip.video_caption, replace_video=frames,
                            video_fps=fps, generator=generator, **sampling)
            else:
                out = v2a(video=frames, video_fps=fps, prompt=clip.audio_caption, conditioning_prompt=clip.video_caption,
                          generator=generator, **sampling)
            truth = [t for t in clip.event_times if t < len(frames) / fps]
            scores = audio_scores(out.audios[0], out.sample_rate, dataclasses.replace(clip, event_times=truth))
            scores = {k: scores[k] for k in ("onset_acc", "onset_f1")}
        else:
            if row == "cascade":
                video = t2v(prompt=clip.video_caption, duration_in_s=seconds, generator=generator, **sampling)
                frames, fps = video.frames[0], video.fps
                audio = v2a(video=(np.clip(frames, 0, 1) * 255).round().astype(np.uint8), video_fps=fps,
                            prompt=clip.audio_caption, conditioning_prompt=clip.video_caption, generator=generator, **sampling)
                wave, rate = audio.audios[0], audio.sample_rate
            else:
                out = joint(audio_prompt=clip.audio_caption, video_prompt=clip.video_caption, duration_in_s=seconds,
                            generator=generator, **sampling)
                wave, rate, frames, fps = out.audios[0], out.sample_rate, out.frames[0], out.fps
            scores = pair_scores(wave, rate, frames, fps, sound, look)
        results.append({"clip": clip.name, "kind": clip.kind, "seconds": time.perf_counter() - started, **scores})
    return {"row": row, "steps": steps, "clips": results}


def run_row(work: Path, row: str, args) -> dict:
    path = work / "rows" / f"{row}.json"
    if not path.exists():
        import subprocess

        path.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, __file__, "--score_row", row, "--work_dir", str(work), "--clips", str(args.clips),
                   "--sample_steps", str(args.sample_steps)]
        subprocess.run(command, check=True, env=child_env())
    return json.loads(path.read_text())


def report(work: Path, args) -> str:
    import math

    lines = [f"# Joint generation on SynthHits v2 ({args.steps} training steps at batch {args.batch_size} per trained "
             f"system; {args.clips} id clips; {args.sample_steps} sampling steps, CFG 5)", "",
             "Mean over clips +- 95% t-interval half-width.", "",
             "| system | audio -> video | video -> audio | sync F1 | kind agreement | s / sample |", "| --- | --- | --- | --- | --- | --- |"]
    table, per_clip = {}, {}
    for row in PAIR_ROWS + V2A_ROWS:
        path = work / "rows" / f"{row}.json"
        if not path.exists():
            continue
        clips = per_clip[row] = json.loads(path.read_text())["clips"]
        metrics = PAIR_METRICS if row in PAIR_ROWS else ("onset_acc", "onset_f1")
        table[row] = {k: interval([c[k] for c in clips if k in c and not math.isnan(c[k])] or [float("nan")])
                      for k in (*metrics, "seconds")}
        if row in PAIR_ROWS:
            cells = " | ".join(f"{m:.3f} +- {h:.3f}" for m, h in (table[row][k] for k in PAIR_METRICS))
            lines.append(f"| {row} | {cells} | {table[row]['seconds'][0]:.1f} |")
    if "independent" in per_clip:  # paired by clip (same captions, same noise seeds) against the unlinked pair
        lines += ["", "Against the unlinked pair (independent), paired by clip: mean difference +- 95% half-width.", "",
                  "| system | sync F1 | kind agreement |", "| --- | --- | --- |"]
        for row in [r for r in PAIR_ROWS if r in per_clip and r != "independent"]:
            diffs = {k: interval([a[k] - b[k] for a, b in zip(per_clip[row], per_clip["independent"])]) for k in ("sync_f1", "kind_agreement")}
            table[row]["vs_independent"] = diffs
            lines.append(f"| {row} | " + " | ".join(f"{m:+.3f} +- {h:.3f}" for m, h in diffs.values()) + " |")
    lines += ["", "| V2A | Onset Acc | Onset F1 | s / sample |", "| --- | --- | --- | --- |"]
    for row in V2A_ROWS:
        if row in table:
            r = table[row]
            lines.append(f"| {row} | {r['onset_acc'][0]:.3f} +- {r['onset_acc'][1]:.3f} | "
                         f"{r['onset_f1'][0]:.3f} +- {r['onset_f1'][1]:.3f} | {r['seconds'][0]:.1f} |")
    trained = {name: json.loads(path.read_text())["seconds"] for name in SYSTEMS
               if (path := work / "systems" / name / "train_seconds.json").exists()}
    if trained:
        lines += ["", "Training (wall seconds, one thread, " + f"{args.lanes} at once): "
                  + ", ".join(f"{name} {seconds:.0f}" for name, seconds in trained.items())
                  + f"; in all {sum(trained.values()) / args.lanes / 3600:.2f} h with {args.lanes} lanes."]
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "joint.md").write_text(text)
    (RESULTS / "joint.json").write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                                                    "summary": table}, indent=1) + "\n")
    print(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work_dir", type=Path, default=Path("runs/joint"))
    parser.add_argument("--steps", type=int, default=1500, help="training steps per trained system")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--clips", type=int, default=16, help="held-out id clips")
    parser.add_argument("--train_clips", type=int, default=800)
    parser.add_argument("--sample_steps", type=int, default=64)
    parser.add_argument("--lanes", type=int, default=2, help="trainings at once (one thread each)")
    parser.add_argument("--report_only", action="store_true")
    parser.add_argument("--score_row", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.score_row:  # a child process
        result = score_row(args.work_dir, args.score_row, args.clips, args.sample_steps)
        (args.work_dir / "rows" / f"{args.score_row}.json").write_text(json.dumps(result, indent=1) + "\n")
        return
    if not args.report_only:
        layers = prepare(args.work_dir, args.clips, args.train_clips)
        del layers  # every system uses the default placement

        def fit(name):
            task, config, extra = SYSTEMS[name]
            out = args.work_dir / "systems" / name
            if (out / "model_index.json").exists():
                return
            started = time.perf_counter()
            train(train_command(args.work_dir, out, task, dict(BASE_ADAPTER, **config), 0, args.steps, args.batch_size, extra), out)
            timing = out / "train_seconds.json"  # summed over resumed pieces
            before = json.loads(timing.read_text())["seconds"] if timing.exists() else 0.0
            timing.write_text(json.dumps({"seconds": before + time.perf_counter() - started}) + "\n")

        with ThreadPoolExecutor(args.lanes) as pool:
            list(pool.map(fit, SYSTEMS))
        with ThreadPoolExecutor(args.lanes) as pool:
            list(pool.map(lambda row: run_row(args.work_dir, row, args), PAIR_ROWS + V2A_ROWS))
    report(args.work_dir, args)


if __name__ == "__main__":
    main()
