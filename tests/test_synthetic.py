import json
import math

import imageio.v2 as imageio
import numpy as np
import pytest
from scipy.io import wavfile

from av_link.data.synthetic import (
    SYNTHHITS_KINDS,
    SynthHitsConfig,
    generate_clip,
    make_synthetic_dataset,
    surface_rows,
)

CFG = SynthHitsConfig()
BACKGROUND = np.array([18, 18, 28], dtype=np.float64)


def _surface_luma(frames):
    top, bottom = surface_rows(frames.shape[1])
    return frames[:, top + 1:bottom].astype(np.float64).mean(axis=(1, 2, 3))


def _object_row(frames):
    """Alpha-weighted centroid row of the object (everything above the surface that is not
    background)."""
    top, _ = surface_rows(frames.shape[1])
    w = np.linalg.norm(frames[:, :top].astype(np.float64) - BACKGROUND, axis=-1)
    rows = np.arange(top)[None, :, None] + 0.5
    return (w * rows).sum(axis=(1, 2)) / w.sum(axis=(1, 2))


def test_same_seed_same_clip():
    a, b = generate_clip(CFG, 7), generate_clip(CFG, 7)
    np.testing.assert_array_equal(a["frames"], b["frames"])
    np.testing.assert_array_equal(a["audio"], b["audio"])
    assert {k: v for k, v in a.items() if k not in ("frames", "audio")} == \
        {k: v for k, v in b.items() if k not in ("frames", "audio")}
    # A Generator with the same seed and config.seed (rng=None) are the same stream.
    c = generate_clip(CFG, np.random.default_rng(7))
    np.testing.assert_array_equal(a["audio"], c["audio"])
    d = generate_clip(SynthHitsConfig(seed=7))
    np.testing.assert_array_equal(a["frames"], d["frames"])


def test_different_seeds_differ():
    a, b = generate_clip(CFG, 0, kind="metal"), generate_clip(CFG, 1, kind="metal")
    assert a["event_times"] != b["event_times"]
    assert not np.array_equal(a["frames"], b["frames"])
    assert not np.array_equal(a["audio"], b["audio"])


def test_shapes_ranges_and_event_layout():
    for seed in range(20):
        clip = generate_clip(CFG, seed)
        assert clip["frames"].shape == (16, 32, 32, 3) and clip["frames"].dtype == np.uint8
        assert clip["audio"].shape == (32000,) and clip["audio"].dtype == np.float32
        assert np.abs(clip["audio"]).max() <= 1.0
        t = np.asarray(clip["event_times"])
        assert CFG.min_events <= t.size <= CFG.max_events
        assert np.all(np.diff(t) >= CFG.min_gap - 1e-12)
        lo, hi = CFG.event_window
        assert np.all((t >= lo) & (t <= hi))
        assert clip["kind"] in SYNTHHITS_KINDS


def test_kinds_look_and_sound_different():
    cfg = SynthHitsConfig(min_events=1, max_events=1)
    centroid, tail, surface, captions = {}, {}, {}, set()
    for kind in SYNTHHITS_KINDS:
        clip = generate_clip(cfg, 3, kind=kind)
        assert clip["kind"] == kind
        captions.add((clip["audio_caption"], clip["video_caption"]))
        n0 = math.ceil(clip["event_times"][0] * cfg.sample_rate)
        seg = clip["audio"][n0:n0 + int(0.3 * cfg.sample_rate)].astype(np.float64)
        power = np.abs(np.fft.rfft(seg)) ** 2
        freqs = np.fft.rfftfreq(seg.size, 1 / cfg.sample_rate)
        centroid[kind] = (power * freqs).sum() / power.sum()
        energy = clip["audio"][n0:].astype(np.float64) ** 2
        tail[kind] = energy[int(0.15 * cfg.sample_rate):].sum() / energy.sum()
        surface[kind] = clip["frames"][0, -1].mean(axis=0)
    assert len(captions) == len(SYNTHHITS_KINDS)
    assert "metal" in generate_clip(cfg, 0, kind="metal")["video_caption"]
    assert centroid["glass"] > 2000 > centroid["metal"] > centroid["drum"]
    assert centroid["drum"] < 300 < centroid["wood"]
    assert tail["metal"] > 0.1 > tail["glass"] > tail["wood"]  # metal rings, wood is short
    kinds = list(SYNTHHITS_KINDS)
    for i, k1 in enumerate(kinds):
        for k2 in kinds[i + 1:]:
            assert np.abs(surface[k1] - surface[k2]).max() > 25, (k1, k2)


