"""Input conversion of the pipelines: any frame rate / resolution / sample rate / PCM type to model space."""

import numpy as np
import PIL.Image
import pytest
import torch

from av_link.pipelines.inputs import prepare_audio, prepare_video


def _numbered_video(frames=90, h=240, w=320):
    """Frame i has brightness i, so the picked input frame can be read back from the output."""
    return np.broadcast_to(np.arange(frames, dtype=np.uint8)[:, None, None, None], (frames, h, w, 3)).copy()


def test_video_is_resampled_to_the_model_rate_by_an_exposure_weighted_box_filter():
    video, seconds = prepare_video(_numbered_video(90), fps=30, target_fps=6, height=16, width=16)
    assert video.shape == (1, 3, 18, 16, 16) and seconds == 3.0
    got = ((video[0, 0, :, 8, 8] + 1) / 2 * 255).double()
    # A frame stamped j / fps covers [j - 1/4, j + 3/4) / fps: output frame k >= 1 covers input frames 5k-1 .. 5k+3
    # exactly; output frame 0 starts before the input, at -1/4 of ITS period, and so holds frames 0 .. 3.
    expected = torch.arange(18).double() * 5 + 1.0
    expected[0] = 1.5
    assert torch.allclose(got, expected, atol=1e-3)
    # 25 -> 12 fps, by hand: output frame k covers [k - 1/4, k + 3/4) / 12, input frame j [j - 1/4, j + 3/4) / 25.
    video, _ = prepare_video(_numbered_video(50, 8, 8), fps=25, target_fps=12, height=8, width=8)
    got = ((video[0, 0, :, 4, 4] + 1) / 2 * 255).double()
    for k in (0, 5, 23):
        lo, hi = (k - 0.25) / 12, (k + 0.75) / 12
        w = np.array([max(0.0, min(hi, (j + 0.75) / 25) - max(lo, (j - 0.25) / 25)) for j in range(50)])
        assert abs(got[k].item() - (w * np.arange(50)).sum() / w.sum()) < 1e-3


@pytest.mark.parametrize("fps", [8, 12, 15, 24, 25, 30, 24000 / 1001, 30000 / 1001])
def test_no_input_frame_is_lost_at_any_rate(fps):
    # Every input frame gets weight in some model frame: a one-frame event (the worst case) always shows.
    from av_link.utils.video_ops import exposure_weights, frame_at, frame_time

    n = int(round(4 * fps))
    index, weight = exposure_weights(n, fps, 12.0)
    assert torch.allclose(weight.sum(1), torch.ones(len(weight)))
    seen = torch.zeros(n)
    seen.index_add_(0, index.flatten(), weight.flatten())
    assert (seen[:-1] > 0).all()  # the last frame may fall past the last whole model frame
    for j in range(0, n - 1, max(1, n // 7)):
        video = np.zeros((n, 4, 4, 3), np.uint8)
        video[j] = 255
        out, _ = prepare_video(video, fps=fps, target_fps=12, height=4, width=4)
        k = int(frame_at(frame_time(j, fps), 12))  # the model frame covering the instant the flash shows
        assert (out[0, 0, min(k, out.shape[2] - 1)] > -1 + 0.3).all()  # >= half its share 12/fps


@pytest.mark.parametrize("fps", [8, 12, 15, 24, 25, 30, 24000 / 1001, 30000 / 1001])
def test_conversion_keeps_motion_on_time_at_any_rate(fps):
    # A picture showing the scene at its frame's instant (frame_time) still shows it there, on average, in the model
    # frames, whatever the source rate: for uniform motion, output frame k shows the scene at frame_time(k, 12) up to
    # the box filter's sample-and-hold error (at most a quarter source period, zero on average). The previous
    # convention (frame j covering [j, j + 1) / fps) shifted such pictures by 0.25 / fps - 0.25 / 12 on average, an
    # offset that depends on the source rate (+10 ms at 8 fps, -13 ms at 30), which a model trained on every rate
    # cannot learn away; for a closed shutter it was twice that.
    from av_link.utils.video_ops import exposure_weights, frame_time

    n = int(round(8 * fps))
    index, weight = exposure_weights(n, fps, 12.0)
    position = frame_time(np.arange(n), fps)  # uniform motion, 1 unit per second, seen at each frame's instant
    out = (weight.double() * torch.from_numpy(position)[index]).sum(1).numpy()
    error = (out - frame_time(np.arange(len(out)), 12.0))[1:-1]  # the end frames reach past the input's ends
    assert abs(error.mean()) < 1e-3 and np.abs(error).max() <= 0.25 / fps + 1e-6


def test_video_is_resized_to_cover_and_centre_cropped():
    frame = np.zeros((1, 40, 80, 3), np.uint8)
    frame[:, :, 14:66] = 255  # a white band a little wider than the middle half of a 2:1 frame
    video, _ = prepare_video(frame, fps=6, target_fps=6, height=16, width=16)
    assert video.min() > 0.99  # the square centre crop is all white: no borders, no stretching
    as_pil = [PIL.Image.fromarray(f) for f in _numbered_video(12, 20, 20)]
    assert prepare_video(as_pil, fps=12, target_fps=6, height=8, width=8)[0].shape == (1, 3, 6, 8, 8)


def test_float_and_tensor_video_inputs():
    array = np.random.default_rng(0).random((6, 16, 16, 3)).astype(np.float32)
    from_array, _ = prepare_video(array, 6, 6, 16, 16)
    from_tensor, _ = prepare_video(torch.from_numpy(array).permute(3, 0, 1, 2)[None], 6, 6, 16, 16)
    torch.testing.assert_close(from_array, from_tensor)
    torch.testing.assert_close(from_array, torch.from_numpy(array).permute(3, 0, 1, 2)[None] * 2 - 1)
    for frames in (array, torch.from_numpy(array).permute(3, 0, 1, 2)[None]):  # frames in memory carry no rate
        with pytest.raises(ValueError, match="pass video_fps="):
            prepare_video(frames, None, 6, 16, 16)


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
