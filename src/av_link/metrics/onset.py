"""Onset Acc / Onset AP (plus precision and F1) for video-to-audio, after Du et al. 2023
(CondFoleyGen).

Protocol (CondFoleyGen ``predict_onset.py``, the numbers AV-Link reports on Greatest Hits):

1. Audio is made mono and resampled to 22.05 kHz (``librosa.resample``, soxr).
2. Onsets: ``librosa.onset.onset_detect(y, sr=22050, units="samples", delta=0.3)`` with
   librosa's default onset strength and peak picking, no backtracking. Ground truth is either
   given as times (e.g. SynthHits ``event_times``) or detected the same way in a reference
   waveform.
3. Confidence of a generated onset ``o``: ``max(w[o - 1102 : o + 1102])`` where
   ``w = (|y| - min|y|) / (max|y| - min|y|)`` (1102 = int(0.05 * 22050)).
4. Non-maximum suppression of the generated onsets: in order of decreasing confidence keep an
   onset and drop every other onset strictly closer than 0.05 s.
5. Matching: ground-truth onsets in time order each take, among the unused generated onsets
   strictly closer than ``tolerance`` (0.1 s), the one with the largest ``w[o]`` (amplitude at
   the onset sample itself), ties to the later onset.
6. ``acc = hits / #ground truth``. AP is computed over the list: matched generated onsets
   (label 1, their confidence), missed ground truths (label 1, score 0) and unmatched generated
   onsets (label 0, their confidence), with :func:`average_precision`, which equals
   scikit-learn's ``average_precision_score``:
   ``AP = sum_k (R_k - R_{k-1}) * P_k`` over the distinct scores in decreasing order, P_k / R_k
   the precision / recall of "score >= k-th distinct score". Note this inherits a property of
   the reference: missed ground truths sit at score 0, where everything is retrieved, so they
   lower AP only through the precision there; a clip with misses but no false onsets gets
   AP = 1 (but see "silent output" below). Read AP together with Acc and precision.
7. ``count_acc`` is 1.0 when the number of detected generated onsets (before NMS, as in the
   reference) equals the number of ground-truth onsets.

Acc is recall only: a click every 0.15 s scores acc = 1. So we also report (not in the
reference) ``precision = hits / #generated onsets after NMS`` (0.0 with none) and ``f1``, the
harmonic mean of acc and precision (0.0 when both are 0); a periodic-click output gets a low
precision and F1.

Silent output: generated audio with no onsets (silent, constant, empty, or simply no onset
detected) gets ``ap = 0.0`` whatever the ground truth, and a :class:`UserWarning`. The
reference would give such a clip AP = 1 (misses only), i.e. silence would be a perfect score.

Deviations from the reference, all in edge cases:

* The reference slices ``w[o - 1102 : o + 1102]`` with a negative start for onsets in the
  first 50 ms, which wraps around in numpy (giving an empty slice and a crash, or a wrong
  window); we clip the window to the signal.
* The reference NMS removes items from the list it iterates, so it can skip suppressing an
  onset; we suppress every neighbour, as the method describes.
* The reference stops matching when the generated onsets run out, leaving the remaining ground
  truths out of the AP list; we add them as (1, 0). With no unmatched generated onsets left
  every item is a positive, so AP is 1.0 either way: the numbers are identical.
* A sound that starts with the clip: librosa's peak picking cannot place an onset in the first
  ~30 ms, so in the reference a generated burst at 0 s is no onset at all (a false event that
  precision never sees). We put 2,048 samples (4 hops) of silence in front before detecting
  and subtract them after: the metric no longer changes when silence is prepended. A clip that
  starts silent gets the same onsets, to the sample; one that starts with a sound gets that
  onset too, and since librosa scales the onset envelope by its largest peak, a loud start can
  push weaker later peaks under ``delta``, as any loud onset elsewhere in the clip does.
* Audio is resampled with librosa instead of moviepy/ffmpeg; the clip is not cut to a fixed
  duration; ``multi_delta`` averaging is not offered (call with several ``tolerance`` values).
* Empty inputs: no ground-truth onsets gives acc = 0 and AP = 0 (the reference's acc
  convention; its AP would fail or warn), whatever was generated; ``count_acc`` is still 1.0
  when nothing was generated either. Silent or constant audio has no onsets and zero
  confidence (instead of a 0/0 normalisation), hence AP = 0 as above.
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, Optional

import numpy as np

from ._common import check_rate, mono_waveform, require_librosa, times_array

__all__ = ["ONSET_SAMPLE_RATE", "average_precision", "detect_onsets", "onset_metrics"]

ONSET_SAMPLE_RATE = 22050


def _resample(y: np.ndarray, sample_rate: float) -> np.ndarray:
    if y.size and np.ptp(y) == 0:
        # Constant audio is silence (a DC offset is inaudible); resampling it would add edge
        # ripple that the detector reads as an onset.
        return np.zeros(int(round(y.size * ONSET_SAMPLE_RATE / sample_rate)))
    if sample_rate == ONSET_SAMPLE_RATE or y.size == 0:
        return y
    librosa = require_librosa()
    return librosa.resample(y, orig_sr=sample_rate, target_sr=ONSET_SAMPLE_RATE)


# librosa's detector cannot place an onset in the first ~30 ms (its peak picking has no frames
# before them), so a sound that starts with the clip went unseen: a false event no metric counted.
# Silence in front, a whole number of its 512-sample hops long, keeps the frame grid (module docstring).
LEAD_IN_SAMPLES = 4 * 512


def _onset_samples(y22: np.ndarray, delta: float) -> np.ndarray:
    """Onset sample indices at 22.05 kHz. Empty / silent / constant audio -> no onsets."""
    if y22.size == 0 or np.ptp(y22) == 0:
        return np.zeros(0, dtype=np.int64)
    librosa = require_librosa()
    padded = np.concatenate([np.zeros(LEAD_IN_SAMPLES, dtype=np.float32), y22.astype(np.float32)])
    onsets = librosa.onset.onset_detect(
        y=padded, sr=ONSET_SAMPLE_RATE, units="samples", delta=delta, backtrack=False)
    return np.maximum(np.asarray(onsets, dtype=np.int64) - LEAD_IN_SAMPLES, 0)


def detect_onsets(waveform, sample_rate: float, delta: float = 0.3) -> np.ndarray:
    """Onset times (seconds) found by the protocol's detector (steps 1-2 above)."""
    sr = check_rate(sample_rate, "sample_rate")
    y22 = _resample(mono_waveform(waveform), sr)
    return _onset_samples(y22, delta) / ONSET_SAMPLE_RATE


