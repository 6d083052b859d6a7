"""Ring ripple: how rough a sound's loudest decay is, in dB.

A struck object's ring decays smoothly: its band-summed level falls along a near-straight line (in dB) with
well under a dB of frame-to-frame wobble. A generated mel whose level jitters from frame to frame is rendered
by a neural vocoder as a rough, buzzing ring, and the kind it sounds like can change (docs/synthhits.md: a
per-frame gain ripple of 2-3 dB on ground-truth mels takes the HiFi-GAN's kind accuracy from 0.975 to 0.850 /
0.825). :func:`ring_ripple_db` measures that wobble on any waveform, ground truth included, so the number is
read against the ground truth's and the vocoded ground truth's.

Method (audio made mono, resampled to 16 kHz with librosa): the power mel spectrum (32 bands, 30 Hz - 8 kHz,
512-point frames every 256 samples, 16 ms), summed over the bands, in dB. From the loudest frame, the ring runs
for at most `max_seconds`, ends before the next reference impact (`event_times`, if given) and where the level
comes within `floor_margin_db` of the clip's noise floor (its 5th-percentile frame). The ripple is the standard
deviation of that segment around a least-squares quadratic in time (a straight line under 12 frames): a smooth
decay of any rate or curvature reads near 0. Rings shorter than 8 frames (most wooden knocks) give NaN, as does
silence: they have no decay to measure.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ._common import mono_at_rate, require_librosa

__all__ = ["ring_ripple_db"]

_SR, _N_FFT, _HOP, _N_MELS, _FMIN, _FMAX = 16000, 512, 256, 32, 30.0, 8000.0
MIN_FRAMES = 8


def ring_ripple_db(waveform, sample_rate, event_times: Optional[Sequence[float]] = None, max_seconds: float = 0.5,
                   floor_margin_db: float = 10.0) -> float:
    """The loudest ring's frame-to-frame ripple in dB (NaN without a ring of at least 8 frames); see the module."""
    librosa = require_librosa()
    y = mono_at_rate(waveform, sample_rate, _SR)
    if y.size == 0 or not np.any(y):
        return float("nan")
    power = librosa.feature.melspectrogram(y=y, sr=_SR, n_fft=_N_FFT, hop_length=_HOP, n_mels=_N_MELS, fmin=_FMIN,
                                           fmax=_FMAX, power=2.0, center=True)
    level = 10 * np.log10(power.sum(axis=0) + 1e-12)
    peak = int(np.argmax(level))
    end = min(len(level), peak + int(round(max_seconds * _SR / _HOP)))
    if event_times is not None:
        later = [t for t in event_times if t * _SR / _HOP > peak + 1]
        if later:  # stop a frame before the next impact's frame
            end = min(end, int(np.floor(min(later) * _SR / _HOP)) - 1)
    segment = level[peak:max(end, peak)]
    quiet = np.nonzero(segment < np.percentile(level, 5) + floor_margin_db)[0]
    if len(quiet):
        segment = segment[:quiet[0]]
    if len(segment) < MIN_FRAMES:
        return float("nan")
    t = np.arange(len(segment), dtype=np.float64)
    trend = np.polyval(np.polyfit(t, segment, 2 if len(segment) >= 12 else 1), t)
    return float(np.std(segment - trend))
