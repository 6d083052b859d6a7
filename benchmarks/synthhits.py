"""SynthHits benchmark: V2A Onset Acc/AP and A2V event-time accuracy against text-only baselines and the
ground truth, on a held-out synthetic split.

    python benchmarks/synthhits.py                       # the shipped tiny models, 40 held-out clips
    python benchmarks/synthhits.py --model synthhits_run --clips 40 --steps 32

Writes benchmarks/results/synthhits.{json,md,png}. The held-out split uses dataset seed 10000000 + seed,
far from the training split's seed 1.
"""

import argparse
import os

from av_link.data.synthetic import make_synthetic_dataset
from av_link.evaluation import run_synthhits, shipped_models_dir

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=shipped_models_dir())
    parser.add_argument("--data", default=os.path.join(HERE, "results", "synthhits_heldout"))
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--guidance", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocoder", default="auto", choices=["auto", "hifigan", "pipeline"])
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(args.data, "metadata.jsonl")):
        make_synthetic_dataset(args.data, args.clips, seed=10_000_000 + args.seed)
    result = run_synthhits(args.model, args.data, args.out, args.steps, args.guidance, args.seed, limit=args.clips, vocoder=args.vocoder)
    print(f"vocoder: {result['vocoder']}\n{result['table']}")


if __name__ == "__main__":
    main()
