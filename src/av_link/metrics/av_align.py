"""AV-Align (Yariv et al. 2024, TempoTokens ``av_align.py``): IoU of audio and video peaks.

Protocol, following the current reference:

* Video: grayscale frames (``cv2.COLOR_RGB2GRAY`` on our RGB frames; the reference reads BGR
  with OpenCV and uses ``COLOR_BGR2GRAY``, which is the same luminance), Farneback flow
  ``calcOpticalFlowFarneback(prev, next, None, 0.5, 3, 15, 3, 5, 1.2, 0)`` between consecutive
  frames, mean flow magnitude per pair. The trajectory has one value per frame: entry ``i``
  is the flow from frame ``i - 1`` to ``i`` and entry 0 repeats entry 1.
* Video peaks: interior strict local maxima (``m[i-1] < m[i] > m[i+1]``) whose RAW mean
  magnitude (pixels per frame, not normalised) is ``>= 0.1``, at time ``i / fps``. The
  threshold was added upstream to stop near-static clips from producing peaks; being in pixels
  it is resolution-dependent (at 32x32 a small object moving a few pixels can stay below it).
* Audio peaks: ``librosa.onset.onset_detect`` with every default (delta 0.07, hop 512) on the
  audio resampled to 22.05 kHz (what ``librosa.load`` does in the reference), as times.
* Matching: each audio peak, in time order, takes the first unused video peak with
  ``|t_a - t_v| < 1 / fps`` (one-to-one). ``IoU = hits / (#audio + #video - hits)``.

Edge cases (the reference divides by zero or indexes out of range): no peaks on either side
gives 0.0; fewer than 2 frames gives no video peaks; empty, silent or constant audio gives no
audio peaks.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ._common import check_rate, mono_waveform, require_cv2, require_librosa, \
    video_frames_uint8

__all__ = ["av_align", "av_align_iou", "audio_peaks", "optical_flow_magnitudes", "video_peaks"]

_SR = 22050


def optical_flow_magnitudes(frames) -> np.ndarray:
    """Mean Farneback flow magnitude per frame, (F,), as in the reference (see above)."""
    x = video_frames_uint8(frames)
    if x.shape[0] < 2:
        return np.zeros(x.shape[0])
    cv2 = require_cv2()
    gray = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in x]
    mags = np.empty(len(gray))
    for i in range(1, len(gray)):
        flow = cv2.calcOpticalFlowFarneback(gray[i - 1], gray[i], None, 0.5, 3, 15, 3, 5, 1.2, 0)
        mags[i] = np.sqrt(flow[..., 0] ** 2 + flow[..., 1] ** 2).mean()
    mags[0] = mags[1]
    return mags


def video_peaks(frames, fps: float, threshold: float = 0.1) -> np.ndarray:
    """Times (s) of the optical-flow peaks."""
    fps = check_rate(fps, "fps")
    m = optical_flow_magnitudes(frames)
    if m.size < 3:
        return np.zeros(0)
    mid = m[1:-1]
    idx = np.flatnonzero((m[:-2] < mid) & (mid > m[2:]) & (mid >= threshold)) + 1
    return idx / fps


def audio_peaks(waveform, sample_rate: float) -> np.ndarray:
    """Times (s) of librosa's default onsets on the audio at 22.05 kHz."""
    sr = check_rate(sample_rate, "sample_rate")
    y = mono_waveform(waveform)
    if y.size == 0 or np.ptp(y) == 0:
        return np.zeros(0)
    librosa = require_librosa()
    if sr != _SR:
        y = librosa.resample(y, orig_sr=sr, target_sr=_SR)
    env = librosa.onset.onset_strength(y=y.astype(np.float32), sr=_SR)
    frames = librosa.onset.onset_detect(onset_envelope=env, sr=_SR)
    return librosa.frames_to_time(frames, sr=_SR)


def _hits(a: np.ndarray, v: np.ndarray, fps: float) -> int:
    used = np.zeros(v.size, dtype=bool)
    hits = 0
    for t in a:
        free = np.flatnonzero(~used & (np.abs(v - t) < 1.0 / fps))
        if free.size:  # first fit, like the reference's inner loop with `break`
            used[free[0]] = True
            hits += 1
    return hits


def _peak_times(times, name: str) -> np.ndarray:
    t = np.asarray(times, dtype=np.float64)
    if t.ndim > 1:
        raise ValueError(f"{name} must be a 1-D sequence of seconds, got shape {t.shape}")
    return np.sort(t.reshape(-1))


def av_align_iou(audio_times, video_times, fps: float) -> float:
    """IoU of peak lists with the reference's one-to-one, first-fit matching."""
    fps = check_rate(fps, "fps")
    a, v = _peak_times(audio_times, "audio_times"), _peak_times(video_times, "video_times")
    hits = _hits(a, v, fps)
    union = a.size + v.size - hits
    return hits / union if union else 0.0


def av_align(frames, fps: float, waveform, sample_rate: float,
             flow_threshold: float = 0.1) -> Dict[str, Any]:
    """AV-Align of one clip. ``frames``: (F, H, W, 3) uint8 (or float in [0, 1]) RGB.

    Returns dict with ``score`` (IoU), ``hits``, ``audio_peaks`` and ``video_peaks`` (seconds).
    """
    fps = check_rate(fps, "fps")
    v = video_peaks(frames, fps, threshold=flow_threshold)
    a = audio_peaks(waveform, sample_rate)
    hits = _hits(a, v, fps)
    union = a.size + v.size - hits
    return dict(score=hits / union if union else 0.0, hits=hits, audio_peaks=a, video_peaks=v)
