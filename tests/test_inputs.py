"""Input conversion of the pipelines: any frame rate / resolution / sample rate / PCM type to model space."""

import numpy as np
import PIL.Image
import pytest
import torch

from av_link.pipelines.inputs import prepare_audio, prepare_video


def _numbered_video(frames=90, h=240, w=320):
    """Frame i has brightness i, so the picked input frame can be read back from the output."""
    return np.broadcast_to(np.arange(frames, dtype=np.uint8)[:, None, None, None], (frames, h, w, 3)).copy()


def test_video_is_resampled_to_the_model_rate_by_nearest_frame():
    video, seconds = prepare_video(_numbered_video(90), fps=30, target_fps=6, height=16, width=16)
    assert video.shape == (1, 3, 18, 16, 16) and seconds == 3.0
    picked = ((video[0, 0, :, 8, 8] + 1) / 2 * 255).round().long().tolist()
    assert picked == [int((k + 0.5) * 5) for k in range(18)]  # the frame covering each output frame's centre


def test_video_is_resized_to_cover_and_centre_cropped():
    frame = np.zeros((1, 40, 80, 3), np.uint8)
    frame[:, :, 14:66] = 255  # a white band a little wider than the middle half of a 2:1 frame
    video, _ = prepare_video(frame, fps=6, target_fps=6, height=16, width=16)
    assert video.min() > 0.99  # the square centre crop is all white: no borders, no stretching
    as_pil = [PIL.Image.fromarray(f) for f in _numbered_video(12, 20, 20)]
    assert prepare_video(as_pil, fps=12, target_fps=6, height=8, width=8)[0].shape == (1, 3, 6, 8, 8)


def test_float_and_tensor_video_inputs():
    array = np.random.default_rng(0).random((6, 16, 16, 3)).astype(np.float32)
    from_array, _ = prepare_video(array, None, 6, 16, 16)
    from_tensor, _ = prepare_video(torch.from_numpy(array).permute(3, 0, 1, 2)[None], None, 6, 16, 16)
    torch.testing.assert_close(from_array, from_tensor)
    torch.testing.assert_close(from_array, torch.from_numpy(array).permute(3, 0, 1, 2)[None] * 2 - 1)


def test_audio_becomes_mono_at_the_model_rate():
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)]).astype(np.float32)
    mono = prepare_audio(stereo, 44100, 22050, min_samples=256)
    assert mono.shape == (1, 22050)
    spectrum = np.abs(np.fft.rfft(mono[0].numpy()))
    assert abs(np.argmax(spectrum) - 440) <= 1  # 1 Hz bins over one second


@pytest.mark.parametrize("dtype, scale, offset", [(np.int16, 32767, 0), (np.int32, 2**31 - 1, 0), (np.uint8, 127, 128)])
def test_integer_pcm_is_scaled_to_unit_range(dtype, scale, offset):
    wave = (np.sin(np.linspace(0, 20, 16000)) * scale + offset).astype(dtype)
    mono = prepare_audio(wave, 16000, 16000, min_samples=256)[0].numpy()
    assert abs(mono.max() - 1.0) < 0.02 and abs(mono.min() + 1.0) < 0.02 and abs(mono.mean()) < 0.05


def test_batched_audio():
    batch = np.random.default_rng(0).normal(0, 0.1, (3, 2, 8000)).astype(np.float32)
    assert prepare_audio(batch, 8000, 16000, min_samples=256).shape == (3, 16000)
