"""Long spectrograms vocoded in chunks: a convolutional vocoder's output is unchanged; Griffin-Lim's has no seam."""

import numpy as np
import pytest
import torch

from av_link.models.audio_frontend import AVLinkMelSpectrogram
from av_link.models.vocoder_griffin_lim import GriffinLimVocoder
from av_link.models.vocoder_hifigan import hifigan_config_from_dict
from av_link.utils.chunked_vocoding import chunk_sizes, vocode_in_chunks


def test_a_convolutional_vocoder_gives_the_whole_mel_result_in_chunks():
    from transformers import SpeechT5HifiGan

    h = {"resblock": "1", "num_mels": 8, "sampling_rate": 8000, "upsample_rates": [4, 2], "upsample_kernel_sizes": [8, 4],
         "upsample_initial_channel": 16, "resblock_kernel_sizes": [3, 5], "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]]}
    torch.manual_seed(0)
    vocoder = SpeechT5HifiGan(hifigan_config_from_dict(h)).eval()
    mel = torch.randn(2, 203, 8)
    calls = []

    def run(lo, hi):
        calls.append((lo, hi))
        return vocoder(mel[:, lo:hi])

    with torch.no_grad():
        whole = vocoder(mel)
        chunked = vocode_in_chunks(run, 203, 8, chunk=40, context=12, fade=4)
        assert calls == [(0, 53), (29, 93), (69, 134), (110, 174), (150, 203)]  # 5 even chunks of 40-41 frames
        assert chunked.shape == whole.shape == (2, 203 * 8)
        torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-5)
        # a length one frame past whole chunks leaves no one-frame stub chunk
        torch.testing.assert_close(vocode_in_chunks(run, 161, 8, chunk=40, context=12, fade=4), vocoder(mel[:, :161]),
                                   rtol=0, atol=1e-5)
    # short inputs are vocoded whole, in one call
    calls.clear()
    with torch.no_grad():
        assert torch.equal(vocode_in_chunks(run, 60, 8, chunk=40, context=10, fade=4), vocoder(mel[:, :60]))
    assert calls == [(0, 60)]
    with pytest.raises(ValueError, match="context"):
        vocode_in_chunks(run, 203, 8, chunk=20, context=10, fade=4)


def test_griffin_lim_in_chunks_has_no_seam():
    frontend = AVLinkMelSpectrogram()
    vocoder = GriffinLimVocoder.from_mel_frontend(frontend)
    sr, hop = frontend.config.sample_rate, frontend.config.hop_length
    seconds = 25.0  # > 10.8 s: three chunks
    t = torch.arange(int(seconds * sr)) / sr
    tone = 0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.2 * torch.sin(2 * torch.pi * 1250 * t)
    mel = frontend(tone)
    chunk, context, fade = chunk_sizes(sr / hop)
    assert mel.shape[0] > chunk + 2 * context
    out = vocoder(mel)
    assert out.shape == (mel.shape[0] * hop,) and torch.isfinite(out).all()
    # Griffin-Lim's own output of a stationary tone wobbles (10 ms RMS from 0.5x to 1.2x its median, whole or
    # chunked); around each chunk edge it must wobble no more than elsewhere: no dropout where two chunks' phases
    # would cancel in the fade, no click.
    win = sr // 100
    rms = out[: out.numel() // win * win].reshape(-1, win).square().mean(1).sqrt()
    assert round(mel.shape[0] / chunk) == 3  # chunk edges at a third and two thirds
    edges = [round(round(k * mel.shape[0] / 3) * hop / win) for k in (1, 2)]
    near = torch.cat([rms[e - 5:e + 5] for e in edges])
    rest = torch.cat([rms[20:edges[0] - 5], rms[edges[0] + 5:edges[1] - 5], rms[edges[1] + 5:-20]])
    # (chunks vocoded independently, without the carried phase, dip to 0.55x the rest's 2% quantile here)
    assert near.min() >= 0.9 * rest.quantile(0.02) and near.max() <= 1.1 * rest.quantile(0.98)
    # and the re-analysed spectrogram is as close to the target as the whole-mel result's
    whole = vocoder.griffin_lim(vocoder.mel_to_magnitude(torch.exp(mel).T[None]))[0]
    err = lambda y: (frontend(y) - mel)[20:-20].abs().mean().item()  # noqa: E731
    assert err(out) < 1.1 * err(whole)


def test_griffin_lim_short_input_is_unchanged():
    frontend = AVLinkMelSpectrogram()
    vocoder = GriffinLimVocoder.from_mel_frontend(frontend)
    mel = frontend(torch.randn(22050 * 2) * 0.1)
    expected = vocoder.griffin_lim(vocoder.mel_to_magnitude(torch.exp(mel).T[None]))[0]
    assert torch.equal(vocoder(mel), expected)
