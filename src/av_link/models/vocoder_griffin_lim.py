"""Weight-free fallback vocoder: log-mel -> waveform by filterbank inversion and fast Griffin-Lim.

It takes exactly what `transformers.SpeechT5HifiGan` takes (natural-log mel `(B, T, n_mels)` or `(T, n_mels)`,
un-normalised, as produced by `AVLinkMelSpectrogram`) and returns `(B, T * hop_length)` or `(T * hop_length,)`,
so pipelines can swap it in when no pretrained HiFi-GAN is available (tests, offline demos). Quality is
far below a neural vocoder (phasey, metallic), but timing and spectral envelope are kept, which is what
synchronisation checks need.
"""

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401  (the diffusers loader looks this name up here)

from ..utils.chunked_vocoding import chunk_sizes, vocode_in_chunks
from .audio_frontend import ConfigOnlyModelMixin, slaney_mel_filterbank, validate_spectrogram_input


class GriffinLimVocoder(ConfigOnlyModelMixin, ConfigMixin):
    r"""
    Parameters:
        sampling_rate (`int`, defaults to 22050): output rate; named like `SpeechT5HifiGanConfig.sampling_rate`
            so pipelines can read `vocoder.config.sampling_rate` for either vocoder.
        n_fft, win_length, hop_length, n_mels, f_min, f_max: must equal the `AVLinkMelSpectrogram` settings
            (see `from_mel_frontend`).
        n_iter (`int`, defaults to 32): Griffin-Lim iterations.
        momentum (`float`, defaults to 0.99): fast Griffin-Lim acceleration (0 gives classic Griffin-Lim).
        nnls_iter (`int`, defaults to 16): multiplicative non-negative least-squares refinements of the
            pseudo-inverse mel -> linear magnitude estimate (0 keeps the clamped pseudo-inverse).
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        sampling_rate: int = 22050,
        n_fft: int = 1024,
        win_length: int = 1024,
        hop_length: int = 256,
        n_mels: int = 80,
        f_min: float = 0.0,
        f_max: float = 8000.0,
        n_iter: int = 32,
        momentum: float = 0.99,
        nnls_iter: int = 16,
    ):
        super().__init__()
        if (n_fft - hop_length) % 2:
            raise ValueError(f"n_fft - hop_length must be even, got {n_fft} - {hop_length}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        fb = slaney_mel_filterbank(sampling_rate, n_fft, n_mels, f_min, f_max).astype(np.float64)
        # Minimum-norm least-squares inverse, computed once in float64; NNLS refinement starts from it.
        self.register_buffer("mel_basis", torch.from_numpy(fb).float(), persistent=False)
        # torch's pinv, not numpy's: numpy's threaded OpenBLAS hung here (spinning) in a process whose earlier CLI runs
        # had been interrupted, on a 2-core AMD EPYC (tests/test_cli_folders.py).
        self.register_buffer("inverse_mel_basis", torch.linalg.pinv(torch.from_numpy(fb)).float(), persistent=False)
        left = (n_fft - win_length) // 2
        window = F.pad(torch.hann_window(win_length), (left, n_fft - win_length - left))
        self.register_buffer("window", window, persistent=False)

    @classmethod
    def from_mel_frontend(cls, mel_frontend, **kwargs) -> "GriffinLimVocoder":
        """Build a vocoder whose analysis settings match an `AVLinkMelSpectrogram`."""
        c = mel_frontend.config
        return cls(
            sampling_rate=c.sample_rate,
            n_fft=c.n_fft,
            win_length=c.win_length,
            hop_length=c.hop_length,
            n_mels=c.n_mels,
            f_min=c.f_min,
            f_max=c.f_max,
            **kwargs,
        )

    def mel_to_magnitude(self, mel: torch.Tensor) -> torch.Tensor:
        """Linear mel magnitudes `(B, n_mels, T)` -> non-negative STFT magnitudes `(B, n_fft // 2 + 1, T)`."""
        mag = torch.matmul(self.inverse_mel_basis.float(), mel).clamp_min(0.0)
        if self.config.nnls_iter > 0:
            # Lee-Seung multiplicative updates minimise ||M S - mel||^2 over S >= 0. The floor lets bins that
            # the clamp zeroed come back; the updates then concentrate energy at the true partials instead of
            # the pseudo-inverse's smeared triangles.
            basis = self.mel_basis.float()
            mag = mag + 1e-3 * mag.amax(dim=1, keepdim=True) + 1e-10
            numerator = torch.matmul(basis.T, mel)
            gram = torch.matmul(basis.T, basis)
            for _ in range(self.config.nnls_iter):
                mag = mag * numerator / (torch.matmul(gram, mag) + 1e-10)
        return mag

    def _stft(self, y: torch.Tensor) -> torch.Tensor:
        c = self.config
        return torch.stft(
            y, c.n_fft, hop_length=c.hop_length, win_length=c.n_fft, window=self.window.float(), center=False,
            return_complex=True,
        )  # fmt: skip

    def _istft(self, spec: torch.Tensor, envelope: torch.Tensor) -> torch.Tensor:
        # Least-squares overlap-add (Griffin & Lim 1984): sum_t w * frame_t / sum_t w^2. torch.istft refuses
        # center=False framing because the envelope touches zero at the very edges, which we crop anyway.
        c = self.config
        frames = torch.fft.irfft(spec, n=c.n_fft, dim=1) * self.window.float()[:, None]
        length = envelope.shape[-1]
        y = F.fold(frames, output_size=(1, length), kernel_size=(1, c.n_fft), stride=(1, c.hop_length))
        return y.reshape(spec.shape[0], length) / envelope

    def _envelope(self, num_frames: int) -> torch.Tensor:
        c = self.config
        length = (num_frames - 1) * c.hop_length + c.n_fft
        sq = self.window.float().square()[None, :, None].expand(1, c.n_fft, num_frames)
        env = F.fold(sq, output_size=(1, length), kernel_size=(1, c.n_fft), stride=(1, c.hop_length)).reshape(length)
        # the floor only matters in the outer padding, which is cropped from the result
        return env.clamp_min(1e-3 * env.max())

    def griffin_lim(self, magnitude: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """STFT magnitudes `(B, F, T)` framed like `AVLinkMelSpectrogram` -> waveform `(B, T * hop_length)`."""
        return self._iterate(magnitude, self._random_angles(magnitude, _seeded(generator, magnitude.device)))[0]

    @staticmethod
    def _random_angles(magnitude: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        phase = torch.rand(magnitude.shape, generator=generator, device=magnitude.device, dtype=magnitude.dtype)
        return torch.polar(torch.ones_like(phase), 2 * torch.pi * phase)

    def _iterate(self, magnitude: torch.Tensor, angles: torch.Tensor) -> tuple:
        """Fast Griffin-Lim from unit-modulus `angles`: (waveform `(B, T * hop_length)`, the final angles)."""
        c = self.config
        num_frames = magnitude.shape[-1]
        envelope = self._envelope(num_frames)
        beta = c.momentum / (1.0 + c.momentum)
        previous = torch.zeros_like(angles)
        for _ in range(c.n_iter):
            rebuilt = self._stft(self._istft(magnitude * angles, envelope))
            accelerated = rebuilt - beta * previous
            angles = accelerated / (accelerated.abs() + 1e-16)
            previous = rebuilt
        y = self._istft(magnitude * angles, envelope)
        # Undo the analysis padding: frame t of the front end is centred on sample t * hop + hop / 2.
        pad = (c.n_fft - c.hop_length) // 2
        return y[:, pad : pad + num_frames * c.hop_length], angles

    # Long spectrograms are vocoded in chunks (memory flat in length); each chunk starts from the phase the
    # previous one ended with on their overlap, so the two agree where they are cross-faded.
    vocodes_in_chunks = True

    @torch.no_grad()
    def forward(self, spectrogram: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """
        Args:
            spectrogram (`torch.Tensor`): natural-log mel `(B, T, n_mels)` or `(T, n_mels)`, not normalised.
            generator (`torch.Generator`, *optional*): seeds the random initial phase (seed 0 if omitted).

        Returns:
            `torch.Tensor`: waveform `(B, T * hop_length)` or `(T * hop_length,)`, computed in float32, returned in
            the module's dtype. Spectrograms longer than about 10.8 s are vocoded in 10 s chunks
            (`av_link.utils.chunked_vocoding`).
        """
        validate_spectrogram_input(spectrogram, "spectrogram", trailing_dims=2)
        if spectrogram.shape[-1] != self.config.n_mels:
            raise ValueError(
                f"spectrogram must be (..., T, n_mels={self.config.n_mels}), got shape {tuple(spectrogram.shape)}"
            )
        batched = spectrogram.dim() == 3
        if not batched:
            spectrogram = spectrogram.unsqueeze(0)
        if spectrogram.shape[1] == 0:
            raise ValueError("spectrogram has zero frames")
        mel = torch.exp(spectrogram.float()).transpose(1, 2)
        generator = _seeded(generator, mel.device)
        carried = {}

        def run(lo, hi):
            magnitude = self.mel_to_magnitude(mel[..., lo:hi])
            angles = self._random_angles(magnitude, generator)
            if carried:  # the frames the previous chunk covered start from its final phase
                start, previous = carried["start"], carried["angles"]
                n = min(hi, start + previous.shape[-1]) - lo
                if n > 0:
                    angles[..., :n] = previous[..., lo - start:lo - start + n]
            y, carried["angles"] = self._iterate(magnitude, angles)
            carried["start"] = lo
            return y

        c = self.config
        waveform = vocode_in_chunks(run, mel.shape[-1], c.hop_length, *chunk_sizes(c.sampling_rate / c.hop_length))
        waveform = self.to_output_dtype(waveform.to(mel.device))
        return waveform if batched else waveform.squeeze(0)


def _seeded(generator: Optional[torch.Generator], device) -> torch.Generator:
    """Deterministic by default (seed 0); pass a generator for varied phase initialisations."""
    return torch.Generator(device=device).manual_seed(0) if generator is None else generator
