"""Paired audio-video training clips: a folder of media files plus a metadata file -> model-space tensors.

A dataset folder holds

- media: ``<name>.mp4`` with an audio track, or ``<name>.mp4`` plus a same-named ``<name>.wav`` (the wav
  wins; an ``audio_file`` metadata column, as written by SynthHits, wins over both);
- ``metadata.jsonl`` (one JSON object a line) or ``metadata.csv`` with at least ``file_name``,
  ``audio_caption`` and ``video_caption``. Other columns are passed through to every item; time columns
  (``event_times`` by default) are shifted by the crop start so ground truth stays aligned with the crop.

Every item covers the same ``clip_seconds`` of audio and video: the window start is a whole number of model
video frames (``k / fps`` seconds) and the audio is cut at that same time. Crops are a pure function of
``(seed, epoch, index)`` (plus the file's content): no global random state is read or advanced, so a resumed
run sees exactly the same crops.

The video goes through exactly the resampling of :func:`av_link.pipelines.inputs.prepare_video` (nearest frame
in time, resize to cover, centre crop; see :func:`resample_video_frames`), then is stored as uint8, so a
training clip differs from what a pipeline would feed the model from the same file by at most half an 8-bit
step. The audio goes through the pipelines' ``prepare_audio`` steps (mix to mono, then polyphase resampling).

DataLoader use::

    ds = AVClipDataset("data/train", fps=6, height=36, width=64, clip_seconds=5.16, mel_frontend=frontend,
                       cache_dir="data/cache")
    loader = DataLoader(ds, batch_size=16, shuffle=True, num_workers=4, collate_fn=ds.collate_fn)
    for epoch in range(start_epoch, num_epochs):
        ds.set_epoch(epoch)  # before creating the epoch's iterator
        for batch in loader: ...

``set_epoch`` changes the dataset object in the main process; DataLoader workers get a fresh copy of it when an
epoch's iterator starts, which is what happens with the default ``persistent_workers=False``. With
``persistent_workers=True`` the workers keep the epoch they were started with, so do not combine the two (or
rebuild the DataLoader per epoch). Default collation fails on per-clip lists of different length
(``event_times``); use ``collate_fn``, which stacks tensors and numbers and keeps everything else as lists.
"""

from __future__ import annotations

import concurrent.futures
import copy
import csv
import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..utils.media_io import MediaError, read_audio, read_video, resample_audio
from ..utils.video_ops import resample_video

__all__ = [
    "AVClipDataset",
    "AVClipDatasetConfig",
    "ClipLoadError",
    "probe_media",
    "av_clip_collate",
    "resample_video_frames",
]

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

_MODALITIES = ("audio", "video")
_VERIFY_MODES = ("header", "packets", "decode")
_ON_LOAD_ERROR = ("replace", "raise")
# Item keys the dataset itself produces; metadata columns with these names are not copied into items.
_RESERVED_KEYS = frozenset(
    {"video", "mel", "waveform", "audio_caption", "video_caption", "index", "crop_start", "crop_start_frame"}
)
# Skip reasons, in the order they are checked and reported.
REASONS = ("bad metadata", "missing", "unreadable", "no video", "no audio", "too short", "failed at load")
# Bump when the decoded/resampled content of a cache entry would change for the same settings.
_CACHE_VERSION = 1
_PROBE_CACHE_NAME = "probe_cache.json"


