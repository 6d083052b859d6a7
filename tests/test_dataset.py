import json
import logging
import math
import os
import random
import shutil
import subprocess

import numpy as np
import pytest
import torch

import av_link.data.dataset as dataset_module
import av_link.data.scan as scan_module
from av_link.data import (
    AVClipDataset,
    AVClipDatasetConfig,
    ClipLoadError,
    SynthHitsConfig,
    av_clip_collate,
    generate_clip,
    make_synthetic_dataset,
    resample_video_frames,
)
from av_link.models.audio_frontend import AVLinkMelSpectrogram
from av_link.pipelines.inputs import prepare_video
from av_link.utils import media_io
from av_link.utils.media_probe import ffmpeg_exe

FPS, SIZE, SR, CLIP = 8.0, 16, 16000, 1.0
OPTS = dict(fps=FPS, height=SIZE, width=SIZE, clip_seconds=CLIP)
NUM_SYNTH = 4
GOOD = [f"clip_{i:06d}.mp4" for i in range(NUM_SYNTH)] + ["muxed.mp4"]


def _row(name, clip=None, **extra):
    row = dict(file_name=name, audio_caption="a sound", video_caption="a video", event_times=[0.5])
    if clip is not None:
        row.update(audio_caption=clip["audio_caption"], video_caption=clip["video_caption"],
                   event_times=clip["event_times"])
    row.update(extra)
    return row


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    """SynthHits clips (mp4 + wav) plus one mp4 with a muxed AAC track, and every kind of bad entry."""
    root = make_synthetic_dataset(tmp_path_factory.mktemp("messy"), NUM_SYNTH, progress=False)
    rows = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
    muxed = generate_clip(SynthHitsConfig(), 1234)
    media_io.write_video(root / "muxed.mp4", muxed["frames"], FPS, audio=muxed["audio"], sample_rate=SR)
    rows.append(_row("muxed.mp4", muxed, kind=muxed["kind"]))

    (root / "random.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    index_last = root / "index_last.mp4"  # a plain remux puts the index at the end: header probe fails
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(root / "clip_000000.mp4"), "-c", "copy", str(index_last)],
                   check=True)
    data = index_last.read_bytes()
    index_last.unlink()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    data = (root / "muxed.mp4").read_bytes()  # faststart: header intact, packets missing
    (root / "truncated_faststart.mp4").write_bytes(data[: len(data) // 2])
    media_io.write_video(root / "silent.mp4", muxed["frames"], FPS)  # no audio track, no wav
    short = generate_clip(SynthHitsConfig(duration=0.75, min_events=1, max_events=1), 5)
    media_io.write_video(root / "short.mp4", short["frames"], FPS)
    media_io.write_wav(root / "short.wav", short["audio"], SR)
    for name in ("random.mp4", "truncated.mp4", "truncated_faststart.mp4", "silent.mp4", "short.mp4", "missing.mp4"):
        rows.append(_row(name))
    lines = [json.dumps(r) for r in rows]
    lines.insert(2, "{not json")
    lines.append(json.dumps(dict(file_name="clip_000001.mp4", video_caption="no audio caption")))
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root, muxed


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    """A decode cache shared by tests that are not about caching, to keep the file fast."""
    return tmp_path_factory.mktemp("cache")


_SOURCES = {}


def _source(root, name):
    """Source frames (uint8) and audio (float32) of a good clip."""
    if (root, name) not in _SOURCES:
        frames, _ = media_io.read_video(root / name)
        wav = root / name.replace(".mp4", ".wav")
        audio, _ = media_io.read_audio(wav if wav.exists() else root / name)
        _SOURCES[root, name] = frames, audio.mean(0)
    return _SOURCES[root, name]


def test_repeat_fps_oversamples_clips_by_native_rate(messy, shared_cache):
    root, _ = messy
    base = AVClipDataset(root, **OPTS, cache_dir=shared_cache)
    assert {c.source_fps for c in base.clips} == {FPS}
    twice = AVClipDataset(root, **OPTS, cache_dir=shared_cache, repeat_fps={FPS: 2, 12.0: 5})
    assert len(twice) == 10 and [c.file_name for c in twice.clips] == GOOD * 2
    assert twice.summary.startswith("AVClipDataset: 5 clips usable (10 items with repeat_fps), skipped 8")
    # the first pass is the plain dataset (same indices, same crops); a copy draws its own crops
    assert torch.equal(twice[1]["mel"], base[1]["mel"]) and twice[6]["file_name"] == base[1]["file_name"]
    starts = lambda ds, i: [ds._crop_start_frame(i, 8, epoch) for epoch in range(6)]  # noqa: E731
    assert starts(twice, 1) == starts(base, 1) != starts(twice, 6)
    assert len(AVClipDataset(root, **OPTS, cache_dir=shared_cache, repeat_fps={12: 3})) == 5  # no clip at 12 fps
    for bad in ({8: 0}, {8: 1.5}, {-1: 2}, [8, 3]):
        with pytest.raises(ValueError, match="repeat_fps"):
            AVClipDataset(root, **OPTS, repeat_fps=bad)


def test_scan_counts_summary_and_log(messy, caplog):
    root, _ = messy
    with caplog.at_level(logging.WARNING, logger="av_link.data.dataset"):
        ds = AVClipDataset(root, **OPTS)
    assert [c.file_name for c in ds.clips] == GOOD and len(ds) == 5
    counts = {reason: len(files) for reason, files in ds.skipped.items()}
    assert counts == {"bad metadata": 2, "missing": 1, "unreadable": 3, "no audio": 1, "too short": 1}
    names = {reason: sorted(os.path.basename(f).split(":")[0] for f in files) for reason, files in ds.skipped.items()}
    assert names["unreadable"] == ["random.mp4", "truncated.mp4", "truncated_faststart.mp4"]
    assert names["no audio"] == ["silent.mp4"] and names["too short"] == ["short.mp4"]
    assert names["missing"] == ["missing.mp4"] and names["bad metadata"] == ["metadata.jsonl", "metadata.jsonl"]
    assert ds.summary == ("AVClipDataset: 5 clips usable, skipped 8 "
                          "(2 bad metadata, 1 missing, 3 unreadable, 1 no audio, 1 too short)")
    assert ds.summary in caplog.text
    assert "moov atom not found" in ds.skip_details[str(root / "truncated.mp4")]


def test_item_shapes_dtypes_ranges(messy):
    root, _ = messy
    ds = AVClipDataset(root, **OPTS)
    item = ds[0]
    frontend = ds.mel_frontend
    assert ds.num_frames == 8 and ds.num_samples == 16000 and ds.num_mel_frames == 16000 // 256
    assert item["video"].shape == (3, 8, SIZE, SIZE) and item["video"].dtype == torch.float32
    assert -1.0 <= item["video"].min() and item["video"].max() <= 1.0 and item["video"].std() > 0.1
    assert item["mel"].shape == (62, 80) and item["mel"].dtype == torch.float32
    assert torch.isfinite(item["mel"]).all()
    assert item["waveform"].shape == (16000,) and item["waveform"].dtype == torch.float32
    torch.testing.assert_close(item["mel"], frontend.normalize(frontend(item["waveform"])))
    assert item["audio_caption"] == "a metallic clang" and item["video_caption"].startswith("a red ball")
    assert item["index"] == 0 and item["crop_start"] == item["crop_start_frame"] / FPS
    assert item["kind"] == "metal" and item["file_name"] == "clip_000000.mp4"  # extra columns kept
    assert all(0 <= t < CLIP for t in item["event_times"])
    assert ds[-1]["index"] == len(ds) - 1
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_windows_are_aligned(messy, shared_cache):
    """Audio and video cover the same seconds: exact slices of the sources, and every SynthHits impact shows
    as the flash frame and as a mel onset at its crop-shifted time."""
    root, _ = messy
    ds = AVClipDataset(root, cache_dir=shared_cache, **{**OPTS, "height": 32, "width": 32})  # source size
    hop = ds.mel_frontend.config.hop_length
    checked = 0
    for epoch in range(3):
        for i, clip in enumerate(ds.clips):
            item = ds.get_item(i, epoch=epoch)
            frames, audio = _source(root, clip.file_name)
            k = item["crop_start_frame"]
            s = int(round(item["crop_start"] * SR))
            expect_video = torch.from_numpy(frames[k:k + 8]).permute(3, 0, 1, 2).float() / 255 * 2 - 1
            torch.testing.assert_close(item["video"], expect_video)
            np.testing.assert_array_equal(item["waveform"].numpy(), audio[s:s + 16000])
            full = [t - item["crop_start"] for t in ds.clips[i].row["event_times"]]
            assert item["event_times"] == pytest.approx([t for t in full if 0 <= t < CLIP])

            surface = ((item["video"][:, :, -4:] + 1) / 2).mean(dim=(0, 2, 3)).numpy()
            energy = item["mel"].mean(dim=1).numpy()
            rise = np.diff(energy, prepend=energy[0])
            for t in item["event_times"]:
                flash = math.ceil(t * FPS - 1e-9)
                if flash < 8:
                    assert surface[flash] > np.median(surface) + 0.1, (clip.file_name, t, surface)
                if 0.1 <= t <= CLIP - 0.1:
                    expected = t * SR / hop  # mel frame t spans samples [t*hop - 384, t*hop + 640)
                    lo = int(expected) - 5
                    onset = lo + int(np.argmax(rise[lo:int(expected) + 5]))
                    assert expected - 3 <= onset <= expected + 1, (clip.file_name, t, onset, expected)
                    checked += 1
    assert checked >= 10


def test_crops_deterministic_per_seed_epoch_index(messy, shared_cache):
    root, _ = messy
    a = AVClipDataset(root, seed=3, **OPTS)
    b = AVClipDataset(root, seed=3, cache_dir=shared_cache, **OPTS)
    state = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    b.set_epoch(2)
    for i in range(len(a)):
        x = a.get_item(i, epoch=2)
        torch.manual_seed(i), np.random.seed(i), random.seed(i)  # global RNG state must not matter
        y = b[i]
        assert x["crop_start_frame"] == y["crop_start_frame"]
        torch.testing.assert_close(x["video"], y["video"])
        torch.testing.assert_close(x["mel"], y["mel"])
    random.setstate(state[0]), np.random.seed(0), torch.set_rng_state(state[2])
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    starts = {e: [b.get_item(i, epoch=e)["crop_start_frame"] for i in range(len(b))] for e in range(3)}
    after = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and torch.equal(before[2], after[2])
    assert starts[0] != starts[1] != starts[2]
    assert all(0 <= k <= 8 for ks in starts.values() for k in ks)  # 2 s clips, 1 s windows, 8 fps
    other_seed = AVClipDataset(root, seed=4, cache_dir=shared_cache, **OPTS)
    assert [other_seed.get_item(i, epoch=0)["crop_start_frame"] for i in range(len(a))] != starts[0]
    fixed = AVClipDataset(root, random_crop=False, cache_dir=shared_cache, **OPTS)
    assert {fixed.get_item(i, epoch=e)["crop_start_frame"] for i in range(len(fixed)) for e in range(3)} == {0}


def test_cache_avoids_second_decode(messy, tmp_path, monkeypatch):
    root, _ = messy
    calls = {"video": 0, "audio": 0, "probe": 0}

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(dataset_module, "decode_video", counting("video", dataset_module.decode_video))
    monkeypatch.setattr(dataset_module, "decode_audio", counting("audio", dataset_module.decode_audio))
    monkeypatch.setattr(scan_module, "probe_media", counting("probe", scan_module.probe_media))  # the scan probes
    cache = tmp_path / "cache"
    plain = AVClipDataset(root, **OPTS)
    calls.update(video=0, audio=0, probe=0)
    ds = AVClipDataset(root, cache_dir=cache, **OPTS)
    probes = calls["probe"]
    assert probes > 0
    for epoch in range(2):
        ds.set_epoch(epoch)
        items = [ds[i] for i in range(len(ds))]
    assert calls["video"] == len(ds) and calls["audio"] == len(ds)  # once per clip, not per epoch
    assert sorted(p.name.split("-")[0] for p in cache.iterdir()) == ["audio"] * 5 + ["probe_cache.json"] + ["video"] * 5
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp")]

    again = AVClipDataset(root, cache_dir=cache, **OPTS)  # a resumed run: no probe, no decode
    assert calls["probe"] == probes
    again.set_epoch(1)
    resumed = [again[i] for i in range(len(again))]
    assert calls["video"] == len(ds) and calls["audio"] == len(ds)
    plain.set_epoch(1)
    for i, item in enumerate(items):
        for other in (resumed[i], plain[i]):  # cached items are the uncached ones
            assert other["crop_start_frame"] == item["crop_start_frame"]
            assert torch.equal(other["video"], item["video"]) and torch.equal(other["mel"], item["mel"])
            assert torch.equal(other["waveform"], item["waveform"])
    calls.update(video=0, audio=0)

    # a different resolution is a different cache entry, decoded once
    AVClipDataset(root, cache_dir=cache, **{**OPTS, "height": 8})[0]
    assert calls["video"] == 1 and calls["audio"] == 0


def test_mp4_with_audio_track(messy):
    root, muxed = messy
    ds = AVClipDataset(root, random_crop=False, **OPTS)
    i = [c.file_name for c in ds.clips].index("muxed.mp4")
    assert ds.clips[i].audio_path == str(root / "muxed.mp4")
    item = ds[i]
    got, reference = item["waveform"].numpy(), muxed["audio"][:16000]
    lags = np.arange(-200, 201)
    xcorr = [np.dot(got[200:-200], reference[200 + lag:16000 - 200 + lag]) for lag in lags]
    assert lags[int(np.argmax(xcorr))] == 0  # the AAC track is read without an offset
    assert np.dot(got, reference) / (np.linalg.norm(got) * np.linalg.norm(reference)) > 0.95
    assert item["event_times"] == pytest.approx([t for t in muxed["event_times"] if t < CLIP])


def test_audio_only_never_decodes_video(messy, monkeypatch, shared_cache):
    root, _ = messy

    def no_video(*args, **kwargs):
        raise AssertionError("video decoded for an audio-only dataset")

    monkeypatch.setattr(dataset_module, "decode_video", no_video)
    ds = AVClipDataset(root, modalities=("audio",), **OPTS)
    assert len(ds) == 5 and "no audio" in ds.skipped
    item = ds[1]
    assert "video" not in item and item["mel"].shape == (62, 80)
    # crops stay on the video frame grid, so they match an audio+video run
    av = AVClipDataset(root, cache_dir=shared_cache, **OPTS)
    monkeypatch.undo()
    assert [ds.get_item(i, 1)["crop_start_frame"] for i in range(5)] == [av.get_item(i, 1)["crop_start_frame"] for i in range(5)]



def test_video_only_accepts_silent_mp4(messy):
    root, _ = messy
    ds = AVClipDataset(root, modalities=("video",), **OPTS)
    assert "silent.mp4" in [c.file_name for c in ds.clips] and "no audio" not in ds.skipped
    item = ds[0]
    assert "mel" not in item and "waveform" not in item and item["video"].shape == (3, 8, SIZE, SIZE)


def test_header_only_scan_catches_truncation_at_load(messy):
    root, _ = messy
    ds = AVClipDataset(root, verify="header", random_crop=False, **OPTS)
    names = [c.file_name for c in ds.clips]
    assert "truncated_faststart.mp4" in names  # the header is intact, so a header probe passes it
    i = names.index("truncated_faststart.mp4")
    item = ds[i]  # decodes to < 1 s: logged, counted, replaced by the next clip
    assert item["index"] == (i + 1) % len(ds)
    assert ds.skipped["failed at load"] == [str(root / "truncated_faststart.mp4")]
    strict = AVClipDataset(root, verify="header", on_load_error="raise", **OPTS)
    with pytest.raises(ClipLoadError, match="too short"):
        strict[i]


def test_csv_metadata(messy, tmp_path):
    root, _ = messy
    for name in ("clip_000000", "clip_000001"):
        for ext in (".mp4", ".wav"):
            shutil.copy(root / f"{name}{ext}", tmp_path / f"{name}{ext}")
    rows = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()[:2]]
    lines = ["file_name,audio_caption,video_caption,event_times,kind"]
    for r in rows:
        lines.append(f'{r["file_name"]},"{r["audio_caption"]}","{r["video_caption"]}","{json.dumps(r["event_times"])}",{r["kind"]}')
    (tmp_path / "metadata.csv").write_text("\n".join(lines) + "\n")
    ds = AVClipDataset(tmp_path, random_crop=False, **OPTS)
    assert len(ds) == 2 and not ds.skipped
    item = ds[1]
    assert item["kind"] == "wood" and item["audio_caption"] == "a wooden knock"
    assert item["event_times"] == pytest.approx([t for t in rows[1]["event_times"] if t < CLIP])


def test_errors(messy, tmp_path):
    root, _ = messy
    with pytest.raises(FileNotFoundError, match="does not exist"):
        AVClipDataset(tmp_path / "nope", **OPTS)
    with pytest.raises(FileNotFoundError, match="no metadata.jsonl or metadata.csv"):
        AVClipDataset(tmp_path, **OPTS)
    shutil.copy(root / "random.mp4", tmp_path / "random.mp4")
    shutil.copy(root / "silent.mp4", tmp_path / "silent.mp4")
    (tmp_path / "metadata.jsonl").write_text(json.dumps(_row("random.mp4")) + "\n" + json.dumps(_row("silent.mp4")) + "\n")
    with pytest.raises(ValueError, match=r"0 clips usable, skipped 2 \(1 unreadable, 1 no audio\).*no usable clips"):
        AVClipDataset(tmp_path, **OPTS)
    (tmp_path / "metadata.jsonl").write_text(json.dumps(dict(file_name="silent.mp4", caption="x")) + "\n")
    with pytest.raises(ValueError, match="no 'audio_caption' column"):
        AVClipDataset(tmp_path, **OPTS)
    (tmp_path / "metadata.jsonl").write_text("")
    with pytest.raises(ValueError, match="has no entries"):
        AVClipDataset(tmp_path, **OPTS)
    with pytest.raises(TypeError, match="unknown AVClipDataset options"):
        AVClipDataset(root, frame_rate=8)
    with pytest.raises(ValueError, match="modalities"):
        AVClipDatasetConfig(modalities=("audio", "text"))
    with pytest.raises(ValueError, match="disagrees"):
        AVClipDataset(root, mel_frontend=AVLinkMelSpectrogram(), sample_rate=16000, **OPTS)


def test_frontend_sets_sample_rate(messy):
    root, _ = messy
    frontend = AVLinkMelSpectrogram(sample_rate=22050)
    ds = AVClipDataset(root, AVClipDatasetConfig(**OPTS, random_crop=False), mel_frontend=frontend)
    item = ds[0]
    assert ds.config.sample_rate == 22050 and item["waveform"].shape == (22050,)
    assert item["mel"].shape == (22050 // 256, 80)


def test_collate_and_dataloader_workers(messy, shared_cache):
    root, _ = messy
    ds = AVClipDataset(root, cache_dir=shared_cache, **OPTS)
    ds.set_epoch(1)
    batches = {}
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=workers, collate_fn=ds.collate_fn)
        batches[workers] = list(loader)
    first = batches[0][0]
    assert first["video"].shape == (2, 3, 8, SIZE, SIZE) and first["mel"].shape == (2, 62, 80)
    assert first["index"].tolist() == [0, 1] and first["crop_start"].dtype == torch.float64
    assert isinstance(first["event_times"], list) and len(first["event_times"]) == 2
    assert first["audio_caption"] == [ds.clips[0].row["audio_caption"], ds.clips[1].row["audio_caption"]]
    for x, y in zip(batches[0], batches[2]):  # workers see the epoch and give the same crops
        assert torch.equal(x["video"], y["video"]) and torch.equal(x["mel"], y["mel"])
    assert av_clip_collate([{"a": None, "b": 1.5}])["a"] == [None]


def test_resample_matches_prepare_video():
    frames = np.random.default_rng(0).integers(0, 256, (20, 30, 44, 3), dtype=np.uint8)
    for fps, target, h, w in ((8.0, 6.0, 16, 24), (25.0, 6.0, 36, 64), (8.0, 8.0, 30, 44)):
        ours = resample_video_frames(frames, fps, target, h, w)
        ref, _ = prepare_video(frames, fps, target, h, w)
        ours_t = torch.from_numpy(ours).permute(3, 0, 1, 2)[None].float() / 255 * 2 - 1
        assert ours_t.shape == ref.shape
        assert (ours_t - ref).abs().max() <= 1 / 255 + 1e-6  # uint8 rounding only
