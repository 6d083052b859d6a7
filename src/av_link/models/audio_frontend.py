"""The one mel-spectrogram front end used for training targets and for the vocoder at inference.

It reproduces the analysis of the universal HiFi-GAN V1 vocoder (``meldataset.py`` of the HiFi-GAN
reference code): 22.05 kHz, 1024-point hann-windowed magnitude STFT, hop 256, reflect padding of
``(n_fft - hop) / 2`` on both sides with ``center=False`` (so a clip of ``N`` samples gives exactly
``N // hop`` frames), an 80-band slaney-scale, slaney-normalised mel filterbank over 0-8 kHz (librosa's
defaults), and a natural log clamped at 1e-5. Any other setting would feed the pretrained vocoder
spectrograms it was not trained on.

The audio backbone does not model the log-mel directly but ``normalize(log_mel) = (log_mel - mel_mean) /
mel_std``, which puts typical speech/effects spectrograms near zero mean and unit variance (silence is
``log(1e-5) = -11.5``, loud partials reach about +2), matching the unit-variance noise of flow matching.
"""

import math
import os
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from transformers.audio_utils import mel_filter_bank


def slaney_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """`(n_mels, n_fft // 2 + 1)` float32 filterbank, equal to `librosa.filters.mel(...)` with its defaults."""
    kwargs = dict(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=f_min, max_frequency=f_max,
                  sampling_rate=sample_rate, norm="slaney", mel_scale="slaney")
    # float32 before the slaney area normalisation is what makes transformers' bank bit-exact with librosa; older
    # transformers have no `dtype` and build it in float64 (equal to float32 rounding, not bit-exact)
    try:
        fb = mel_filter_bank(**kwargs, dtype=np.float32)
    except TypeError:
        fb = mel_filter_bank(**kwargs).astype(np.float32)
    return np.ascontiguousarray(fb.T)


def validate_spectrogram_input(x: torch.Tensor, name: str, trailing_dims: int) -> None:
    """Shared rank / finiteness checks; `trailing_dims` is the rank of one un-batched item."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in (trailing_dims, trailing_dims + 1):
        raise ValueError(
            f"{name} must have {trailing_dims} (un-batched) or {trailing_dims + 1} (batched) dimensions, "
            f"got shape {tuple(x.shape)}"
        )
    if not torch.is_floating_point(x):
        raise ValueError(f"{name} must be a floating point tensor, got {x.dtype}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")


# Hub/location arguments that `ConfigMixin.load_config` understands; everything else the diffusers pipeline
# loader passes (torch_dtype, low_cpu_mem_usage, variant, use_safetensors, ...) is about weights and is ignored.
_CONFIG_LOCATION_KWARGS = (
    "cache_dir",
    "force_download",
    "proxies",
    "token",
    "local_files_only",
    "revision",
    "subfolder",
    "user_agent",
    "dduf_entries",
)


class ConfigOnlyModelMixin(ModelMixin):
    """A `ModelMixin` whose state is entirely determined by its config (no persistent tensors).

    `save_pretrained` then writes only `config.json`, and diffusers' `from_pretrained` would fail looking for
    a weights file, so loading rebuilds the module from the config instead.

    Dtype: `.to(dtype)` / `.half()` / `from_pretrained(torch_dtype=...)` set the dtype the module reports and
    returns its results in, so `pipe.to(torch.float16)` is reported truthfully; the filterbanks stay float32 and
    the computation runs in float32 (a half-precision filterbank or STFT would only lose accuracy), and casting
    back to float32 restores exactly the original module.
    """

    _DTYPE_TRACKER = "_dtype_tracker"

    def __init__(self):
        super().__init__()
        # Registered first, so diffusers' `dtype` / `device` (first floating buffer) read it.
        self.register_buffer(self._DTYPE_TRACKER, torch.zeros(()), persistent=False)

    def _apply(self, fn, recurse=True):
        originals = {name: buf for name, buf in self._buffers.items()
                     if buf is not None and buf.is_floating_point() and name != self._DTYPE_TRACKER}
        super()._apply(fn, recurse)
        for name, original in originals.items():
            moved = self._buffers[name]
            if moved.dtype != original.dtype:  # follow device moves, undo dtype casts (from the exact original)
                self._buffers[name] = original.to(device=moved.device)
        return self

    def to_output_dtype(self, x: torch.Tensor) -> torch.Tensor:
        """A float32 result in the module's dtype (a float32 module keeps float64 results float64)."""
        return x if self.dtype == torch.float32 else x.to(self.dtype)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Union[str, os.PathLike], **kwargs):
        location = {k: kwargs[k] for k in _CONFIG_LOCATION_KWARGS if kwargs.get(k) is not None}
        config = cls.load_config(pretrained_model_name_or_path, **location)
        model = cls.from_config(config)
        device_map = kwargs.get("device_map")
        if isinstance(device_map, (str, torch.device)) and str(device_map) not in ("auto", "balanced"):
            model.to(device_map)
        dtype = kwargs.get("torch_dtype", kwargs.get("dtype"))
        if isinstance(dtype, torch.dtype):
            model.to(dtype)
        return model.eval()


