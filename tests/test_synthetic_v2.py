"""SynthHits v2: impacts visible only through the motion, exact times at every native rate, silent distractors."""

import dataclasses
import json

import numpy as np
import pytest

from av_link.cli import main
from av_link.data.synthetic import surface_rows
from av_link.data.synthetic_v2 import (
    SYNTHHITS_V2_FPS,
    SynthHitsV2Config,
    generate_clip_v2,
    make_synthhits_v2_dataset,
)
from av_link.metrics import contact_time_metrics, onset_metrics
from av_link.metrics.contact import contact_band
from av_link.utils.media_io import read_audio, read_video

KINDS = ("metal", "wood", "glass", "drum")


@pytest.mark.parametrize("kind", KINDS)
def test_no_flash_the_surface_never_changes(kind):
    # Nothing but the motion marks an impact: every surface pixel keeps its value in every frame, even with
    # full motion blur and at a contact (the object rests on the surface, it never enters it).
    for fps, shutter in ((8.0, 0.0), (30.0, 1.0), (24000 / 1001, 0.5)):
        clip = generate_clip_v2(SynthHitsV2Config(), 5, kind=kind, fps=fps, shutter=shutter)
        top, _ = surface_rows(clip["frames"].shape[1])
        surface = clip["frames"][:, top:]
        assert (surface == surface[:1]).all()


def _lowest_times(clip, config):
    """Times of the frames where the object's reach is lowest, from a dense render (1 ms frames)."""
    dense = generate_clip_v2(config, 11, kind=clip["kind"], fps=1000.0, shutter=0.0, distractor=False,
                             duration=clip["duration"])
    lo, top = contact_band(dense["frames"].shape[1])
    # Coverage of the row touching the surface: maximal exactly when the object sits on the surface.
    row = (dense["frames"][:, top - 1].astype(float) - dense["frames"][0, top - 1, :1].astype(float)).__abs__().sum((1, 2))
    return dense, row


def test_contacts_happen_exactly_at_the_event_times():
    config = SynthHitsV2Config(width=16, height=16, duration_range=(2.0, 2.5))
    clip = generate_clip_v2(config, 11, kind="metal", fps=1000.0, shutter=0.0, distractor=False)
    dense, row = _lowest_times(clip, config)
    for t in clip["event_times"]:
        window = np.arange(int((t - 0.05) * 1000), int((t + 0.05) * 1000))
        peak = window[np.argmax(row[window])]
        assert abs(peak / 1000 - t) <= 0.0015  # the object is lowest within a millisecond of the impact
    # ... and the sound starts on the sample at (or just after) each impact, silent before the first.
    sr = config.sample_rate
    first = int(np.ceil(clip["event_times"][0] * sr - 1e-9))
    assert np.all(clip["audio"][:first] == 0) and clip["audio"][first:first + 8].any()


@pytest.mark.parametrize("fps", SYNTHHITS_V2_FPS)
def test_ground_truth_scores_perfectly_at_every_native_rate(fps):
    # The motion-based contact detector and the onset metric recover the exact event times from the ground
    # truth at every source rate, with and without blur and distractors.
    config = SynthHitsV2Config()
    for seed in range(4):
        clip = generate_clip_v2(config, 100 + seed, fps=fps)
        assert clip["frames"].shape[0] == round(clip["duration"] * fps) and clip["fps"] == fps
        video = contact_time_metrics(clip["frames"], clip["event_times"], fps)
        assert video["accuracy"] == 1.0 and video["precision"] == 1.0, (seed, clip["shutter"], video["detected_times"])
        audio = onset_metrics(clip["audio"], config.sample_rate, reference_times=clip["event_times"])
        assert audio["acc"] == 1.0 and audio["precision"] == 1.0


