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
    assert torch.allclose(got, torch.arange(18).double() * 5 + 2.0, atol=1e-3)  # mean of input frames 5k .. 5k+4
    # 25 -> 12 fps: output frame k covers [k/12, (k+1)/12); input frame j covers [j/25, (j+1)/25).
    video, _ = prepare_video(_numbered_video(50, 8, 8), fps=25, target_fps=12, height=8, width=8)
    got = ((video[0, 0, :, 4, 4] + 1) / 2 * 255).double()
    for k in (0, 5, 23):
        lo, hi = k / 12, (k + 1) / 12
        w = np.array([max(0.0, min(hi, (j + 1) / 25) - max(lo, j / 25)) for j in range(50)])
        assert abs(got[k].item() - (w * np.arange(50)).sum() / w.sum()) < 1e-3


@pytest.mark.parametrize("fps", [8, 12, 15, 24, 25, 30, 24000 / 1001, 30000 / 1001])
def test_no_input_frame_is_lost_at_any_rate(fps):
    # Every input frame gets weight in some model frame: a one-frame event (the worst case) always shows.
    from av_link.utils.video_ops import exposure_weights

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
        k = int(((j + 0.5) / fps) * 12)  # the model frame covering the flash's centre
        assert (out[0, 0, min(k, out.shape[2] - 1)] > -1 + 0.3).all()  # >= half its share 12/fps


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
