import os

import numpy as np
import pytest
from scipy.io import wavfile

import av_link.utils.media_io as media_io
from av_link.utils.media_io import (
    MediaError,
    aac_sample_rate,
    has_audio_stream,
    has_video_stream,
    read_audio,
    read_video,
    resample_audio,
    to_mono,
    write_video,
    write_wav,
)


def _frames(num_frames=12, height=36, width=64):
    # smooth gradients survive H.264 almost exactly, unlike noise
    t = np.linspace(0, 1, num_frames)[:, None, None, None]
    y = np.linspace(0, 1, height)[None, :, None, None]
    x = np.linspace(0, 1, width)[None, None, :, None]
    rgb = np.concatenate([t + 0 * x * y, 0.5 * (x + y) + 0 * t, 1 - x + 0 * t * y], axis=-1)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def _sine(seconds, sr, freq=440.0, channels=1):
    n = int(round(seconds * sr))
    t = np.arange(n) / sr
    return np.stack([0.5 * np.sin(2 * np.pi * freq * (c + 1) * t) for c in range(channels)]).astype(np.float32)


def test_video_with_audio_round_trip(tmp_path):
    frames, fps, sr = _frames(), 6.0, 22050
    audio = _sine(len(frames) / fps, sr)
    path = tmp_path / "clip.mp4"
    write_video(path, frames, fps, audio=audio, sample_rate=sr)

    assert has_video_stream(path) and has_audio_stream(path)
    video, got_fps = read_video(path)
    assert video.dtype == np.uint8 and video.shape == frames.shape
    assert got_fps == pytest.approx(fps)
    assert np.abs(video.astype(int) - frames.astype(int)).mean() < 2.0

    wav, got_sr = read_audio(path)
    assert got_sr == sr and wav.dtype == np.float32 and wav.shape[0] == 1
    assert wav.shape[1] == audio.shape[1]  # edit lists trim the AAC priming: same duration to the sample
    spectrum = np.abs(np.fft.rfft(wav[0]))
    assert np.fft.rfftfreq(wav.shape[1], 1 / sr)[spectrum.argmax()] == pytest.approx(440.0, abs=1.0)


def test_video_float_frames_odd_size_fractional_fps(tmp_path):
    frames = _frames(7, 35, 63).astype(np.float32) / 255.0
    path = tmp_path / "odd.mp4"
    write_video(path, frames, 5.16)
    video, fps = read_video(path)
    assert video.shape == (7, 36, 64, 3)  # padded to even by replicating the last row/column
    assert fps == pytest.approx(5.16, abs=1e-3)
    assert np.abs(video[:, :35, :63].astype(int) - np.round(frames * 255).astype(int)).mean() < 2.0
    assert not has_audio_stream(path)


def test_wav_44k_stereo_to_22k_mono(tmp_path):
    sr, seconds = 44100, 1.5
    stereo = _sine(seconds, sr, channels=2)
    path = tmp_path / "stereo.wav"
    wavfile.write(path, sr, (stereo.T * 32767).astype(np.int16))

    wav, got_sr = read_audio(path)
    assert got_sr == sr and wav.shape == (2, int(seconds * sr))
    np.testing.assert_allclose(wav, stereo, atol=1e-4)

    mono = resample_audio(to_mono(wav), sr, 22050)
    assert mono.ndim == 1 and mono.dtype == np.float32
    assert mono.shape[0] == int(seconds * 22050)
    # batched (..., samples) resampling keeps leading axes
    assert resample_audio(wav, sr, 22050).shape == (2, int(seconds * 22050))


@pytest.mark.parametrize("dtype", [np.int32, np.float32])
def test_wav_dtypes_and_write_wav(tmp_path, dtype):
    sr = 16000
    ref = _sine(0.25, sr)[0]
    path = tmp_path / "in.wav"
    data = (ref * 2**31).astype(np.int32) if dtype == np.int32 else ref
    wavfile.write(path, sr, data)
    wav, got_sr = read_audio(path)
    assert got_sr == sr and wav.shape == (1, ref.size)
    np.testing.assert_allclose(wav[0], ref, atol=1e-6)

    out = tmp_path / "out.wav"
    write_wav(out, np.concatenate([ref, [3.0, -3.0]]), sr)  # out-of-range samples are clipped, not wrapped
    got_sr, pcm = wavfile.read(out)
    assert pcm.dtype == np.int16 and got_sr == sr and pcm[-2] == 32767 and pcm[-1] == -32767


def test_read_audio_from_non_wav_container(tmp_path):
    sr = 22050
    path = tmp_path / "audio_only.mp4"
    write_video(path, _frames(6), 6.0, audio=_sine(1.0, sr, channels=2), sample_rate=sr)
    wav, got_sr = read_audio(path)
    assert got_sr == sr and wav.shape == (2, sr)


