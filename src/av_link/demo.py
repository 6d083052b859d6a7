"""`av-link demo`: the shipped SynthHits models on a fresh held-out clip, offline, in well under two minutes on a CPU.

Writes into the output folder: `input.mp4` (the clip with its true sound), `v2a.mp4` (the input video
with generated audio), `a2v.mp4` (generated video with the input audio), `alignment.png`, and
`metrics.json`; prints the onset and contact-time metrics.

The clip is SynthHits v2: its impacts show only through the motion (the object meets the surface and
bounces; no flash), a silent distractor moves beside it, and it is rendered at 25 fps, not at the models'
own 12 fps, so the demo goes through the pipelines' frame-rate conversion as a user's video would.
"""

import json
import os
import time

import numpy as np
import torch

from .data.synthetic_v2 import SynthHitsV2Config, generate_clip_v2
from .evaluation import load_pipelines, shipped_models_dir, to_uint8_frames, vocoder_name
from .metrics import contact_signal, contact_time_metrics, onset_metrics
from .utils.media_io import write_video
from .utils.video_ops import frame_time

VIEW_SCALE = 8  # generated frames are upscaled (nearest) for viewing; metrics use the model's frames
DEMO_FPS = 25.0  # a native rate other than the models' 12 fps


def _times(seconds) -> str:
    return ", ".join(f"{t:.2f} s" for t in seconds) or "none"


def _upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    return frames.repeat(factor, axis=1).repeat(factor, axis=2)


def plot_alignment(path: str, clip: dict, v2a_audio, sample_rate, v2a_onsets, a2v_frames, fps, a2v_events) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(8, 4.2), sharex=True)
    t = np.arange(len(v2a_audio)) / sample_rate
    axes[0].plot(t, v2a_audio, lw=0.4, color="0.35")
    axes[0].set_title("V2A: generated audio (red: detected onsets) vs the video's impacts (green)", fontsize=9)
    signal = contact_signal(a2v_frames)
    axes[1].plot(frame_time(np.arange(len(signal)), fps), signal, "o-", color="0.35", ms=3)
    axes[1].set_title("A2V: generated object's contact with the surface (red: detected contacts) vs the audio's impacts (green)",
                      fontsize=9)
    for ax, detected in ((axes[0], v2a_onsets), (axes[1], a2v_events)):
        for e in clip["event_times"]:
            ax.axvline(e, color="tab:green", lw=3, alpha=0.5)
        for d in detected:
            ax.axvline(d, color="tab:red", lw=1, ls="--")
        ax.set_yticks([])
    axes[1].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_demo(out_dir: str = "demo_out", model_dir: str | None = None, seed: int = 2026, num_inference_steps: int | None = None,
             log=print) -> dict:
    started = time.perf_counter()
    model_dir = model_dir or shipped_models_dir()
    v2a, a2v = load_pipelines(model_dir)
    if v2a is None or a2v is None:
        raise ValueError(f"the demo needs both directions: {model_dir} must hold v2a/ and a2v/")
    vocoder = vocoder_name(v2a)
    log(f"loaded V2A and A2V from {model_dir}; vocoder: {vocoder} (the model folder's)")
    # A clip no model has seen (the training split's clip seeds derive from 1), with a silent distractor.
    config = SynthHitsV2Config.split("id")
    clip = generate_clip_v2(config, seed, fps=DEMO_FPS, distractor=True)
    sr, fps = config.sample_rate, clip["fps"]
    log(f"held-out clip: {clip['video_caption']!r}, {clip['duration']:.2f} s at {fps:g} fps, impacts at "
        f"{_times(clip['event_times'])}")
    os.makedirs(out_dir, exist_ok=True)
    write_video(os.path.join(out_dir, "input.mp4"), clip["frames"], fps, audio=clip["audio"], sample_rate=sr)
    generator = torch.Generator().manual_seed(seed)
    for pipe in (v2a, a2v):
        pipe.set_progress_bar_config(desc="sampling", leave=False)

    audio_out = v2a(video=clip["frames"], video_fps=fps, prompt=clip["audio_caption"], conditioning_prompt=clip["video_caption"],
                    num_inference_steps=num_inference_steps, generator=generator)
    generated_audio = audio_out.audios[0]
    write_video(os.path.join(out_dir, "v2a.mp4"), clip["frames"], fps, audio=generated_audio, sample_rate=audio_out.sample_rate)

    video_out = a2v(audio=clip["audio"], sample_rate=sr, prompt=clip["video_caption"], conditioning_prompt=clip["audio_caption"],
                    num_inference_steps=num_inference_steps, generator=generator)
    frames = to_uint8_frames(video_out.frames[0])
    write_video(os.path.join(out_dir, "a2v.mp4"), _upscale(frames, VIEW_SCALE), video_out.fps, audio=clip["audio"], sample_rate=sr)

    onsets = onset_metrics(generated_audio, audio_out.sample_rate, reference_times=clip["event_times"])
    events = contact_time_metrics(frames, clip["event_times"], video_out.fps)
    metrics = {
        "event_times": clip["event_times"], "fps": fps, "vocoder": vocoder,
        "v2a": {"onset_acc": onsets["acc"], "onset_precision": onsets["precision"], "onset_f1": onsets["f1"],
                "onset_ap": onsets["ap"], "generated_onsets": onsets["generated_onsets"].tolist()},
        "a2v": {"contact_acc": events["accuracy"], "contact_precision": events["precision"], "contact_f1": events["f1"],
                "detected_contacts": events["detected_times"].tolist()},
    }
    try:
        plot_alignment(os.path.join(out_dir, "alignment.png"), clip, generated_audio, audio_out.sample_rate,
                       onsets["generated_onsets"], frames, video_out.fps, events["detected_times"])
    except ImportError:
        log("matplotlib is not installed (pip install av-link[eval]): no alignment.png")
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    log(f"V2A: onset acc {onsets['acc']:.2f}, precision {onsets['precision']:.2f}, AP {onsets['ap']:.2f} "
        f"(generated onsets: {_times(onsets['generated_onsets'])})")
    log(f"A2V: contact-time acc {events['accuracy']:.2f}, precision {events['precision']:.2f} "
        f"(generated contacts: {_times(events['detected_times'])})")
    log(f"wrote {out_dir}/input.mp4, v2a.mp4, a2v.mp4, alignment.png, metrics.json in {time.perf_counter() - started:.1f} s")
    return metrics
