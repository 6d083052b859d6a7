"""Streaming decode equals the in-memory conversion; one prober; the muxer copies the video stream."""

import subprocess

import numpy as np
import pytest
import torch

import av_link.utils.media_probe as media_probe
from av_link.data.probe import probe_media
from av_link.utils.media_io import (
    MediaError,
    has_video_stream,
    mux_audio,
    read_audio,
    read_video,
    resample_audio,
    write_video,
    write_wav,
)
from av_link.utils.media_probe import ffmpeg_exe, probe
from av_link.utils.media_stream import decode_audio, decode_video
from av_link.utils.stream_resample import BoxFilterStream, PolyphaseStream
from av_link.utils.video_ops import cover_crop_weights, resample_video, resize_cover_crop


def _noise_video(path, num_frames, fps, height, width, audio_rate=None, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)
    audio = None
    if audio_rate:
        audio = rng.normal(0, 0.1, (2, int(num_frames / fps * audio_rate))).astype(np.float32)
    write_video(path, frames, fps, audio=audio, sample_rate=audio_rate)
    return path


def _packet_digests(path) -> list:
    """One md5 per packet of the first video stream, read without decoding."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy",
           "-f", "framemd5", "-"]
    lines = subprocess.run(cmd, capture_output=True, check=True, text=True).stdout.splitlines()
    return [line.split(",")[-1].strip() for line in lines if line and not line.startswith("#")]


# ---------------------------------------------------------------------------------------------------------------
# The incremental resamplers alone (no ffmpeg)
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fps", [8, 24000 / 1001, 25, 30, 5.16])
@pytest.mark.parametrize("target_fps", [6, 12, 24])
@pytest.mark.parametrize("chunk", [1, 4])
def test_box_filter_stream_equals_the_whole_clip_filter(fps, target_fps, chunk):
    n = 37
    frames = torch.rand(n, 3, 5, 7)
    reference = resample_video(frames, fps, target_fps, 5, 7)
    stream, got = BoxFilterStream(fps, target_fps), []
    for i in range(0, n, chunk):
        got += stream.push(frames[i:i + chunk])
    got += stream.finish()
    assert len(got) == len(reference)
    torch.testing.assert_close(torch.stack(got), reference, atol=1e-6, rtol=0)


def test_box_filter_stream_holds_only_the_frames_it_is_building():
    stream = BoxFilterStream(30, 6)
    for _ in range(300):
        stream.push(torch.rand(1, 3, 2, 2))
        assert len(stream._open) <= 2  # ceil(30 / 6) + 1 input frames reach at most two model frames
    with pytest.raises(ValueError, match="shorter than one model frame"):
        BoxFilterStream(30, 6).finish()


@pytest.mark.parametrize("size", [(36, 64, 12, 16), (720, 1280, 16, 16), (720, 1280, 36, 64), (17, 33, 40, 60), (9, 9, 9, 9)])
def test_cover_crop_weights_are_the_resize(size):
    h, w, height, width = size
    frames = torch.rand(2, 3, h, w)
    rows, cols = cover_crop_weights(h, w, height, width)
    got = torch.einsum("yh,nchw,xw->ncyx", rows, frames, cols)
    torch.testing.assert_close(got, resize_cover_crop(frames, height, width), atol=1e-6, rtol=0)


@pytest.mark.parametrize("rates", [(44100, 16000), (48000, 22050), (8000, 16000), (22050, 22050), (12345, 16000)])
def test_polyphase_stream_equals_one_call(rates):
    orig, target = rates
    rng = np.random.default_rng(1)
    signal = rng.normal(0, 0.3, int(orig * 2.3)).astype(np.float32)
    reference = resample_audio(signal, orig, target)
    stream, parts, i = PolyphaseStream(orig, target), [], 0
    while i < len(signal):  # uneven blocks, some shorter than the filter
        step = int(rng.integers(1, orig // 3))
        parts.append(stream.push(signal[i:i + step]))
        i += step
    parts.append(stream.finish())
    got = np.concatenate(parts)
    assert got.shape == reference.shape
    np.testing.assert_allclose(got, reference, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fps, size", [(8.0, (24, 40)), (24000 / 1001, (30, 50)), (25.0, (17, 33)), (30.0, (36, 64))])
def test_streamed_video_equals_decode_then_resample(tmp_path, fps, size):
    path = _noise_video(tmp_path / "clip.mp4", 19, fps, *size)
    frames, file_fps = read_video(path)
    assert file_fps == pytest.approx(fps, abs=1e-9)  # NTSC rates snapped exactly
    full = torch.from_numpy(frames).permute(0, 3, 1, 2)
    for target_fps, height, width in [(6, 12, 16), (12, 9, 9), (fps, *frames.shape[1:3])]:
        reference = resample_video(full, file_fps, target_fps, height, width)
        for chunk in (1, 3):
            got, seconds = decode_video(path, target_fps, height, width, chunk=chunk)
            assert seconds == pytest.approx(19 / file_fps)
            torch.testing.assert_close(got, reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize("suffix, rate", [(".wav", 44100), (".mp4", 48000)])
def test_streamed_audio_equals_decode_then_resample(tmp_path, suffix, rate):
    path = tmp_path / f"sound{suffix}"
    if suffix == ".wav":
        write_wav(path, np.random.default_rng(2).normal(0, 0.2, (2, int(2.5 * rate))).astype(np.float32), rate)
    else:
        _noise_video(path, 20, 8.0, 16, 16, audio_rate=rate)
    waveform, file_rate = read_audio(path)
    reference = resample_audio(waveform.mean(axis=0), file_rate, 16000)  # prepare_audio's order
    got, seconds = decode_audio(path, 16000, block_seconds=0.3)  # many blocks
    assert seconds == pytest.approx(waveform.shape[1] / file_rate)
    assert got.shape == reference.shape
    np.testing.assert_allclose(got, reference, atol=1e-6, rtol=0)


def test_one_prober_serves_the_dataset_scan_readers_and_muxer(tmp_path, monkeypatch):
    path = _noise_video(tmp_path / "clip.mp4", 12, 6.0, 16, 16, audio_rate=16000)
    calls = []
    real = media_probe._probe_ffmpeg
    monkeypatch.setattr(media_probe, "_probe_ffmpeg", lambda *a: calls.append(a) or real(*a))
    info = probe_media(path)  # the dataset scan counts packets
    assert info["video_frames"] == 12 and info["fps"] == 6.0 and info["sample_rate"] == 16000
    assert has_video_stream(path)
    read_video(path), read_audio(path), decode_video(path, 6, 8, 8), decode_audio(path, 8000)
    mux_audio(tmp_path / "out.mp4", path, np.zeros(16000, np.float32), 16000)
    assert len(calls) == 2  # the clip once, and the freshly written output once (its audio is checked)


def test_mux_copies_the_video_stream(tmp_path):
    source = _noise_video(tmp_path / "clip.mp4", 24, 12.0, 36, 64, audio_rate=22050)
    audio = np.random.default_rng(3).normal(0, 0.1, 2 * 16000).astype(np.float32)
    for suffix in (".mp4", ".mkv", ".mov"):
        out = tmp_path / f"out{suffix}"
        assert mux_audio(out, source, audio, 16000) == "copy"
        assert _packet_digests(out) == _packet_digests(source)  # the same packets: nothing was re-encoded
        sound, rate = read_audio(out)
        assert rate == 16000 and sound.shape[1] == pytest.approx(audio.shape[0], abs=1100)  # AAC frame padding


def test_mux_re_encodes_only_what_the_container_cannot_carry(tmp_path):
    source = tmp_path / "lossless.mkv"  # FFV1 muxes into Matroska but not into mp4
    cmd = [ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=33x17:rate=10:duration=1",
           "-c:v", "ffv1", str(source)]
    subprocess.run(cmd, check=True)
    audio = np.zeros(8000, np.float32)
    assert mux_audio(tmp_path / "out.mkv", source, audio, 8000) == "copy"
    assert mux_audio(tmp_path / "out.mp4", source, audio, 8000) == "encode"
    info = probe(tmp_path / "out.mp4")
    assert info.video_codec == "h264" and (info.width, info.height) == (34, 18) and info.has_audio
    frames, _ = read_video(tmp_path / "out.mp4")
    original, _ = read_video(source)
    assert len(frames) == len(original) == 10
    # the padding replicates the last row and column instead of adding black
    assert np.abs(frames[:, -1].astype(int) - frames[:, -2].astype(int)).mean() < 12


def test_unreadable_inputs_fail_with_one_clear_line(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 20)
    sound = tmp_path / "sound.wav"
    write_wav(sound, np.zeros(800, np.float32), 8000)
    silent = _noise_video(tmp_path / "silent.mp4", 4, 8.0, 8, 8)
    cases = [
        (lambda: decode_video(tmp_path / "missing.mp4", 6, 8, 8), "no such file"),
        (lambda: decode_video(junk, 6, 8, 8), "not a readable audio/video file"),
        (lambda: decode_video(sound, 6, 8, 8), "has no video stream"),
        (lambda: decode_audio(junk, 16000), "not a readable audio/video file"),
        (lambda: decode_audio(silent, 16000), "has no audio stream"),
        (lambda: mux_audio(tmp_path / "out.mp4", junk, np.zeros(10, np.float32), 8000), "not a readable"),
    ]
    for call, message in cases:
        with pytest.raises(MediaError, match=message) as info:
            call()
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="shorter than one model frame"):
        decode_video(_noise_video(tmp_path / "short.mp4", 1, 30.0, 8, 8), 6, 8, 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.mp4", "short.mp4", "silent.mp4", "sound.wav"]