# ---------------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class AVClipDatasetConfig:
    """Options of :class:`AVClipDataset`.

    Args:
        fps, height, width: model video frame rate and resolution (paper: 6 fps, 36 x 64).
        sample_rate: model audio rate. ``None`` takes the mel front end's rate, or 16 kHz (the paper's) when the
            dataset builds its own front end. Must agree with a front end that is passed in.
        clip_seconds: length of every training window (paper: 5.16 s). Videos give ``round(clip_seconds * fps)``
            frames, audio ``round(clip_seconds * sample_rate)`` samples and ``that // hop_length`` mel frames.
        random_crop: draw the window start (on the model frame grid) per (seed, epoch, index); ``False``
            always starts at 0.
        modalities: what to decode and return; ``("audio",)`` never touches the video stream, so a
            text-to-audio run can use audio-only files, and ``("video",)`` accepts mp4s without audio.
        seed: base seed of the crops.
        cache_dir: where decoded + resampled full clips (and probe results) are kept between epochs and runs.
        return_waveform: also return the mono waveform window (``waveform``, ``(samples,)`` float32).
        verify: how the construction scan checks a media file. ``"header"``: ffmpeg reads the container header
            only (cheapest, misses truncated data in files whose index is at the front); ``"packets"``
            (default): ffmpeg also reads every packet without decoding (a stream copy to the null muxer), which
            catches truncated and corrupt data and counts the video frames; ``"decode"``: full decode at
            construction (slow; fills the cache when ``cache_dir`` is set).
        length_tolerance: seconds of audio a clip may lack at the end of a window (zero-padded), to absorb
            container rounding; also the slack of the scan's length test.
        time_keys: metadata columns holding times in seconds (a number or a list of numbers); items get them
            minus the crop start, lists keeping only times inside the window.
        on_load_error: a clip that passed the scan but fails to decode later is logged and replaced by the next
            usable clip (``"replace"``, the default, so a long run does not die on one bad file) or raises.
        num_scan_workers: threads for the construction scan (each runs one ffmpeg process); ``None`` = up to 8.
    """

    fps: float = 6.0
    height: int = 36
    width: int = 64
    sample_rate: Optional[int] = None
    clip_seconds: float = 5.16
    random_crop: bool = True
    modalities: Tuple[str, ...] = ("audio", "video")
    seed: int = 0
    cache_dir: Optional[str] = None
    return_waveform: bool = True
    verify: str = "packets"
    length_tolerance: float = 0.05
    time_keys: Tuple[str, ...] = ("event_times",)
    on_load_error: str = "replace"
    num_scan_workers: Optional[int] = None

    def __post_init__(self):
        if isinstance(self.modalities, str):
            self.modalities = (self.modalities,)
        self.modalities = tuple(self.modalities)
        if isinstance(self.time_keys, str):
            self.time_keys = (self.time_keys,)
        self.time_keys = tuple(self.time_keys)
        if not self.modalities or any(m not in _MODALITIES for m in self.modalities):
            raise ValueError(f"modalities must be a non-empty subset of {_MODALITIES}, got {self.modalities}")
        if len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"modalities has duplicates: {self.modalities}")
        for name in ("height", "width", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.height < 1 or self.width < 1:
            raise ValueError(f"height and width must be positive, got {self.height}x{self.width}")
        if self.sample_rate is not None and (
            isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, (int, np.integer)) or self.sample_rate <= 0
        ):
            raise ValueError(f"sample_rate must be a positive integer or None, got {self.sample_rate!r}")
        if not (isinstance(self.fps, (int, float)) and math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be a positive number, got {self.fps!r}")
        if not (isinstance(self.clip_seconds, (int, float)) and math.isfinite(self.clip_seconds) and self.clip_seconds > 0):
            raise ValueError(f"clip_seconds must be a positive number, got {self.clip_seconds!r}")
        if round(self.clip_seconds * self.fps) < 1:
            raise ValueError(f"clip_seconds={self.clip_seconds} is shorter than one video frame at {self.fps} fps")
        if self.verify not in _VERIFY_MODES:
            raise ValueError(f"verify must be one of {_VERIFY_MODES}, got {self.verify!r}")
        if self.on_load_error not in _ON_LOAD_ERROR:
            raise ValueError(f"on_load_error must be one of {_ON_LOAD_ERROR}, got {self.on_load_error!r}")
        if not (self.length_tolerance >= 0):
            raise ValueError(f"length_tolerance must be >= 0, got {self.length_tolerance!r}")
        if self.num_scan_workers is not None and self.num_scan_workers < 1:
            raise ValueError(f"num_scan_workers must be >= 1 or None, got {self.num_scan_workers!r}")


# ---------------------------------------------------------------------------------------------------------------
# Video resampling shared with the pipelines' prepare_video
# ---------------------------------------------------------------------------------------------------------------


def resample_video_frames(frames: np.ndarray, fps: float, target_fps: float, height: int, width: int) -> np.ndarray:
    """uint8 ``(F, H, W, 3)`` at ``fps`` -> uint8 at ``target_fps`` and ``(height, width)``, with the pipelines'
    conversion (:func:`av_link.utils.video_ops.resample_video`)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (F, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    if 0 in frames.shape:
        raise MediaError("video has no frames (zero-length clip)")
    out = resample_video(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2), float(fps), target_fps,
                         height, width)
    return (out * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


# ---------------------------------------------------------------------------------------------------------------
# Probing (cheap: one ffmpeg process per file, no decoding; wav headers without ffmpeg)
# ---------------------------------------------------------------------------------------------------------------

_STREAM_RE = re.compile(r"^\s*Stream #\d+:\d+\S*: (Video|Audio): (.*)$", re.MULTILINE)
_DURATION_RE = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_FPS_RE = re.compile(r"(\d+(?:\.\d+)?)(k?) (fps|tbr)\b")
_HZ_RE = re.compile(r"(\d+) Hz")
_FRAME_RE = re.compile(r"frame=\s*(\d+)")
_PACKET_ERROR_RE = re.compile(r"partial file|corrupt|invalid data|error", re.IGNORECASE)


def _ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _clean(line: str) -> str:
    return re.sub(r"^(\[[^\]]*\]\s*)+", "", line.strip())


def _parse_fps(desc: str) -> Optional[float]:
    found = {kind: float(value) * (1000 if k else 1) for value, k, kind in _FPS_RE.findall(desc)}
    fps = found.get("fps") or found.get("tbr")
    return fps if fps and math.isfinite(fps) and fps > 0 else None


def _probe_wav(path: str) -> Optional[Dict[str, Any]]:
    from scipy.io import wavfile

    try:
        rate, data = wavfile.read(path, mmap=True)  # header + memory map: no sample is read
        num = int(data.shape[0])
        del data
    except Exception:
        return None  # not a wav scipy can map (24-bit, odd header...): let ffmpeg judge it
    if num == 0 or rate <= 0:
        return dict(error="audio stream has zero samples", video=False, audio=False)
    return dict(error=None, video=False, audio=True, audio_duration=num / float(rate), sample_rate=int(rate))


def probe_media(path: PathLike, verify: str = "packets") -> Dict[str, Any]:
    """Cheap facts about a media file, never raising for a bad file.

    Returns a dict with ``error`` (``None`` or one line), ``video`` / ``audio`` (stream present), ``fps``,
    ``video_frames`` (packet count; ``verify="packets"`` only), ``duration`` (container), ``audio_duration``
    (wav header) and ``sample_rate``. ``verify="decode"`` probes like ``"packets"``; decoding is the dataset's job.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        return dict(error="no such file", video=False, audio=False)
    if not os.access(path, os.R_OK):
        return dict(error="permission denied", video=False, audio=False)
    if os.path.getsize(path) == 0:
        return dict(error="file is empty (0 bytes)", video=False, audio=False)
    if path.lower().endswith((".wav", ".wave")):
        info = _probe_wav(path)
        if info is not None:
            return info
    cmd = [_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", path]
    if verify != "header":
        cmd += ["-map", "0:v:0?", "-map", "0:a:0?", "-c", "copy", "-f", "null", "-"]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
    except subprocess.TimeoutExpired:
        return dict(error="ffmpeg probe timed out", video=False, audio=False)
    text = proc.stderr.decode("utf-8", errors="replace")
    # the input summary comes first; the output summary repeats the stream lines, so cut it off
    head = re.split(r"^Stream mapping:|^Output #0", text, maxsplit=1, flags=re.MULTILINE)[0]
    video = [d for kind, d in _STREAM_RE.findall(head) if kind == "Video" and "(attached pic)" not in d]
    audio = [d for kind, d in _STREAM_RE.findall(head) if kind == "Audio"]
    info: Dict[str, Any] = dict(error=None, video=bool(video), audio=bool(audio))
    if not video and not audio:
        lines = [_clean(line) for line in text.splitlines()]
        errors = [line for line in lines if line and "output file" not in line and not line.startswith("Error opening")]
        info["error"] = errors[-1] if errors else "ffmpeg found no audio or video stream"
        return info
    match = _DURATION_RE.search(head)
    if match:
        h, m, s = match.groups()
        info["duration"] = int(h) * 3600 + int(m) * 60 + float(s)
    if video:
        info["fps"] = _parse_fps(video[0])
    if audio:
        hz = _HZ_RE.search(audio[0])
        info["sample_rate"] = int(hz.group(1)) if hz else None
    if verify != "header":
        tail = text[len(head):]
        bad = [_clean(line) for line in tail.splitlines() if _PACKET_ERROR_RE.search(line)]
        if proc.returncode != 0 or bad:
            info["error"] = bad[0] if bad else f"ffmpeg could not read the packets (exit code {proc.returncode})"
        frames = _FRAME_RE.findall(tail)
        if video and frames:
            info["video_frames"] = int(frames[-1])
    return info


def _video_seconds(info: Dict[str, Any]) -> Optional[float]:
    if info.get("video_frames") and info.get("fps"):
        return info["video_frames"] / info["fps"]  # what read_video's frames / fps will give
    return info.get("duration")


def _audio_seconds(info: Dict[str, Any]) -> Optional[float]:
    return info.get("audio_duration") or info.get("duration")


# ---------------------------------------------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------------------------------------------


def _read_metadata(path: Path) -> List[Tuple[int, Optional[Dict[str, Any]], str]]:
    """-> (line number, row or None, problem) per data line."""
    rows: List[Tuple[int, Optional[Dict[str, Any]], str]] = []
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None:
                return rows
            for row in reader:
                line = reader.line_num
                if None in row:  # more cells than header columns
                    rows.append((line, None, "more cells than header columns"))
                    continue
                # an empty csv cell is a missing value
                rows.append((line, {k: (v if v != "" else None) for k, v in row.items()}, ""))
        return rows
    with open(path, encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                rows.append((line_no, None, f"invalid JSON ({err.msg})"))
                continue
            if not isinstance(row, dict):
                rows.append((line_no, None, "not a JSON object"))
                continue
            rows.append((line_no, row, ""))
    return rows


def _as_times(value: Any) -> Any:
    """A number, a list of numbers, or a csv cell holding either as JSON text -> float / list of float."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return [float(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------------------------
# Dataset
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class _Clip:
    file_name: str
    video_path: Optional[str]
    audio_path: Optional[str]
    row: Dict[str, Any]


class ClipLoadError(MediaError):
    """A clip that passed the construction scan turned out unusable when decoded."""



def _file_key(path: str) -> Dict[str, Any]:
    st = os.stat(path)
    return dict(path=os.path.realpath(path), mtime_ns=st.st_mtime_ns, size=st.st_size)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:40]


def _atomic_write(path: str, write) -> None:
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=directory)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def av_clip_collate(batch: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Batch :class:`AVClipDataset` items: same-shape tensors are stacked, numbers become tensors, and everything
    else (captions, per-clip lists such as ``event_times``, ``None``) stays a list of length B."""
    if not batch:
        raise ValueError("cannot collate an empty batch")
    keys = list(batch[0])
    out: Dict[str, Any] = {}
    for key in keys:
        values = [item.get(key) for item in batch]
        first = values[0]
        if isinstance(first, torch.Tensor) and all(
            isinstance(v, torch.Tensor) and v.shape == first.shape and v.dtype == first.dtype for v in values
        ):
            out[key] = torch.stack(values)
        elif all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values):
            try:
                as_int = all(isinstance(v, (int, np.integer)) for v in values)
                out[key] = torch.tensor(values, dtype=torch.int64 if as_int else torch.float64)
            except (OverflowError, RuntimeError):
                out[key] = list(values)
        else:
            out[key] = list(values)
    return out


class AVClipDataset(torch.utils.data.Dataset):
    """Time-aligned audio/video training windows from a folder of clips and a ``metadata.jsonl`` / ``.csv``.

    Args:
        data_dir: the folder; ``file_name`` (and ``audio_file``) paths are relative to it.
        config: an :class:`AVClipDatasetConfig`; keyword arguments override its fields
            (``AVClipDataset(d, fps=8, height=32, width=32, clip_seconds=1.0)``).
        metadata_file: defaults to ``data_dir/metadata.jsonl``, else ``data_dir/metadata.csv``.
        mel_frontend: the :class:`~av_link.models.audio_frontend.AVLinkMelSpectrogram` the audio backbone is
            trained with (its sample rate becomes the model rate); built from ``config.sample_rate`` if omitted.

    Items (``dataset[i]``) are dicts with

    - ``video``: float32 ``(3, F, height, width)`` in ``[-1, 1]``, ``F = round(clip_seconds * fps)``;
    - ``mel``: float32 ``(T, n_mels)``, ``frontend.normalize(frontend(waveform))``,
      ``T = round(clip_seconds * sample_rate) // hop_length``;
    - ``waveform``: float32 ``(round(clip_seconds * sample_rate),)`` mono (with ``return_waveform``);
    - ``audio_caption``, ``video_caption`` (str), ``index`` (int, the clip actually returned),
      ``crop_start`` (seconds), ``crop_start_frame`` (model frames);
    - every other metadata column of the clip, ``time_keys`` shifted by ``crop_start``.

    ``video`` / ``mel`` / ``waveform`` are present only for the requested ``modalities``.

    Attributes:
        skipped: reason -> list of files that were left out (``"bad metadata"`` entries are
            ``metadata_path:line``); ``"failed at load"`` grows at run time, per process.
        skip_details: file -> the one-line problem.
        summary: the one-line summary logged at construction.
    """

    def __init__(
        self,
        data_dir: PathLike,
        config: Optional[AVClipDatasetConfig] = None,
        *,
        metadata_file: Optional[PathLike] = None,
        mel_frontend=None,
        **overrides,
    ):
        super().__init__()
        config = config if config is not None else AVClipDatasetConfig()
        if not isinstance(config, AVClipDatasetConfig):
            raise ValueError(f"config must be an AVClipDatasetConfig, got {type(config).__name__}")
        if overrides:
            known = {f.name for f in dataclasses.fields(AVClipDatasetConfig)}
            unknown = sorted(set(overrides) - known)
            if unknown:
                raise TypeError(f"unknown AVClipDataset options {unknown}; choose from {sorted(known)}")
            config = dataclasses.replace(config, **overrides)
        self.data_dir = Path(data_dir)
        if not self.data_dir.is_dir():
            raise FileNotFoundError(f"AVClipDataset: data directory {self.data_dir} does not exist")
        self.metadata_file = self._find_metadata(metadata_file)

        self.mel_frontend = self._setup_frontend(mel_frontend, config)
        if config.sample_rate is None:
            config = dataclasses.replace(config, sample_rate=int(self.mel_frontend.config.sample_rate))
        self.config = config
        self.epoch = 0

        self.num_frames = int(round(config.clip_seconds * config.fps))
        self.num_samples = int(round(config.clip_seconds * config.sample_rate))
        self.num_mel_frames = int(self.mel_frontend.num_frames(self.num_samples))
        if self.needs_audio and self.num_samples < self.mel_frontend.min_num_samples:
            raise ValueError(f"clip_seconds={config.clip_seconds} gives {self.num_samples} samples, too few for a mel frame")

        self.cache_dir: Optional[str] = None
        if config.cache_dir is not None:
            self.cache_dir = os.fspath(config.cache_dir)
            os.makedirs(self.cache_dir, exist_ok=True)

        self.skipped: Dict[str, List[str]] = {}
        self.skip_details: Dict[str, str] = {}
        self.clips: List[_Clip] = []
        self._failed: set = set()
        self._scan()

    # -- setup ----------------------------------------------------------------------------------------------

    @property
    def needs_audio(self) -> bool:
        return "audio" in self.config.modalities

    @property
    def needs_video(self) -> bool:
        return "video" in self.config.modalities

    def _find_metadata(self, metadata_file: Optional[PathLike]) -> Path:
        if metadata_file is not None:
            path = Path(metadata_file)
            if not path.is_absolute() and not path.exists():
                path = self.data_dir / path
            if not path.is_file():
                raise FileNotFoundError(f"AVClipDataset: metadata file {path} does not exist")
            if path.suffix.lower() not in (".jsonl", ".csv"):
                raise ValueError(f"AVClipDataset: metadata must be a .jsonl or .csv file, got {path}")
            return path
        for name in ("metadata.jsonl", "metadata.csv"):
            if (self.data_dir / name).is_file():
                return self.data_dir / name
        raise FileNotFoundError(f"AVClipDataset: no metadata.jsonl or metadata.csv in {self.data_dir}")

    @staticmethod
    def _setup_frontend(frontend, config: AVClipDatasetConfig):
        from ..models.audio_frontend import AVLinkMelSpectrogram

        if frontend is None:
            sr = int(config.sample_rate or 16000)
            return AVLinkMelSpectrogram(sample_rate=sr, f_max=min(8000.0, sr / 2)).eval()
        if not hasattr(frontend, "normalize") or not hasattr(frontend, "num_frames"):
            raise ValueError(f"mel_frontend must be an AVLinkMelSpectrogram, got {type(frontend).__name__}")
        sr = int(frontend.config.sample_rate)
        if config.sample_rate is not None and int(config.sample_rate) != sr:
            raise ValueError(f"sample_rate={config.sample_rate} disagrees with the mel front end's {sr} Hz")
        # a private CPU copy: items are built in DataLoader workers, which must not touch an accelerator
        return copy.deepcopy(frontend).to("cpu").eval()

    # -- scan -----------------------------------------------------------------------------------------------

    def _skip(self, reason: str, name: str, detail: str) -> None:
        self.skipped.setdefault(reason, []).append(name)
        self.skip_details[name] = detail

    def _resolve(self, row: Dict[str, Any]) -> Tuple[Optional[str], Optional[str]]:
        video_path = os.path.join(self.data_dir, str(row["file_name"]))
        audio_path = None
        if self.needs_audio:
            if row.get("audio_file"):
                audio_path = os.path.join(self.data_dir, str(row["audio_file"]))
            else:
                stem = os.path.splitext(video_path)[0]
                audio_path = next((stem + ext for ext in (".wav", ".WAV") if os.path.isfile(stem + ext)), video_path)
        return (video_path if self.needs_video else None), audio_path

    def _scan(self) -> None:
        cfg = self.config
        rows = _read_metadata(self.metadata_file)
        if not rows:
            raise ValueError(f"AVClipDataset: {self.metadata_file} has no entries")
        required = ["file_name"] + [f"{m}_caption" for m in _MODALITIES if m in cfg.modalities]
        parsed = [row for _, row, _ in rows if row is not None]
        for column in required:
            if parsed and not any(column in row for row in parsed):
                raise ValueError(f"AVClipDataset: {self.metadata_file} has no {column!r} column (need {required})")

        candidates: List[Tuple[Dict[str, Any], str, Optional[str], Optional[str]]] = []
        for line, row, problem in rows:
            where = f"{self.metadata_file}:{line}"
            if row is None:
                self._skip("bad metadata", where, problem)
                continue
            missing = [c for c in required if not isinstance(row.get(c), str) or (c == "file_name" and not row[c])]
            if missing:
                self._skip("bad metadata", where, f"missing or non-string {missing}")
                continue
            video_path, audio_path = self._resolve(row)
            candidates.append((row, row["file_name"], video_path, audio_path))

        # probe every distinct file once, in parallel (each probe is an ffmpeg process)
        paths = sorted({p for _, _, v, a in candidates for p in (v, a) if p is not None and os.path.isfile(p)})
        probes = self._probe_all(paths)

        collisions = set()
        for row, name, video_path, audio_path in candidates:
            shown = video_path or audio_path
            missing = [p for p in (video_path, audio_path) if p is not None and not os.path.isfile(p)]
            if missing:
                self._skip("missing", shown, "no such file" if missing[0] == shown else f"no such file: {missing[0]}")
                continue
            vinfo = probes[video_path] if video_path else None
            ainfo = probes[audio_path] if audio_path else None
            bad = [(p, i) for p, i in ((video_path, vinfo), (audio_path, ainfo)) if i is not None and i["error"]]
            if bad:
                path, info = bad[0]
                self._skip("unreadable", shown, info["error"] if path == shown else f"{path}: {info['error']}")
                continue
            if vinfo is not None and not vinfo["video"]:
                self._skip("no video", shown, "has no video stream")
                continue
            if ainfo is not None and not ainfo["audio"]:
                self._skip("no audio", shown, "has no audio stream and there is no same-named .wav")
                continue
            short = self._too_short(vinfo, ainfo)
            if short:
                self._skip("too short", shown, short)
                continue
            collisions.update(k for k in row if k in _RESERVED_KEYS and k not in ("audio_caption", "video_caption"))
            self.clips.append(_Clip(name, video_path, audio_path, dict(row)))

        if collisions:
            logger.warning("AVClipDataset: metadata columns %s collide with item keys and are not copied into items", sorted(collisions))

        if cfg.verify == "decode":
            self._verify_by_decoding()

        self.summary = self._summary()
        if self.skipped:
            examples = "; ".join(f"{name}: {self.skip_details[name]}" for names in self.skipped.values() for name in names[:2])
            logger.warning("%s. Examples: %s", self.summary, examples)
        else:
            logger.info(self.summary)
        if not self.clips:
            raise ValueError(f"{self.summary}: no usable clips in {self.data_dir} (see dataset.skipped reasons above)")

    def _too_short(self, vinfo, ainfo) -> Optional[str]:
        cfg = self.config
        need = cfg.clip_seconds
        if vinfo is not None:
            seconds = _video_seconds(vinfo)
            if seconds is None:
                return "video duration unknown"
            frames = round(seconds * cfg.fps)
            if frames < self.num_frames:
                return f"video is {seconds:.3f} s ({frames} frames at {cfg.fps:g} fps), the window needs {self.num_frames}"
        if ainfo is not None:
            seconds = _audio_seconds(ainfo)
            if seconds is None:
                return "audio duration unknown"
            if seconds + cfg.length_tolerance < need - 0.5 / cfg.sample_rate:
                return f"audio is {seconds:.3f} s, the window needs {need:g} s"
        return None

    def _probe_all(self, paths: Sequence[str]) -> Dict[str, Dict[str, Any]]:
        mode = self.config.verify
        cache: Dict[str, Any] = {}
        cache_path = os.path.join(self.cache_dir, _PROBE_CACHE_NAME) if self.cache_dir else None
        if cache_path and os.path.isfile(cache_path):
            try:
                with open(cache_path, encoding="utf-8") as f:
                    cache = json.load(f)
            except (OSError, ValueError):
                cache = {}
        keys = {}
        for p in paths:
            try:
                keys[p] = _digest([_file_key(p), mode])
            except OSError:  # vanished or unreadable since listing: probe_media reports it
                keys[p] = _digest([p, mode, "unstatable"])
                cache.pop(keys[p], None)
        todo = [p for p in paths if keys[p] not in cache]
        workers = self.config.num_scan_workers or min(8, os.cpu_count() or 1)
        if todo:
            with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
                for p, info in zip(todo, pool.map(lambda q: probe_media(q, mode), todo)):
                    cache[keys[p]] = info
            if cache_path:
                _atomic_write(cache_path, lambda tmp: Path(tmp).write_text(json.dumps(cache), encoding="utf-8"))
        return {p: cache[keys[p]] for p in paths}

    def _verify_by_decoding(self) -> None:
        def check(i):
            try:
                self._load_full(i)
                return None
            except (ClipLoadError, MediaError, ValueError, OSError) as err:
                return str(err)

        workers = self.config.num_scan_workers or min(8, os.cpu_count() or 1)
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            problems = list(pool.map(check, range(len(self.clips))))
        keep = []
        for clip, problem in zip(self.clips, problems):
            if problem is None:
                keep.append(clip)
            else:
                reason = "too short" if "too short" in problem else "unreadable"
                self._skip(reason, clip.video_path or clip.audio_path, problem)
        self.clips = keep

    def _summary(self) -> str:
        total = sum(len(v) for v in self.skipped.values())
        text = f"AVClipDataset: {len(self.clips)} clips usable, skipped {total}"
        if total:
            parts = [f"{len(self.skipped[r])} {r}" for r in REASONS if self.skipped.get(r)]
            text += f" ({', '.join(parts)})"
        return text

    # -- decoding + cache -----------------------------------------------------------------------------------

    def _cache_path(self, kind: str, source: str, settings: Dict[str, Any]) -> Optional[str]:
        if self.cache_dir is None:
            return None
        key = _digest(dict(kind=kind, version=_CACHE_VERSION, file=_file_key(source), settings=settings))
        return os.path.join(self.cache_dir, f"{kind}-{key}.safetensors")

    @staticmethod
    def _cache_load(path: Optional[str], name: str) -> Optional[np.ndarray]:
        if path is None or not os.path.isfile(path):
            return None
        from safetensors.numpy import load_file

        try:
            return load_file(path)[name]
        except Exception as err:  # a damaged entry is recomputed and overwritten
            logger.warning("AVClipDataset: ignoring unreadable cache entry %s (%s)", path, err)
            return None

    @staticmethod
    def _cache_store(path: Optional[str], name: str, array: np.ndarray, source: str) -> None:
        if path is None:
            return
        from safetensors.numpy import save_file

        try:
            _atomic_write(path, lambda tmp: save_file({name: np.ascontiguousarray(array)}, tmp, metadata={"source": source}))
        except OSError as err:  # a full or read-only cache must not stop training
            logger.warning("AVClipDataset: could not write cache entry %s (%s)", path, err)

    def _full_video(self, path: str) -> np.ndarray:
        cfg = self.config
        # `time`: entries made by av-link 0.1's nearest-frame conversion must not be reused.
        cache_path = self._cache_path("video", path, dict(fps=float(cfg.fps), height=cfg.height, width=cfg.width,
                                                          time="exposure box filter"))
        frames = self._cache_load(cache_path, "frames")
        if frames is None:
            raw, fps = read_video(path)
            frames = resample_video_frames(raw, fps, cfg.fps, cfg.height, cfg.width)
            self._cache_store(cache_path, "frames", frames, path)
        return frames

    def _full_audio(self, path: str) -> np.ndarray:
        sr = self.config.sample_rate
        cache_path = self._cache_path("audio", path, dict(sample_rate=int(sr), mix="mean"))
        wave = self._cache_load(cache_path, "waveform")
        if wave is None:
            waveform, file_sr = read_audio(path)
            # the pipelines' prepare_audio order: mix to mono, then resample
            wave = resample_audio(waveform.mean(axis=0), int(file_sr), int(sr)).astype(np.float32, copy=False)
            self._cache_store(cache_path, "waveform", wave, path)
        return wave

    def _load_full(self, index: int) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], int]:
        """-> (full video uint8 at model fps/res, full mono waveform at model rate, last valid start frame)."""
        clip = self.clips[index]
        video = self._full_video(clip.video_path) if self.needs_video else None
        wave = self._full_audio(clip.audio_path) if self.needs_audio else None
        max_start = self._max_start(video, wave)
        if max_start < 0:
            have = []
            if video is not None:
                have.append(f"{video.shape[0]} video frames")
            if wave is not None:
                have.append(f"{wave.shape[0]} samples")
            raise ClipLoadError(
                f"{clip.video_path or clip.audio_path}: decoded clip is too short ({', '.join(have)}) for a "
                f"{self.num_frames}-frame / {self.num_samples}-sample window"
            )
        return video, wave, max_start

    def _audio_offset(self, frame: int) -> int:
        return int(round(frame * self.config.sample_rate / self.config.fps))

    def _max_start(self, video: Optional[np.ndarray], wave: Optional[np.ndarray]) -> int:
        """Largest start frame k whose window fits both streams (audio may fall short by length_tolerance)."""
        cfg = self.config
        max_k = video.shape[0] - self.num_frames if video is not None else None
        if wave is not None:
            limit = wave.shape[0] + int(round(cfg.length_tolerance * cfg.sample_rate))
            # audio only: still start on the video frame grid, so crops match an audio+video run
            bound = int(math.floor((limit - self.num_samples) * cfg.fps / cfg.sample_rate)) + 1
            max_k = bound if max_k is None else min(max_k, bound)
            while max_k >= 0 and self._audio_offset(max_k) + self.num_samples > limit:
                max_k -= 1
        return max_k

    # -- items ----------------------------------------------------------------------------------------------

    def set_epoch(self, epoch: int) -> None:
        """Select the crops of `epoch` (call before each epoch's DataLoader iteration; see the module notes)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.clips)

    def _crop_start_frame(self, index: int, max_start: int, epoch: Optional[int] = None) -> int:
        """The window's first model frame for clip `index` with starts `0..max_start` allowed."""
        if not self.config.random_crop or max_start <= 0:
            return 0
        epoch = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng([int(self.config.seed) % (1 << 64), epoch % (1 << 64), int(index)])
        return int(rng.integers(0, max_start + 1))

    def __getitem__(self, index: int) -> Dict[str, Any]:
        return self.get_item(index)

    def get_item(self, index: int, epoch: Optional[int] = None) -> Dict[str, Any]:
        """`dataset[index]` for an explicit `epoch` (default: the one set with `set_epoch`)."""
        n = len(self.clips)
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an integer, got {type(index).__name__}")
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} clips")
        index = int(index) % n
        for attempt in range(n):
            i = (index + attempt) % n
            if i in self._failed:
                continue
            try:
                return self._make_item(i, epoch)
            except (ClipLoadError, MediaError, OSError) as err:
                if self.config.on_load_error == "raise":
                    raise
                self._failed.add(i)
                clip = self.clips[i]
                self._skip("failed at load", clip.video_path or clip.audio_path, str(err))
                logger.warning("AVClipDataset: %s; returning the next usable clip instead", err)
        raise RuntimeError(f"AVClipDataset: every clip failed to load: {self.skipped.get('failed at load')}")

    def _make_item(self, index: int, epoch: Optional[int]) -> Dict[str, Any]:
        cfg = self.config
        clip = self.clips[index]
        video, wave, max_start = self._load_full(index)
        k = self._crop_start_frame(index, max_start, epoch)
        start = k / cfg.fps
        item: Dict[str, Any] = {}
        if video is not None:
            window = torch.from_numpy(np.ascontiguousarray(video[k:k + self.num_frames]))
            # same float path as prepare_video: uint8 -> [0, 1] -> [-1, 1]
            item["video"] = (window.permute(3, 0, 1, 2).float() / 255) * 2 - 1
        if wave is not None:
            s = self._audio_offset(k)
            segment = wave[s:s + self.num_samples]
            if segment.shape[0] < self.num_samples:  # within length_tolerance (checked in _max_start)
                segment = np.pad(segment, (0, self.num_samples - segment.shape[0]))
            waveform = torch.from_numpy(np.ascontiguousarray(segment, dtype=np.float32))
            with torch.no_grad():
                item["mel"] = self.mel_frontend.normalize(self.mel_frontend(waveform)).float()
            if cfg.return_waveform:
                item["waveform"] = waveform
        item["audio_caption"] = clip.row.get("audio_caption") or ""
        item["video_caption"] = clip.row.get("video_caption") or ""
        item["index"] = index
        item["crop_start"] = float(start)
        item["crop_start_frame"] = int(k)
        for key, value in clip.row.items():
            if key in _RESERVED_KEYS:
                continue
            if key in cfg.time_keys and value is not None:
                value = self._shift_times(_as_times(value), start)
            item[key] = copy.deepcopy(value)
        return item

    def _shift_times(self, value: Any, start: float) -> Any:
        if isinstance(value, float):
            return value - start
        if isinstance(value, list) and all(isinstance(v, float) for v in value):
            end = self.config.clip_seconds
            return [t - start for t in value if 0.0 <= t - start < end]
        return value

    collate_fn = staticmethod(av_clip_collate)

    def __repr__(self) -> str:
        cfg = self.config
        return (
            f"AVClipDataset({str(self.data_dir)!r}, {len(self)} clips, modalities={cfg.modalities}, "
            f"{cfg.clip_seconds:g} s at {cfg.fps:g} fps {cfg.height}x{cfg.width} / {cfg.sample_rate} Hz, "
            f"random_crop={cfg.random_crop}, seed={cfg.seed}, epoch={self.epoch})"
        )

