"""Few-step students against their teachers on held-out SynthHits, in one run on the same clips and seeds: V2A
onset accuracy / precision / F1, A2V contact accuracy / precision, and seconds per sample, with the wall-clock
ratio to the 64-step teacher. Rows: the teacher at its own steps (64, guidance: two forward passes a step), the
teacher cut to the student's step count (same grid, guidance kept: the baseline distillation must beat) and the
student (one forward pass a step). Samplers alternate clip by clip, so a change in machine load hits all of them.

    python benchmarks/distillation.py --teacher runs/v2 --student runs/v2/students --splits id ood --clips 40

`--teacher` and `--student` each hold `v2a/` and `a2v/` (or are one V2A or A2V folder). Writes
benchmarks/results/distillation_<split>.{json,md}; the clips are those of benchmarks/synthhits.py.
"""

import argparse
import json
import os
import time

import torch

from av_link.data.synthetic_v2 import make_synthhits_v2_dataset
from av_link.evaluation import (
    audio_scores,
    format_table,
    load_clips,
    load_pipelines,
    summarize,
    to_uint8_frames,
    video_scores,
)
from av_link.utils.media_io import read_audio, read_video, to_mono

HERE = os.path.dirname(os.path.abspath(__file__))


def sample(pipe, direction: str, clip, frames, fps, wave, sr, steps: int, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    if direction == "V2A":
        out = pipe(video=frames, video_fps=fps, prompt=clip.audio_caption, conditioning_prompt=clip.video_caption,
                   num_inference_steps=steps, generator=generator)
        seconds = time.perf_counter() - started
        return {**audio_scores(out.audios[0], out.sample_rate, clip), "seconds": seconds}
    out = pipe(audio=wave, sample_rate=sr, prompt=clip.video_caption, conditioning_prompt=clip.audio_caption,
               num_inference_steps=steps, generator=generator)
    seconds = time.perf_counter() - started
    return {**video_scores(to_uint8_frames(out.frames[0]), out.fps, clip), "seconds": seconds}


def run_split(teachers, students, clips, seed: int) -> dict:
    rows = {}
    for i, clip in enumerate(clips):
        frames, fps = read_video(clip.video)
        wave, sr = read_audio(clip.audio)
        wave = to_mono(wave)
        for direction, teacher, student in (("V2A", teachers[0], students[0]), ("A2V", teachers[1], students[1])):
            if teacher is None or student is None:
                continue
            steps = student.config.num_inference_steps
            runs = {f"{direction} teacher, {teacher.config.num_inference_steps} steps": (teacher, teacher.config.num_inference_steps),
                    f"{direction} teacher, {steps} steps": (teacher, steps), f"{direction} student, {steps} steps": (student, steps)}
            for name, (pipe, n) in runs.items():
                rows.setdefault(name, []).append(sample(pipe, direction, clip, frames, fps, wave, sr, n, seed + i))
    return summarize_samplers(rows)


def summarize_samplers(rows: dict) -> dict:
    """{sampler: [scores per clip]} -> each sampler's means (the benchmark's `summarize`: a metric some clips leave
    out, `ring_ripple_db` where no ring is measured, is averaged over those that have it) and its wall-clock ratio to
    its direction's teacher at its own steps (the direction's first sampler)."""
    summary = summarize([dict(zip(rows, clip)) for clip in zip(*rows.values())])
    for name in rows:
        reference = next(k for k in rows if k.split(" ")[0] == name.split(" ")[0])
        summary[name]["time_ratio"] = summary[name]["seconds"] / summary[reference]["seconds"]
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--student", required=True)
    parser.add_argument("--data_root", default=os.path.join(HERE, "results", "synthhits_data"))
    parser.add_argument("--splits", nargs="+", default=["id", "ood"], choices=["id", "ood"])
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    teachers, students = load_pipelines(args.teacher), load_pipelines(args.student)
    for pipe in (*teachers, *students):
        if pipe is not None:
            pipe.set_progress_bar_config(disable=True)
    columns = ["onset_acc", "onset_precision", "onset_f1", "contact_acc", "contact_precision", "seconds", "time_ratio"]
    for split in args.splits:
        data = os.path.join(args.data_root, split)
        if not os.path.isfile(os.path.join(data, "metadata.jsonl")):
            make_synthhits_v2_dataset(data, args.clips, split=split)
        summary = run_split(teachers, students, load_clips(data, args.clips), args.seed)
        table = format_table(summary, columns, label="sampler")
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, f"distillation_{split}.json"), "w") as f:
            json.dump({"teacher": args.teacher, "student": args.student, "clips": args.clips, "seed": args.seed, "summary": summary}, f, indent=1)
        with open(os.path.join(args.out, f"distillation_{split}.md"), "w") as f:
            f.write(table + "\n")
        print(f"== {split} ({args.clips} clips)\n{table}\n")


if __name__ == "__main__":
    main()
