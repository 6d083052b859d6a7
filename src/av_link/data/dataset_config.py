"""Options of :class:`~av_link.data.dataset.AVClipDataset`, checked when they are set."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

__all__ = ["AVClipDatasetConfig", "MODALITIES", "RESERVED_KEYS"]

MODALITIES = ("audio", "video")
_VERIFY_MODES = ("header", "packets", "decode")
_ON_LOAD_ERROR = ("replace", "raise")
# Item keys the dataset itself produces; metadata columns with these names are not copied into items.
RESERVED_KEYS = frozenset(
    {"video", "mel", "waveform", "audio_caption", "video_caption", "index", "crop_start", "crop_start_frame"}
)


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
        return_mel: compute ``mel`` (``False`` for backbones that take waveforms through their own VAE: no mel front
            end is built, so ``sample_rate`` must be given).
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
        repeat_fps: ``{source fps: n}`` lists each clip whose video's native rate is within 0.01 of a key ``n`` times
            (the copies after all the clips, each with its own crops), e.g. ``{8: 3}`` to oversample the rate
            whose conversion to the model's rate is hardest. ``None`` lists every clip once.
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
    return_mel: bool = True
    verify: str = "packets"
    length_tolerance: float = 0.05
    time_keys: Tuple[str, ...] = ("event_times",)
    on_load_error: str = "replace"
    num_scan_workers: Optional[int] = None
    repeat_fps: Optional[Dict[float, int]] = None

    def __post_init__(self):
        if isinstance(self.modalities, str):
            self.modalities = (self.modalities,)
        self.modalities = tuple(self.modalities)
        if isinstance(self.time_keys, str):
            self.time_keys = (self.time_keys,)
        self.time_keys = tuple(self.time_keys)
        if not self.modalities or any(m not in MODALITIES for m in self.modalities):
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {self.modalities}")
        if len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"modalities has duplicates: {self.modalities}")
        for name in ("height", "width", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.height < 1 or self.width < 1:
            raise ValueError(f"height and width must be positive, got {self.height}x{self.width}")
        if not self.return_mel and self.sample_rate is None:
            raise ValueError("return_mel=False needs sample_rate: without a mel front end nothing else gives the audio rate")
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
        if self.repeat_fps is not None:
            if not isinstance(self.repeat_fps, dict) or not all(
                    isinstance(k, (int, float)) and k > 0 and isinstance(v, int) and not isinstance(v, bool) and v >= 1
                    for k, v in self.repeat_fps.items()):
                raise ValueError(f"repeat_fps must map source frame rates (> 0) to whole repeat counts (>= 1), got {self.repeat_fps!r}")
            self.repeat_fps = {float(k): int(v) for k, v in self.repeat_fps.items()}

