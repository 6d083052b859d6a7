"""Contact-time accuracy, precision and F1 for audio-to-video, read from the object's MOTION.

SynthHits v2 has no flash at impacts (a flash is a cue the real world lacks, and a model could
score by flashing), so an impact has to be seen as the bouncing object touching the surface:
the object's bottom edge reaches the surface's top row ``top`` (see
:func:`av_link.utils.synthhits_layout.surface_rows`) at each impact and lifts well clear between
impacts, while a silent distractor stays in the upper part of the frame.

Signal (:func:`contact_signal`): the band of ``b = max(2, round(0.2 * H))`` rows just ABOVE
the surface, ``[top - b, top)``, which the distractor never enters. Each pixel's colour distance
from the background colour (default: the per-channel median of the band over all frames and
pixels, which the object covers only rarely), scaled to [0, 1] by ``255 * sqrt(3)``, is summed
per row and divided by ``min(H, W)`` (objects are sized by it); the rows are weighted by a ramp
(the row touching the surface ``1``, the highest ``1 / b``), so the signal grows as the object
comes down and peaks where it is lowest. The surface rows themselves are never read, so
brightness changes of the surface do not create contacts.

Detector (:func:`detect_contacts`): the residual ``r = s - percentile(s, 25)`` has a contact at
each local maximum (a plateau counts once: an object resting in the band for two frames near
one impact gives one contact) that

* reaches ``max(min_level, rel * max(r), k * 1.4826 * MAD(s))``: ``min_level`` rejects the
  wiggles of a static or clean clip, ``rel`` tiny bumps beside strong contacts, the MAD term
  scales with the noise of a generated clip. Thresholds are low on purpose: at low frame
  rates a frame may show the object up to half a frame of fall away from the contact, a signal
  ten times weaker than a frame caught at the contact;
* has a prominence of at least ``release`` times its height: the object must leave the band
  (the signal fall at least that far) between two contacts, so noise on one contact does not
  count twice;
* if it is in the first or last frame, reaches ``edge_rel`` times the clip's strongest other
  contact: the object there may be rising from (falling to) a contact outside the clip.

Gaming: a whole-frame flash every few frames lights the band, so each flash is a contact with
no true impact behind it: precision and F1 drop. So does an object bouncing more often than the
audio says. A static clip (even an object resting on the surface throughout) has none.

Matching: a detection in frame ``k`` is at the instant its picture shows,
``frame_time(k, fps) = (k + 0.25) / fps`` (the package's frame-time convention, that of the
pipelines' frame-rate conversion: :mod:`av_link.utils.video_ops`); it hits a true impact at ``t``
when ``|frame_time(k, fps) - t| <= tolerance`` (default ``max(0.1, 1 / fps)`` seconds, so the
frame nearest an impact is within tolerance whatever the shutter). Matching is
one-to-one and maximises the hits (Hungarian assignment, shared with
:mod:`av_link.metrics.event_time`). ``accuracy = hits / #true`` (0.0 with no true impacts),
``precision = hits / #detections`` (0.0 with none), ``f1`` their harmonic mean (0.0 when both
are 0).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from ..utils.synthhits_layout import surface_rows
from ..utils.video_ops import frame_time
from ._common import check_rate, times_array, video_frames_uint8
from .event_time import _max_matching

__all__ = ["contact_band", "contact_signal", "contact_time_metrics", "detect_contacts"]

_DIST_SCALE = 255.0 * np.sqrt(3.0)
_BAND_FRACTION = 0.2


def contact_band(height: int) -> Tuple[int, int]:
    """Rows ``[start, top)`` just above the SynthHits surface of a frame of this height."""
    top, _ = surface_rows(int(height))
    band = max(2, int(round(_BAND_FRACTION * height)))
    return max(0, top - band), top


def contact_signal(frames, rows: Optional[Tuple[int, int]] = None,
                   background: Optional[Sequence[float]] = None) -> np.ndarray:
    """Per-frame contact signal (F,), in [0, 1] (see the module docstring).

    Args:
        frames: (F, H, W, 3) uint8, or float in [0, 1].
        rows: band ``[start, stop)`` of rows to read; ``None``: :func:`contact_band`. The last
            row of the band (the one touching the surface) weighs most.
        background: background RGB (0-255); ``None``: the median colour of the band.
    """
    x = video_frames_uint8(frames)
    H = x.shape[1]
    r0, r1 = contact_band(H) if rows is None else (int(rows[0]), int(rows[1]))
    if not (0 <= r0 < r1 <= H):
        raise ValueError(f"rows must satisfy 0 <= start < stop <= height={H}, got {rows}")
    band = x[:, r0:r1].astype(np.float64)  # (F, b, W, 3)
    if band.shape[0] == 0 or band.shape[2] == 0:
        return np.zeros(band.shape[0])
    if background is None:
        bg = np.median(band.reshape(-1, 3), axis=0)
    else:
        bg = np.asarray(background, dtype=np.float64).reshape(-1)
        if bg.shape != (3,) or not np.all(np.isfinite(bg)):
            raise ValueError(f"background must be 3 finite RGB values, got {background!r}")
    dist = np.sqrt(((band - bg) ** 2).sum(-1)) / _DIST_SCALE  # (F, b, W)
    b = r1 - r0
    weights = np.arange(1, b + 1, dtype=np.float64) / b  # ramp: bottom row weighs 1
    # Objects are sized by min(H, W): normalising the row sums by it (not by W) keeps the
    # signal of one object the same in wide and square frames.
    rows_level = dist.sum(axis=2) / min(H, band.shape[2])
    return (rows_level @ weights) / weights.sum()


def detect_contacts(frames, fps: float, rows: Optional[Tuple[int, int]] = None,
                    background: Optional[Sequence[float]] = None, min_level: float = 0.003,
                    rel: float = 0.03, k: float = 5.0, release: float = 0.5,
                    edge_rel: float = 0.5) -> np.ndarray:
    """Frame indices of detected contacts (see the module docstring); a contact in frame ``k``
    is at time ``frame_time(k, fps)``."""
    check_rate(fps, "fps")
    for name, value in (("min_level", min_level), ("rel", rel), ("k", k)):
        if not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
    for name, value in (("release", release), ("edge_rel", edge_rel)):
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    s = contact_signal(frames, rows, background)
    if s.size == 0:
        return np.zeros(0, dtype=np.int64)
    from scipy.signal import find_peaks

    resid = s - np.percentile(s, 25)
    sigma = 1.4826 * np.median(np.abs(s - np.median(s)))
    thresh = max(float(min_level), rel * float(resid.max()), k * sigma)
    # Padding with the baseline lets the first / last frame be a peak; see edge_rel below.
    peaks, props = find_peaks(np.r_[0.0, resid, 0.0], height=thresh, prominence=0.0)
    peaks, heights = peaks - 1, props["peak_heights"]
    keep = props["prominences"] >= release * heights - 1e-12
    # A peak in the first or last frame may be the object just after (before) a contact
    # outside the clip: it counts only if it is as strong as the clip's other contacts.
    edge = (peaks == 0) | (peaks == s.size - 1)
    inner = heights[keep & ~edge]
    ref = inner.max() if inner.size else heights.max(initial=0.0)
    keep &= ~edge | (heights >= edge_rel * ref - 1e-12)
    return peaks[keep].astype(np.int64)


def contact_time_metrics(frames, event_times, fps: float, tolerance: Optional[float] = None,
                         **detector_kwargs) -> Dict[str, Any]:
    """Contact-time accuracy / precision / F1 of generated ``frames`` (F, H, W, 3) against the
    true impact times ``event_times`` (seconds).

    Args:
        tolerance: seconds; ``None`` means ``max(0.1, 1 / fps)``.
        detector_kwargs: forwarded to :func:`detect_contacts` (``rows``, ``background``,
            ``min_level``, ``rel``, ``k``, ``release``).

    Returns:
        dict with ``accuracy`` (recall), ``precision``, ``f1``, ``hits``, ``num_true``,
        ``num_detected``, ``detected_frames`` and ``detected_times`` (``frame_time(k, fps)``).
    """
    fps = check_rate(fps, "fps")
    tol = max(0.1, 1.0 / fps) if tolerance is None else float(tolerance)
    if not tol >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    true_times = times_array(event_times, "event_times")
    det = detect_contacts(frames, fps, **detector_kwargs)
    det_times = frame_time(det, fps)
    hits = _max_matching(true_times, det_times, tol)
    accuracy = hits / true_times.size if true_times.size else 0.0
    precision = hits / det.size if det.size else 0.0
    return dict(
        accuracy=accuracy,
        precision=precision,
        f1=2 * accuracy * precision / (accuracy + precision) if accuracy + precision > 0 else 0.0,
        hits=hits,
        num_true=int(true_times.size),
        num_detected=int(det.size),
        detected_frames=det,
        detected_times=det_times,
    )
