"""Event-time accuracy for audio-to-video on SynthHits-style clips with known impact times.

Detector (designed with :mod:`av_link.data.synthetic`): at each impact the surface flashes in
the first frame at or after the impact, and the object never enters the surface rows. So the
per-frame signal is the mean luminance of the surface rows (the top surface row is skipped, so
a blurry object touching the surface does not count), minus a running median (robust to slow
brightness drift). A frame is an event when its residual is a local maximum (strictly above
the previous frame, at least the next; plateaus count once) and reaches
``max(min_delta, k * 1.4826 * MAD(residual))``: ``min_delta`` (luminance units, 0-255)
rejects the tiny wiggles of a static or clean clip, the MAD term scales the threshold with the
noise of a generated clip, so noise alone rarely fires while real flashes (40-100 luminance
on SynthHits) still do; spatial averaging over the region further cuts pixel noise.

Matching happens on the frame grid: a true event at ``t`` is first visible in frame
``ceil(t * fps)``; a detection in frame ``k`` hits it when ``|k - ceil(t * fps)| / fps <=
tolerance`` (default one frame). Matching is one-to-one and maximises the number of hits
(Hungarian assignment). ``accuracy = hits / #true events`` (0.0 with no true events),
``precision = hits / #detections`` (0.0 with no detections). Static or blank frames give no
detections, hence accuracy 0 and precision 0.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..utils.synthhits_layout import surface_rows
from ._common import check_rate, times_array, video_frames_uint8

__all__ = ["detect_visual_events", "event_time_accuracy", "visual_event_signal"]

_LUMA = np.array([0.299, 0.587, 0.114])


def _default_rows(height: int) -> Tuple[int, int]:
    top, bottom = surface_rows(height)
    return min(top + 1, bottom - 1), bottom


def visual_event_signal(frames, rows: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Mean luminance (0-255) of rows ``[rows[0], rows[1])`` per frame, (F,). ``rows=None``:
    the SynthHits surface rows below the contact row."""
    x = video_frames_uint8(frames)
    r0, r1 = _default_rows(x.shape[1]) if rows is None else rows
    if not (0 <= r0 < r1 <= x.shape[1]):
        raise ValueError(f"rows must satisfy 0 <= start < stop <= height={x.shape[1]}, got {rows}")
    return (x[:, r0:r1].astype(np.float64) @ _LUMA).mean(axis=(1, 2))


def detect_visual_events(frames, fps: float, rows: Optional[Tuple[int, int]] = None,
                         min_delta: float = 12.0, k: float = 4.0,
                         baseline_seconds: float = 2.0) -> np.ndarray:
    """Frame indices of detected impact flashes (see the module docstring); times are
    ``indices / fps``."""
    fps = check_rate(fps, "fps")
    s = visual_event_signal(frames, rows)
    if s.size == 0:
        return np.zeros(0, dtype=np.int64)
    from scipy.ndimage import median_filter

    size = max(3, int(round(baseline_seconds * fps)) | 1)  # odd window
    resid = s - median_filter(s, size=size, mode="mirror")
    sigma = 1.4826 * np.median(np.abs(resid - np.median(resid)))
    thresh = max(float(min_delta), k * sigma)
    padded = np.r_[-np.inf, resid, -np.inf]
    peak = (resid > padded[:-2]) & (resid >= padded[2:]) & (resid >= thresh)
    return np.flatnonzero(peak)


def _max_matching(true_frames: np.ndarray, det_frames: np.ndarray, tol: float) -> int:
    if true_frames.size == 0 or det_frames.size == 0:
        return 0
    from scipy.optimize import linear_sum_assignment

    dist = np.abs(true_frames[:, None] - det_frames[None, :]).astype(np.float64)
    ok = dist <= tol + 1e-9
    # Forbidden pairs cost more than any full set of allowed ones: the optimum uses as few of
    # them as possible, i.e. has the most hits, then the smallest total offset.
    cost = np.where(ok, dist, dist.sum() + 1.0 + ok.size * (tol + 1.0))
    r, c = linear_sum_assignment(cost)
    return int(ok[r, c].sum())


def event_time_accuracy(frames, event_times, fps: float, tolerance: Optional[float] = None,
                        **detector_kwargs) -> Dict[str, Any]:
    """Event-time accuracy of generated ``frames`` (F, H, W, 3) against true ``event_times``.

    Args:
        tolerance: seconds; ``None`` means one frame (``1 / fps``).
        detector_kwargs: forwarded to :func:`detect_visual_events` (``rows``, ``min_delta``,
            ``k``, ``baseline_seconds``).

    Returns:
        dict with ``accuracy``, ``precision``, ``hits``, ``num_true``, ``num_detected``,
        ``detected_frames`` and ``detected_times`` (seconds).
    """
    fps = check_rate(fps, "fps")
    tol = 1.0 / fps if tolerance is None else float(tolerance)
    if not tol >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    true_frames = np.ceil(times_array(event_times, "event_times") * fps - 1e-9).astype(np.int64)
    det = detect_visual_events(frames, fps, **detector_kwargs)
    hits = _max_matching(true_frames, det, tol * fps)
    return dict(
        accuracy=hits / true_frames.size if true_frames.size else 0.0,
        precision=hits / det.size if det.size else 0.0,
        hits=hits,
        num_true=int(true_frames.size),
        num_detected=int(det.size),
        detected_frames=det,
        detected_times=det / fps,
    )