def average_precision(labels, scores) -> float:
    """Average precision of binary ``labels`` ranked by ``scores`` (scikit-learn's definition,
    see the module docstring). No positives (or no items) -> 0.0."""
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape} vs {s.shape}")
    n_pos = y.sum()
    if y.size == 0 or n_pos == 0:
        return 0.0
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    tp = np.cumsum(y)
    # Evaluate only at the last item of each group of equal scores (a threshold keeps ties
    # together).
    last = np.r_[s[1:] != s[:-1], True]
    tp, retrieved = tp[last], (np.arange(y.size) + 1)[last]
    precision, recall = tp / retrieved, tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _confidences(norm: np.ndarray, onsets: np.ndarray, half: int) -> np.ndarray:
    return np.array([norm[max(o - half, 0): o + half].max() if o < norm.size else 0.0
                     for o in onsets], dtype=np.float64)


def _nms(onsets: np.ndarray, conf: np.ndarray, window: float) -> np.ndarray:
    # Stable ascending sort reversed: among equal confidences the later onset wins, as with
    # the reference's np.argsort(...)[::-1] on short arrays.
    order = np.argsort(conf, kind="stable")[::-1]
    alive = np.ones(onsets.size, dtype=bool)
    keep = []
    for i in order:
        if alive[i]:
            keep.append(onsets[i])
            alive &= np.abs(onsets - onsets[i]) >= window
    return np.sort(np.asarray(keep, dtype=np.int64))


