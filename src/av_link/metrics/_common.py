"""Input checks and lazy optional imports shared by the metrics."""

from __future__ import annotations

import numpy as np

_EVAL_HINT = "pip install av-link[eval]"


def require_librosa():
    try:
        import librosa
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(f"this metric needs librosa: {_EVAL_HINT}") from err
    return librosa


def require_cv2():
    try:
        import cv2
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"this metric needs OpenCV (opencv-python-headless): {_EVAL_HINT}") from err
    return cv2


def to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensors, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def mono_waveform(waveform, name: str = "waveform") -> np.ndarray:
    """(N,), (C, N) or (N, C) with C <= 8 channels -> float64 (N,). Integer PCM is scaled
    to [-1, 1]."""
    y = to_numpy(waveform)
    if y.dtype.kind in "iu":
        y = y.astype(np.float64) / float(np.iinfo(y.dtype).max)
    elif y.dtype.kind not in "f":
        raise ValueError(f"{name} must be a real-valued array, got dtype {y.dtype}")
    y = y.astype(np.float64, copy=False)
    if y.ndim == 2:
        if y.shape[0] <= 8 and y.shape[0] <= y.shape[1]:
            y = y.mean(axis=0)
        elif y.shape[1] <= 8:
            y = y.mean(axis=1)
        else:
            raise ValueError(f"{name} must be (N,), (C, N) or (N, C) with C <= 8, got {y.shape}")
    elif y.ndim != 1:
        raise ValueError(f"{name} must be (N,), (C, N) or (N, C), got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name} contains NaN or inf")
    return y


def check_rate(value, name: str) -> float:
    if isinstance(value, bool) or not np.isscalar(value) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def video_frames_uint8(frames, name: str = "frames") -> np.ndarray:
    """(F, H, W, 3) uint8, or float in [0, 1] (scaled by 255) -> uint8 (F, H, W, 3)."""
    x = to_numpy(frames)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (F, H, W, 3), got {x.shape}")
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind == "f":
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} contains NaN or inf")
        return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)
    if x.dtype.kind in "iu":
        return np.clip(x, 0, 255).astype(np.uint8)
    raise ValueError(f"{name} must be uint8 or float in [0, 1], got dtype {x.dtype}")


def times_array(times, name: str) -> np.ndarray:
    """1-D sequence of seconds -> sorted float64 array."""
    t = to_numpy(times).astype(np.float64)
    if t.ndim > 1:
        raise ValueError(f"{name} must be a 1-D sequence of times in seconds, got shape {t.shape}")
    t = t.reshape(-1)
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{name} contains NaN or inf")
    return np.sort(t)


def mono_at_rate(waveform, sample_rate, target_rate: int) -> np.ndarray:
    """`waveform` checked, made mono (:func:`mono_waveform`) and resampled with librosa from `sample_rate` (checked)
    to the metric's own `target_rate`."""
    rate = check_rate(sample_rate, "sample_rate")
    y = mono_waveform(waveform)
    if y.size and rate != target_rate:
        y = require_librosa().resample(y, orig_sr=rate, target_sr=target_rate)
    return y
