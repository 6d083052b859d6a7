"""Metric tests on constructed signals and real SynthHits clips.

librosa and opencv-python-headless are required (the test extra includes them): these tests
fail, not skip, when they are missing.
"""

import json
import sys

import imageio.v2 as imageio
import numpy as np
import pytest

from av_link.data.synthetic import SYNTHHITS_KINDS, SynthHitsConfig, generate_clip, \
    make_synthetic_dataset
from av_link.metrics import (
    audio_peaks,
    av_align,
    av_align_iou,
    average_precision,
    detect_onsets,
    detect_visual_events,
    event_time_accuracy,
    onset_metrics,
    video_peaks,
)

SR = 16000
CFG = SynthHitsConfig()


def clicks(times, duration=2.0, sr=SR, seed=0):
    """Decaying noise bursts starting at `times`."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(duration * sr))
    n = int(0.05 * sr)
    for t in times:
        i = int(round(t * sr))
        m = min(n, y.size - i)
        y[i:i + m] += rng.standard_normal(m) * np.exp(-np.arange(m) / (0.01 * sr))
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def jumping_square(jump_frames, num_frames=24, size=64):
    """A bright square that stays still except for a 6 px jump into each frame in
    `jump_frames`: the optical flow peaks exactly there."""
    frames = np.zeros((num_frames, size, size, 3), np.uint8)
    x = 10
    for k in range(num_frames):
        if k in jump_frames:
            x += 6 if x < size - 24 else -30
        frames[k, 20:36, x:x + 12] = 220
    return frames


# ----------------------------------------------------------------------------- onset

def test_average_precision_definition():
    assert average_precision([1, 0, 1], [0.9, 0.5, 0.0]) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert average_precision([1, 1], [0.0, 0.0]) == 1.0  # no negatives: every cut is pure
    assert average_precision([0, 0], [0.3, 0.2]) == 0.0
    assert average_precision([], []) == 0.0
    with pytest.raises(ValueError):
        average_precision([1, 0], [0.5])


def test_onset_identical_is_perfect():
    for kind in SYNTHHITS_KINDS:
        clip = generate_clip(CFG, 11, kind=kind)
        r = onset_metrics(clip["audio"], SR, reference=clip["audio"])
        assert r["num_reference"] >= 1
        assert (r["acc"], r["ap"], r["count_acc"]) == (1.0, 1.0, 1.0)


def test_onset_against_synthhits_event_times():
    for seed in range(8):
        clip = generate_clip(CFG, seed)
        r = onset_metrics(clip["audio"], SR, reference_times=clip["event_times"])
        assert r["acc"] == 1.0 and r["count_acc"] == 1.0, (seed, clip["kind"], r)
        # The detector fires at most ~2 hops (46 ms) after a true impact.
        lag = r["generated_onsets"] - np.asarray(clip["event_times"])
        assert np.all((lag > -0.005) & (lag < 0.05))


def test_onset_shift_within_and_beyond_tolerance():
    ref_times = [0.3, 0.9, 1.5]
    near = onset_metrics(clicks([t + 0.04 for t in ref_times]), SR, reference_times=ref_times)
    assert near["hits"] == 3 and near["acc"] == 1.0 and near["ap"] == 1.0
    far = onset_metrics(clicks([t + 0.25 for t in ref_times]), SR, reference_times=ref_times)
    assert far["hits"] == 0 and far["acc"] == 0.0
    assert far["num_generated"] == 3
    # Reference AP semantics: 3 misses at score 0 below 3 false onsets -> precision 1/2 at
    # full recall.
    assert far["ap"] == pytest.approx(0.5)


def test_onset_waveform_reference_at_other_rate():
    ref = clicks([0.4, 1.2], sr=22050)
    r = onset_metrics(clicks([0.42, 1.21]), SR, reference=ref, reference_sample_rate=22050)
    assert r["acc"] == 1.0 and r["num_reference"] == 2


def test_onset_empty_silent_constant():
    times = [0.5, 1.0]
    for y in (np.zeros(SR * 2, np.float32), np.full(SR * 2, 0.3), np.zeros(0)):
        assert detect_onsets(y, SR).size == 0
        with pytest.warns(UserWarning, match="silent"):
            r = onset_metrics(y, SR, reference_times=times)
        assert (r["hits"], r["acc"], r["count_acc"], r["num_generated"]) == (0, 0.0, 0.0, 0)
        # Not the reference's AP = 1 (misses alone do not lower its AP): silence scores 0.
        assert (r["ap"], r["precision"], r["f1"]) == (0.0, 0.0, 0.0)
    silent = np.zeros(SR * 2, np.float32)
    with pytest.warns(UserWarning, match="silent"):
        r = onset_metrics(silent, SR, reference=silent)
    assert (r["acc"], r["ap"], r["count_acc"]) == (0.0, 0.0, 1.0)
    r = onset_metrics(clicks([0.5]), SR, reference_times=[])
    assert (r["acc"], r["ap"], r["count_acc"]) == (0.0, 0.0, 0.0)
    # Confidence windows are clipped at the start (the reference's slice would wrap around).
    from av_link.metrics.onset import _confidences

    norm = np.array([0.9, 0.1, 0.2, 0.0, 0.0, 0.0, 0.0, 0.3])
    np.testing.assert_allclose(_confidences(norm, np.array([1, 6]), 3), [0.9, 0.3])


def test_onset_input_validation():
    y = clicks([0.5])
    with pytest.raises(ValueError):
        onset_metrics(y, SR)  # no ground truth
    with pytest.raises(ValueError):
        onset_metrics(y, SR, reference=y, reference_times=[0.5])
    with pytest.raises(ValueError):
        onset_metrics(y[None, None], SR, reference_times=[0.5])
    with pytest.raises(ValueError):
        onset_metrics(y, 0, reference_times=[0.5])
    with pytest.raises(ValueError):
        onset_metrics(y, SR, reference_times=[[0.5]])
    with pytest.raises(ValueError):
        onset_metrics(np.full(100, np.nan), SR, reference_times=[0.5])
    # Stereo in either layout is averaged to mono.
    stereo = np.stack([y, y])
    assert onset_metrics(stereo, SR, reference_times=[0.5])["acc"] == 1.0
    assert onset_metrics(stereo.T, SR, reference_times=[0.5])["acc"] == 1.0


# -------------------------------------------------------------------------- AV-Align

def test_av_align_iou_matching():
    assert av_align_iou([0.5, 1.0], [0.5, 1.0], 8) == 1.0
    assert av_align_iou([0.5, 0.52], [0.5], 8) == 0.5  # one-to-one
    assert av_align_iou([0.5], [0.5 + 1 / 8], 8) == 0.0  # strict window
    assert av_align_iou([], [], 8) == 0.0


def test_av_align_aligned_shifted_and_empty():
    fps, jumps = 8.0, [4, 11, 18]
    frames = jumping_square(jumps)
    np.testing.assert_allclose(video_peaks(frames, fps), np.array(jumps) / fps)
    times = [k / fps for k in jumps]
    dur = len(frames) / fps
    aligned = av_align(frames, fps, clicks(times, dur), SR)
    assert aligned["score"] == 1.0 and aligned["hits"] == 3
    near = av_align(frames, fps, clicks([t + 0.04 for t in times], dur), SR)
    assert near["score"] == 1.0
    far = av_align(frames, fps, clicks([t + 0.3 for t in times], dur), SR)
    assert far["hits"] == 0 and far["score"] == 0.0
    # Float frames in [0, 1] give the same answer as uint8.
    assert av_align(frames / 255.0, fps, clicks(times, dur), SR)["score"] == 1.0

    static = np.repeat(frames[:1], 24, axis=0)
    silent = np.zeros(int(dur * SR), np.float32)
    r = av_align(static, fps, silent, SR)
    assert (r["score"], r["hits"], r["video_peaks"].size, r["audio_peaks"].size) == (0, 0, 0, 0)
    assert audio_peaks(np.zeros(0), SR).size == 0
    assert video_peaks(frames[:1], fps).size == 0


def test_av_align_validation():
    frames = jumping_square([4])
    with pytest.raises(ValueError):
        av_align(frames[..., 0], 8, clicks([0.5]), SR)  # (F, H, W)
    with pytest.raises(ValueError):
        av_align(frames, 0, clicks([0.5]), SR)
    with pytest.raises(ValueError):
        av_align(frames, 8, clicks([0.5]), -1)


# ------------------------------------------------------------------------ event time

def test_event_time_on_synthhits_clips():
    for seed in range(8):
        clip = generate_clip(CFG, seed)
        r = event_time_accuracy(clip["frames"], clip["event_times"], CFG.fps)
        assert (r["accuracy"], r["precision"]) == (1.0, 1.0), (seed, clip["kind"], r)
        assert r["num_true"] == len(clip["event_times"])
        # Exact frame even with no tolerance.
        assert event_time_accuracy(clip["frames"], clip["event_times"], CFG.fps,
                                   tolerance=0.0)["accuracy"] == 1.0


def test_event_time_on_decoded_mp4(tmp_path):
    out = make_synthetic_dataset(tmp_path, 4, seed=5, progress=False)
    for line in (out / "metadata.jsonl").read_text().splitlines():
        m = json.loads(line)
        frames = np.stack(list(imageio.get_reader(str(out / m["file_name"])).iter_data()))
        r = event_time_accuracy(frames, m["event_times"], m["fps"])
        assert (r["accuracy"], r["precision"]) == (1.0, 1.0)


def test_event_time_noisy_static_and_shifted():
    rng = np.random.default_rng(0)
    for seed in range(8):
        clip = generate_clip(CFG, seed)
        noisy = np.clip(clip["frames"] + rng.normal(0, 30, clip["frames"].shape), 0, 255)
        assert event_time_accuracy(noisy.astype(np.uint8), clip["event_times"],
                                   CFG.fps)["accuracy"] == 1.0
        static = np.repeat(clip["frames"][:1], len(clip["frames"]), axis=0)
        r = event_time_accuracy(static, clip["event_times"], CFG.fps)
        assert (r["accuracy"], r["num_detected"]) == (0.0, 0)
        noisy_static = np.clip(static + rng.normal(0, 30, static.shape), 0, 255).astype(np.uint8)
        assert event_time_accuracy(noisy_static, clip["event_times"], CFG.fps)["hits"] == 0

    one = SynthHitsConfig(min_events=1, max_events=1)
    clip = generate_clip(one, 2)
    t = clip["event_times"][0]
    within = event_time_accuracy(clip["frames"], [t + 1 / one.fps], one.fps)
    beyond = event_time_accuracy(clip["frames"], [t + 2 / one.fps], one.fps)
    assert within["accuracy"] == 1.0
    assert beyond["hits"] == 0 and beyond["precision"] == 0.0
    assert event_time_accuracy(clip["frames"], [t + 2 / one.fps], one.fps,
                               tolerance=2 / one.fps)["accuracy"] == 1.0
    empty = event_time_accuracy(clip["frames"], [], one.fps)
    assert (empty["accuracy"], empty["precision"], empty["num_detected"]) == (0.0, 0.0, 1)
    assert detect_visual_events(clip["frames"][:0], one.fps).size == 0


def test_event_time_validation():
    frames = generate_clip(CFG, 0)["frames"]
    with pytest.raises(ValueError):
        event_time_accuracy(frames[..., 0], [0.5], 8)
    with pytest.raises(ValueError):
        event_time_accuracy(frames, [0.5], 8, tolerance=-1)
    with pytest.raises(ValueError):
        event_time_accuracy(frames, [0.5], 8, rows=(30, 40))
    with pytest.raises(ValueError):
        event_time_accuracy(frames, [[0.5]], 8)


# ---------------------------------------------------------------- optional imports

def test_missing_optional_dependency_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "librosa", None)
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ImportError, match=r"av-link\[eval\]"):
        detect_onsets(clicks([0.5]), SR)
    with pytest.raises(ImportError, match=r"av-link\[eval\]"):
        video_peaks(jumping_square([4]), 8)