def onset_metrics(generated, sample_rate: float, reference=None,
                  reference_times=None, reference_sample_rate: Optional[float] = None,
                  tolerance: float = 0.1, delta: float = 0.3, conf_window: float = 0.05,
                  nms_window: float = 0.05) -> Dict[str, Any]:
    """Onset Acc / AP / precision / F1 / count accuracy of one generated waveform.

    Args:
        generated: generated audio, (N,) or (C, N) / (N, C); float in [-1, 1] or int PCM.
        sample_rate: its sample rate.
        reference: reference waveform whose detected onsets are the ground truth, or
        reference_times: ground-truth onset times in seconds (exactly one of the two).
        reference_sample_rate: sample rate of ``reference`` (default ``sample_rate``).
        tolerance: matching window in seconds (strict ``<``), the reference's ``--delta``.
        delta: librosa peak-picking threshold.
        conf_window, nms_window: seconds, see the module docstring.

    Returns:
        dict with ``acc`` (recall), ``ap``, ``precision``, ``f1``, ``count_acc`` (floats),
        ``hits``, ``num_reference``, ``num_generated`` (after NMS), ``num_generated_raw``
        (before), ``generated_onsets`` and ``reference_onsets`` (seconds, NumPy arrays).
        Warns (``UserWarning``) when the generated audio has no onsets; its AP is then 0.0.
    """
    if (reference is None) == (reference_times is None):
        raise ValueError("give exactly one of `reference` (waveform) or `reference_times`")
    sr = check_rate(sample_rate, "sample_rate")
    for name, value in (("tolerance", tolerance), ("conf_window", conf_window),
                        ("nms_window", nms_window)):
        check_rate(value, name)
    if not delta >= 0:
        raise ValueError(f"delta must be >= 0, got {delta!r}")
    fs = ONSET_SAMPLE_RATE
    y = _resample(mono_waveform(generated, "generated"), sr)
    if reference is not None:
        ref_sr = sr if reference_sample_rate is None else check_rate(
            reference_sample_rate, "reference_sample_rate")
        gt = _onset_samples(_resample(mono_waveform(reference, "reference"), ref_sr), delta)
    else:
        gt = np.round(times_array(reference_times, "reference_times") * fs).astype(np.int64)

    raw = _onset_samples(y, delta)
    mag = np.abs(y)
    span = np.ptp(mag) if mag.size else 0.0
    norm = (mag - mag.min()) / span if span > 0 else np.zeros_like(mag)
    half = int(conf_window * fs)
    gen = _nms(raw, _confidences(norm, raw, half), nms_window * fs) \
        if raw.size else raw
    conf = _confidences(norm, gen, half)
    point = norm[np.minimum(gen, max(norm.size - 1, 0))] if gen.size else np.zeros(0)

    used = np.zeros(gen.size, dtype=bool)
    labels, scores, hits = [], [], 0
    for g in gt:
        cand = np.flatnonzero(~used & (np.abs(gen - g) < tolerance * fs))
        labels.append(1)
        if cand.size == 0:
            scores.append(0.0)
            continue
        best = cand[np.argsort(point[cand], kind="stable")[-1]]  # ties -> later onset
        used[best] = True
        hits += 1
        scores.append(conf[best])
    labels += [0] * int((~used).sum())
    scores += conf[~used].tolist()

    acc = hits / gt.size if gt.size else 0.0
    precision = hits / gen.size if gen.size else 0.0
    if gen.size == 0:
        what = "is empty or silent (all zero or constant)" if (y.size == 0 or np.ptp(y) == 0) \
            else "has no detected onsets"
        warnings.warn(f"onset_metrics: the generated audio {what}; its Onset AP is 0.0",
                      UserWarning, stacklevel=2)
    return dict(
        acc=acc,
        ap=average_precision(labels, scores) if gt.size and gen.size else 0.0,
        precision=precision,
        f1=2 * acc * precision / (acc + precision) if acc + precision > 0 else 0.0,
        count_acc=float(raw.size == gt.size),
        hits=hits,
        num_reference=int(gt.size),
        num_generated=int(gen.size),
        num_generated_raw=int(raw.size),
        generated_onsets=gen / fs,
        reference_onsets=gt / fs,
    )