def test_distractor_is_silent_and_stays_off_the_surface():
    config = SynthHitsV2Config()
    with_d = generate_clip_v2(config, 7, fps=15.0, distractor=True)
    without = generate_clip_v2(config, 7, fps=15.0, distractor=False)
    assert np.array_equal(with_d["audio"], without["audio"])  # sound goes with contacts only
    assert with_d["event_times"] == without["event_times"]
    differs = np.argwhere((with_d["frames"] != without["frames"]).any(-1))
    assert differs.size  # the distractor is there and moves ...
    assert len({tuple(p) for p in np.argwhere((np.diff(with_d["frames"].astype(int), axis=0) != 0).any(-1))[:, 1:]}) > 0
    lo, _ = contact_band(config.height)
    assert differs[:, 1].max() < lo  # ... but never enters the rows above the surface


def test_kinds_differ_in_look():
    colours = {}
    for kind in KINDS:
        clip = generate_clip_v2(SynthHitsV2Config(), 1, kind=kind, fps=8.0, distractor=False)
        top, _ = surface_rows(32)
        colours[kind] = (clip["frames"][0, top:].reshape(-1, 3).mean(0), clip["frames"][:, :top].reshape(-1, 3).max(0))
    for a in KINDS:
        for b in KINDS:
            if a < b:  # the surface or the object colour tells any two kinds apart
                assert max(np.abs(colours[a][0] - colours[b][0]).max(), np.abs(colours[a][1] - colours[b][1]).max()) > 40


def test_splits_differ_as_documented():
    rng = np.random.default_rng(0)
    stats = {}
    for split in ("id", "ood"):
        config = SynthHitsV2Config.split(split, width=8, height=8, subframes=1)
        clips = [generate_clip_v2(config, int(s), fps=8.0) for s in rng.integers(1 << 30, size=30)]
        gaps = np.concatenate([np.diff(c["event_times"]) for c in clips])
        durations = [c["duration"] for c in clips]
        rates = [len(c["event_times"]) / c["duration"] for c in clips]
        assert gaps.min() >= config.min_gap - 1e-9 and min(durations) >= config.duration_range[0] - 1 / 8
        assert max(durations) <= config.duration_range[1] + 1 / 8 <= 10.125
        stats[split] = (gaps.min(), np.mean(durations), np.mean(rates))
    assert stats["ood"][0] < 0.35 <= stats["id"][0]  # closer spacing than training ever has
    assert stats["ood"][1] > 6.0 > stats["id"][1] and stats["ood"][2] > stats["id"][2] + 0.5
    with pytest.raises(ValueError, match="unknown SynthHits v2 split"):
        SynthHitsV2Config.split("test")


def test_same_seed_same_clip_and_bad_configs():
    a, b = generate_clip_v2(None, 42), generate_clip_v2(None, 42)
    assert np.array_equal(a["frames"], b["frames"]) and np.array_equal(a["audio"], b["audio"])
    # Fixing one choice leaves the others' draws unchanged.
    c = generate_clip_v2(None, 42, fps=a["fps"] if a["fps"] != 30.0 else 8.0)
    assert c["kind"] == a["kind"] and c["shutter"] == a["shutter"]
    for bad, match in ((dict(width=4), "width and height"), (dict(shutter_range=(0.0, 2.0)), "at most 1"),
                       (dict(kinds=("plastic",)), "kinds"), (dict(fps_choices=()), "fps_choices")):
        with pytest.raises(ValueError, match=match):
            SynthHitsV2Config(**bad)
    with pytest.raises(ValueError, match="unknown kind"):
        generate_clip_v2(None, 0, kind="plastic")


def test_dataset_files_keep_exact_rates_times_and_pixels(tmp_path):
    config = SynthHitsV2Config(fps_choices=(24000 / 1001, 12.0), duration_range=(2.0, 3.0))
    out = make_synthhits_v2_dataset(tmp_path / "d", 3, config=config, seed=5, progress=False)
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert [r["fps"] for r in rows] == [24000 / 1001, 12.0, 24000 / 1001] and all(r["version"] == 2 for r in rows)
    for row in rows:
        frames, fps = read_video(str(out / row["file_name"]))
        assert fps == row["fps"] and len(frames) == row["num_frames"]  # NTSC rates come back exact
        audio, sr = read_audio(str(out / row["audio_file"]))
        assert sr == 16000 and audio.shape[-1] == row["num_samples"]
        clip = generate_clip_v2(config, row["seed"], kind=row["kind"], fps=row["fps"])
        assert clip["event_times"] == row["event_times"]
        assert np.abs(frames.astype(int) - clip["frames"]).max() <= 2  # lossless 4:4:4 up to colour rounding


