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

import copy
import dataclasses
import logging
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..utils.media_io import MediaError
from ..utils.media_stream import decode_audio, decode_video
from ..utils.video_ops import resample_video_frames, to_stored_frames
from .cache import entry_path, load_array, store_array
from .dataset_config import RESERVED_KEYS, AVClipDatasetConfig
from .metadata import as_times
from .probe import probe_media
from .scan import REASONS, Clip, ClipLoadError, ClipScanMixin  # noqa: F401 (REASONS: re-exported)

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


class AVClipDataset(ClipScanMixin, torch.utils.data.Dataset):
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
      ``mel`` only with ``return_mel`` (the default);
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

        self.mel_frontend = self._setup_frontend(mel_frontend, config) if config.return_mel else None
        if config.sample_rate is None:
            config = dataclasses.replace(config, sample_rate=int(self.mel_frontend.config.sample_rate))
        self.config = config
        self.epoch = 0

        self.num_frames = int(round(config.clip_seconds * config.fps))
        self.num_samples = int(round(config.clip_seconds * config.sample_rate))
        self.num_mel_frames = int(self.mel_frontend.num_frames(self.num_samples)) if config.return_mel else None
        if self.needs_audio and config.return_mel and self.num_samples < self.mel_frontend.min_num_samples:
            raise ValueError(f"clip_seconds={config.clip_seconds} gives {self.num_samples} samples, too few for a mel frame")

        self.cache_dir: Optional[str] = None
        if config.cache_dir is not None:
            self.cache_dir = os.fspath(config.cache_dir)
            os.makedirs(self.cache_dir, exist_ok=True)

        self.skipped: Dict[str, List[str]] = {}
        self.skip_details: Dict[str, str] = {}
        self.clips: List[Clip] = []
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

    # -- decoding (cached) ----------------------------------------------------------------------------------

    def _full_video(self, path: str) -> np.ndarray:
        cfg = self.config
        # `time`: entries made by av-link 0.1's nearest-frame conversion must not be reused.
        cache_path = entry_path(self.cache_dir, "video", path, dict(fps=float(cfg.fps), height=cfg.height, width=cfg.width,
                                                          time="exposure box filter"))
        frames = load_array(cache_path, "frames")
        if frames is None:
            # decoded as a stream: the pipelines' conversion (resample_video_frames) without holding the clip
            video, _ = decode_video(path, cfg.fps, cfg.height, cfg.width)
            frames = to_stored_frames(video)
            store_array(cache_path, "frames", frames, path)
        return frames

    def _full_audio(self, path: str) -> np.ndarray:
        sr = self.config.sample_rate
        cache_path = entry_path(self.cache_dir, "audio", path, dict(sample_rate=int(sr), mix="mean"))
        wave = load_array(cache_path, "waveform")
        if wave is None:
            # the pipelines' prepare_audio order (mix to mono, then resample), as a stream
            wave, _ = decode_audio(path, int(sr))
            store_array(cache_path, "waveform", wave, path)
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
            if cfg.return_mel:
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
            if key in RESERVED_KEYS:
                continue
            if key in cfg.time_keys and value is not None:
                value = self._shift_times(as_times(value), start)
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