class AVLinkMelSpectrogram(ConfigOnlyModelMixin, ConfigMixin):
    r"""
    Waveform -> natural-log mel spectrogram, HiFi-GAN V1 compatible, plus the normalisation the audio
    backbone is trained in. It has no trainable weights; the filterbank and window are rebuilt from the config.

    Parameters:
        sample_rate (`int`, defaults to 22050): waveform sample rate in Hz.
        n_fft (`int`, defaults to 1024): FFT size.
        win_length (`int`, defaults to 1024): hann window length (centred in the FFT frame if shorter).
        hop_length (`int`, defaults to 256): samples per mel frame.
        n_mels (`int`, defaults to 80): mel bands.
        f_min, f_max (`float`, defaults to 0 and 8000): filterbank frequency range in Hz.
        log_clamp (`float`, defaults to 1e-5): magnitudes are clamped to this before the log.
        mel_mean, mel_std (`float`, defaults to -5.0 and 2.5): affine normalisation applied by `normalize`.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        sample_rate: int = 22050,
        n_fft: int = 1024,
        win_length: int = 1024,
        hop_length: int = 256,
        n_mels: int = 80,
        f_min: float = 0.0,
        f_max: float = 8000.0,
        log_clamp: float = 1e-5,
        mel_mean: float = -5.0,
        mel_std: float = 2.5,
    ):
        super().__init__()
        if win_length > n_fft:
            raise ValueError(f"win_length ({win_length}) must not exceed n_fft ({n_fft})")
        if (n_fft - hop_length) % 2:
            raise ValueError(f"n_fft - hop_length must be even for symmetric padding, got {n_fft} - {hop_length}")
        if not 0 <= f_min < f_max <= sample_rate / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2, got {f_min}, {f_max}, {sample_rate}")
        if mel_std <= 0:
            raise ValueError(f"mel_std must be positive, got {mel_std}")
        fb = slaney_mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max)
        # Non-persistent: they are a pure function of the config, so checkpoints carry no tensors for them.
        self.register_buffer("mel_basis", torch.from_numpy(fb), persistent=False)
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)

    @property
    def frames_per_second(self) -> float:
        return self.config.sample_rate / self.config.hop_length

    def num_frames(self, num_samples: int) -> int:
        """Mel frames produced for a clip of `num_samples` samples."""
        return int(num_samples) // self.config.hop_length

    def num_samples(self, num_frames: int) -> int:
        """Waveform samples a vocoder produces from `num_frames` mel frames."""
        return int(num_frames) * self.config.hop_length

    @property
    def min_num_samples(self) -> int:
        # reflect padding needs more input samples than it pads
        return (self.config.n_fft - self.config.hop_length) // 2 + 1

    def magnitude(self, waveform: torch.Tensor) -> torch.Tensor:
        """Linear STFT magnitude `(B, n_fft // 2 + 1, T)` of a `(B, N)` waveform, framed exactly like HiFi-GAN."""
        cfg = self.config
        pad = (cfg.n_fft - cfg.hop_length) // 2
        x = F.pad(waveform.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        spec = torch.stft(
            x,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window=self.window.to(x.dtype),
            center=False,
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        # the small epsilon keeps sqrt differentiable at exact zeros, as in the reference front end
        return torch.sqrt(spec.real.square() + spec.imag.square() + 1e-9)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """
        Args:
            waveform (`torch.Tensor`): `(B, N)` or `(N,)` float waveform at `config.sample_rate`, in [-1, 1].

        Returns:
            `torch.Tensor`: natural-log mel `(B, T, n_mels)` (or `(T, n_mels)`), `T = N // hop_length`, not normalised.
        """
        validate_spectrogram_input(waveform, "waveform", trailing_dims=1)
        batched = waveform.dim() == 2
        if not batched:
            waveform = waveform.unsqueeze(0)
        if waveform.shape[-1] < self.min_num_samples:
            raise ValueError(
                f"waveform has {waveform.shape[-1]} samples; at least {self.min_num_samples} are needed "
                f"({self.min_num_samples / self.config.sample_rate * 1000:.1f} ms at {self.config.sample_rate} Hz)"
            )
        # float32 at least: half-precision STFTs are not supported on CPU and lose too much in the log floor
        dtype = torch.promote_types(waveform.dtype, torch.float32)
        mag = self.magnitude(waveform.to(dtype))
        mel = torch.matmul(self.mel_basis.to(dtype), mag)
        log_mel = self.to_output_dtype(torch.log(torch.clamp(mel, min=self.config.log_clamp)).transpose(1, 2))
        return log_mel if batched else log_mel.squeeze(0)

    def normalize(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel -> the roughly zero-mean, unit-variance representation the audio backbone models."""
        return (mel - self.config.mel_mean) / self.config.mel_std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of `normalize`: backbone output -> log-mel for the vocoder."""
        return x * self.config.mel_std + self.config.mel_mean

    @property
    def silence_level(self) -> float:
        """Log-mel value of digital silence (`log(log_clamp)`)."""
        return math.log(self.config.log_clamp)