def test_make_synthetic_command_writes_v2_by_default_and_v1_on_request(tmp_path, capsys):
    assert main(["make-synthetic", "--out", str(tmp_path / "v2"), "--num-clips", "2", "--split", "ood", "--quiet"]) == 0
    row = json.loads((tmp_path / "v2" / "metadata.jsonl").read_text().splitlines()[0])
    assert row["split"] == "ood" and row["duration"] >= 7.0
    assert main(["make-synthetic", "--out", str(tmp_path / "v1"), "--num-clips", "1", "--version", "1", "--quiet"]) == 0
    assert json.loads((tmp_path / "v1" / "metadata.jsonl").read_text())["fps"] == 8.0
    assert main(["make-synthetic", "--out", str(tmp_path / "x"), "--num-clips", "1", "--duration", "3", "--quiet"]) == 1
    assert "--duration is for --version 1" in capsys.readouterr().err
    assert row["impact_tail_seconds"] is None  # metal rings out
    assert main(["make-synthetic", "--out", str(tmp_path / "cut"), "--num-clips", "1", "--impact-tail-seconds", "1.5",
                 "--quiet"]) == 0  # remakes the data from before
    assert json.loads((tmp_path / "cut" / "metadata.jsonl").read_text())["impact_tail_seconds"] == 1.5
    assert main(["make-synthetic", "--out", str(tmp_path / "y"), "--num-clips", "1", "--version", "1",
                 "--impact-tail-seconds", "1.5", "--quiet"]) == 1
    assert "--impact-tail-seconds is for --version 2" in capsys.readouterr().err


def test_metal_rings_out_instead_of_being_cut_off():
    """v2 renders each impact until it has decayed by 60 dB: metal's ring fades smoothly past 1.5 s (where v1, and v2
    data made before, cut it off at about -18 dB); the other kinds, inside 1.5 s, are unchanged."""
    config = SynthHitsV2Config(duration_range=(5.0, 5.0), events_per_second=(0.0, 0.0), fps_choices=(12.0,))
    cut = dataclasses.replace(config, impact_tail_seconds=1.5)
    sr = config.sample_rate
    rms = lambda a, t: float(np.sqrt(np.mean(a[int(t * sr): int((t + 0.02) * sr)] ** 2)))
    checked = 0
    for seed in range(20):
        clip, old = generate_clip_v2(config, seed, kind="metal"), generate_clip_v2(cut, seed, kind="metal")
        (te,) = clip["event_times"]  # one impact (at least one is drawn; the rate allows no more)
        assert old["event_times"] == [te]
        if te + 1.6 > 5.0:
            continue
        checked += 1
        before, after = rms(clip["audio"], te + 1.48), rms(clip["audio"], te + 1.5)  # 20 ms each side of te + 1.5 s
        assert 20 * np.log10(before / after) < 1.0  # a smooth decay (a few dB/s) ...
        assert 20 * np.log10(after / rms(clip["audio"], te)) > -30  # ... of a ring still well above silence
        assert rms(old["audio"], te + 1.501) == 0.0  # the cut one stops dead
    assert checked >= 5
    for kind in ("wood", "glass", "drum"):
        assert np.array_equal(generate_clip_v2(config, 0, kind=kind)["audio"], generate_clip_v2(cut, 0, kind=kind)["audio"])
    with pytest.raises(ValueError, match="impact_tail_seconds must be positive"):
        SynthHitsV2Config(impact_tail_seconds=0.0)