def test_error_messages(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        read_video(tmp_path / "missing.mp4")
    with pytest.raises(MediaError, match="no such file"):
        read_audio(tmp_path / "missing.wav")

    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        read_video(empty)

    junk = tmp_path / "junk.mp4"
    junk.write_text("this is not a video")
    with pytest.raises(MediaError, match="not a readable audio/video file"):
        read_video(junk)
    with pytest.raises(MediaError, match="not a readable audio/video file"):
        read_audio(junk)

    silent = tmp_path / "silent.mp4"
    write_video(silent, _frames(4), 6.0)
    with pytest.raises(MediaError, match="no audio stream"):
        read_audio(silent)

    wav_path = tmp_path / "a.wav"
    write_wav(wav_path, _sine(0.1, 8000), 8000)
    with pytest.raises(MediaError, match="no video stream"):
        read_video(wav_path)

    zero = tmp_path / "zero.wav"
    wavfile.write(zero, 8000, np.zeros(0, dtype=np.int16))
    with pytest.raises(MediaError, match="zero samples"):
        read_audio(zero)

    nan = tmp_path / "nan.wav"
    wavfile.write(nan, 8000, np.array([0.0, np.nan, 0.1], dtype=np.float32))
    with pytest.raises(MediaError, match="NaN"):
        read_audio(nan)

    with pytest.raises(MediaError, match="NaN"):
        write_wav(tmp_path / "x.wav", np.array([0.0, np.inf]), 8000)
    with pytest.raises(MediaError, match="transpose"):
        write_wav(tmp_path / "x.wav", np.zeros((1000, 2)), 8000)
    with pytest.raises(MediaError, match="zero-length"):
        write_video(tmp_path / "x.mp4", np.zeros((0, 8, 8, 3), np.uint8), 6.0)
    with pytest.raises(MediaError, match="sample_rate"):
        write_video(tmp_path / "x.mp4", _frames(2), 6.0, audio=_sine(0.1, 8000))
    # every message is one line that names the file
    with pytest.raises(MediaError) as info:
        read_audio(silent)
    assert "\n" not in str(info.value) and str(silent) in str(info.value)


def test_atomic_writes_leave_nothing_on_failure(tmp_path):
    # ffmpeg knows no muxer for ".xyz": it fails after the temp file was created
    with pytest.raises(MediaError, match="ffmpeg could not encode"):
        write_video(tmp_path / "out.xyz", _frames(2), 6.0, audio=np.zeros(100, np.float32), sample_rate=8000)
    with pytest.raises(MediaError):
        write_wav(tmp_path / "bad.wav", np.array([np.nan]), 8000)
    assert os.listdir(tmp_path) == []

    # a failure never clobbers an existing file either
    write_wav(tmp_path / "keep.wav", _sine(0.1, 8000), 8000)
    before = (tmp_path / "keep.wav").read_bytes()
    with pytest.raises(MediaError, match="ffmpeg could not encode"):
        write_video(tmp_path / "keep.wav", _frames(2), 6.0)  # the wav muxer takes no video
    assert (tmp_path / "keep.wav").read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.wav"]


@pytest.mark.parametrize("rate, muxed", [(8, 7350), (12345, 16000), (22050, 22050), (192000, 96000)])
def test_audio_rates_aac_cannot_carry_are_resampled(tmp_path, rate, muxed):
    # 8 Hz is what used to come out with no audio stream and no error; 12345 Hz sits between two AAC rates
    assert aac_sample_rate(rate) == muxed
    seconds, freq = 1.5, min(440.0, rate / 4)
    path = tmp_path / "clip.mp4"
    write_video(path, _frames(9), 6.0, audio=_sine(seconds, rate, freq), sample_rate=rate)
    wav, got_sr = read_audio(path)
    assert got_sr == muxed and wav.shape[1] == pytest.approx(seconds * muxed, abs=2)
    spectrum = np.abs(np.fft.rfft(wav[0]))
    assert np.fft.rfftfreq(wav.shape[1], 1 / got_sr)[spectrum.argmax()] == pytest.approx(freq, abs=1.0)


def test_a_video_that_lost_its_audio_stream_is_never_written(tmp_path, monkeypatch):
    # without the resampling, ffmpeg drops an 8 Hz stream and exits 0: the writer must notice, not publish
    monkeypatch.setattr(media_io, "aac_sample_rate", int)
    with pytest.raises(MediaError, match="ffmpeg wrote no audio stream"):
        write_video(tmp_path / "out.mp4", _frames(6), 6.0, audio=_sine(2.0, 8, 2.0), sample_rate=8)
    assert os.listdir(tmp_path) == []