def test_audio_onsets_at_event_times():
    sr = CFG.sample_rate
    # Single impact on silence: the first non-zero sample is the first one at/after it.
    for seed in range(8):
        clip = generate_clip(SynthHitsConfig(min_events=1, max_events=1), seed)
        first = np.flatnonzero(clip["audio"])[0]
        assert first == math.ceil(clip["event_times"][0] * sr)
    # Several impacts (earlier rings may still sound): a causal 1 ms energy envelope crosses
    # halfway from its level just before to its peak just after within 3 ms of each event.
    win = sr // 1000
    for seed in range(40):
        clip = generate_clip(CFG, seed)
        env = np.convolve(clip["audio"].astype(np.float64) ** 2, np.ones(win), "full")[:32000]
        for t in clip["event_times"]:
            n = math.ceil(t * sr)
            pre = env[n - int(0.02 * sr):n - 1].max()
            post = env[n:n + int(0.02 * sr)].max()
            assert post > 2 * pre
            lo = n - int(0.02 * sr)
            cross = lo + np.flatnonzero(env[lo:] > (pre + post) / 2)[0]
            assert 0 <= cross - n <= 0.003 * sr, (seed, t, cross / sr)


def test_visual_change_at_event_frames():
    for seed in range(12):
        clip = generate_clip(CFG, seed)
        luma = _surface_luma(clip["frames"])
        flash = {math.ceil(t * CFG.fps) for t in clip["event_times"]}
        others = [k for k in range(len(luma)) if k not in flash]
        # Every flash frame is far brighter than every other frame; the rest do not change.
        assert min(luma[k] for k in flash) > max(luma[others]) + 20
        assert np.ptp(luma[others]) < 1e-9


def test_motion_is_a_parabola_between_impacts():
    # Between two impacts the object's height is a parabola with its apex midway, so the
    # impact times are recoverable from the motion with sub-frame precision.
    checked = 0
    for seed in range(40):
        clip = generate_clip(CFG, seed)
        t_ev = clip["event_times"]
        rows = _object_row(clip["frames"])
        times = np.arange(len(rows)) / CFG.fps
        for t1, t2 in zip(t_ev[:-1], t_ev[1:]):
            inside = (times > t1) & (times < t2)
            if inside.sum() < 4:
                continue
            a, b, _ = np.polyfit(times[inside], rows[inside], 2)
            assert a > 0  # rows grow downwards: the object rises then falls
            assert abs(-b / (2 * a) - (t1 + t2) / 2) < 0.02
            checked += 1
    assert checked >= 3


def test_dataset_files_and_metadata(tmp_path):
    out = make_synthetic_dataset(tmp_path / "a", 4, seed=3, progress=False)
    lines = [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(lines) == 4
    assert [m["kind"] for m in lines] == list(SYNTHHITS_KINDS)  # kinds cycle: balanced
    for m in lines:
        for key in ("file_name", "audio_caption", "video_caption", "event_times", "kind", "fps",
                    "sample_rate", "duration"):
            assert key in m
        assert m["file_name"].endswith(".mp4")
        stem = m["file_name"][:-4]
        clip = generate_clip(CFG, m["seed"], kind=m["kind"])  # metadata reproduces the clip
        assert m["event_times"] == clip["event_times"]
        assert m["audio_caption"] == clip["audio_caption"]

        reader = imageio.get_reader(str(out / m["file_name"]))
        assert reader.get_meta_data()["fps"] == pytest.approx(m["fps"])
        frames = np.stack(list(reader.iter_data()))
        reader.close()
        assert frames.shape == clip["frames"].shape
        assert frames.shape[0] / m["fps"] == pytest.approx(m["duration"])
        assert np.abs(frames.astype(int) - clip["frames"]).max() <= 3  # near-lossless

        sr, pcm = wavfile.read(str(out / f"{stem}.wav"))
        assert sr == m["sample_rate"] and pcm.shape == clip["audio"].shape
        assert pcm.shape[0] / sr == pytest.approx(m["duration"])
        np.testing.assert_allclose(pcm / 32767.0, clip["audio"], atol=1e-4)

    again = make_synthetic_dataset(tmp_path / "b", 4, seed=3, progress=False)
    assert (again / "metadata.jsonl").read_text() == (out / "metadata.jsonl").read_text()
    assert (again / "clip_000002.wav").read_bytes() == (out / "clip_000002.wav").read_bytes()
    other = make_synthetic_dataset(tmp_path / "c", 4, seed=4, progress=False)
    assert (other / "metadata.jsonl").read_text() != (out / "metadata.jsonl").read_text()


def test_progress_bar(tmp_path, capsys):
    make_synthetic_dataset(tmp_path, 1, progress=True)
    assert "SynthHits" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs", [
    dict(width=0), dict(height=-4), dict(width=16.5), dict(fps=0), dict(sample_rate=0),
    dict(duration=0), dict(duration=-1.0), dict(min_events=3, max_events=2),
    dict(min_events=-1), dict(min_gap=0), dict(edge_margin=-0.1), dict(noise_level=-1),
    dict(kinds=()), dict(kinds=("plastic",)),
    dict(duration=0.5, max_events=3),  # three impacts 0.35 s apart need more than 0.5 s
    dict(duration=0.1, fps=8),  # a single frame
])
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError):
        SynthHitsConfig(**kwargs)


def test_bad_arguments_raise(tmp_path):
    with pytest.raises(ValueError):
        generate_clip(CFG, 0, kind="plastic")
    with pytest.raises(ValueError):
        generate_clip(CFG, "seed")
    with pytest.raises(ValueError):
        make_synthetic_dataset(tmp_path, 0, progress=False)
