"""ring_ripple_db: near 0 for a smooth decay of any rate, the ripple's size for a rippled one, NaN without a ring."""

import math

import numpy as np
import pytest

from av_link.evaluation import summarize
from av_link.metrics import ring_ripple_db

SR = 16000


def ring(seconds=1.0, start=0.1, decay_db_per_s=20.0, freq=880.0, ripple_db=0.0, seed=0):
    """A struck tone from `start`: exponential decay, optionally with a random gain per 16 ms step (std `ripple_db`)."""
    t = np.arange(int(seconds * SR)) / SR
    after = np.clip(t - start, 0, None)
    envelope = np.where(t >= start, 10 ** (-decay_db_per_s * after / 20), 0.0)
    gains_db = np.random.default_rng(seed).normal(0, ripple_db, size=len(t) // 256 + 1)
    gain = np.repeat(10 ** (gains_db / 20), 256)[:len(t)]
    return (0.5 * envelope * gain * np.sin(2 * math.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("decay", [5.0, 20.0, 60.0])
def test_a_smooth_decay_reads_near_zero_at_any_rate(decay):
    assert ring_ripple_db(ring(decay_db_per_s=decay), SR) < 0.2


def test_a_rippled_decay_reads_its_ripple_at_any_input_rate():
    smooth = ring_ripple_db(ring(), SR)
    rough = ring_ripple_db(ring(ripple_db=3.0), SR)
    assert rough > 1.5 > 10 * smooth
    import librosa

    resampled = librosa.resample(ring(ripple_db=3.0), orig_sr=SR, target_sr=22050)
    assert ring_ripple_db(resampled, 22050) == pytest.approx(rough, rel=0.2)


def test_no_ring_gives_nan_and_the_next_impact_ends_the_ring():
    assert math.isnan(ring_ripple_db(np.zeros(SR, dtype=np.float32), SR))
    assert math.isnan(ring_ripple_db(ring(decay_db_per_s=2000.0), SR))  # a knock: gone within a few frames
    two = ring(start=0.1) + 2 * ring(start=0.3, seed=1)  # the second, louder impact 0.2 s later
    # a softer second impact of another pitch 0.2 s later: the loudest ring is the first one
    first_only = ring(start=0.1) + 0.7 * ring(start=0.3, freq=1320.0, seed=1)
    assert ring_ripple_db(two, SR, event_times=[0.1, 0.3]) < 0.3  # measured from the louder (second) impact on
    assert ring_ripple_db(first_only, SR) > 0.5  # without the times, the window runs into the second impact
    assert ring_ripple_db(first_only, SR, event_times=[0.1, 0.3]) < 0.3
    with pytest.raises(ValueError, match="sample_rate must be a positive number"):
        ring_ripple_db(ring(), 0)


def test_summaries_average_the_ripple_over_the_clips_that_have_a_ring():
    rows = [{"fps": 8.0, "V2A": {"onset_acc": 0.0}}, {"fps": 8.0, "V2A": {"onset_acc": 1.0, "ring_ripple_db": 2.0}},
            {"fps": 8.0, "V2A": {"onset_acc": 1.0, "ring_ripple_db": 4.0}}]  # the first clip has no ring
    summary = summarize(rows)["V2A"]
    assert summary == {"onset_acc": pytest.approx(2 / 3), "ring_ripple_db": pytest.approx(3.0), "clips": 3}
    assert "ring_ripple_db" not in summarize(rows[:1])["V2A"]
