"""`av-link make-synthetic`: write a SynthHits dataset."""

import time

from . import CLIError, subcommand
from .helpers import _finish


def _add_make_synthetic_arguments(parser):
    parser.add_argument("--out", required=True, help="folder to write (mp4 + wav + metadata.jsonl)")
    parser.add_argument("--num-clips", type=int, required=True)
    parser.add_argument("--version", type=int, choices=[1, 2], default=2,
                        help="2 (default): impacts visible only through the motion, native rates 8-30 fps, silent "
                             "distractors, 2-10 s; 1: the flash-marked 8 fps clips of av-link 0.1")
    parser.add_argument("--split", choices=["train", "id", "ood"], default="train",
                        help="v2 only: train / id (2-6 s, >= 0.35 s apart) or ood (7-10 s, more events, >= 0.2 s apart)")
    parser.add_argument("--seed", type=int, default=None, help="dataset seed (default: v2 the split's own, v1 0)")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--height", type=int, default=32)
    parser.add_argument("--fps", type=float, default=None, help="v1: the rate (default 8); v2: one rate for every clip")
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--duration", type=float, default=None, help="v1 only: seconds per clip (default 2)")
    parser.add_argument("--impact-tail-seconds", type=float, default=None,
                        help="v2 only: seconds each impact is rendered for (default: until it has decayed by 60 dB; "
                             "1.5 remakes v2 data from before metal rang out, whose ring was cut off at 1.5 s)")
    parser.add_argument("--min-events", type=int, default=1, help="v1 only")
    parser.add_argument("--max-events", type=int, default=3, help="v1 only")
    parser.add_argument("--quiet", action="store_true")


@subcommand("make-synthetic", help="write a SynthHits dataset: impacts you can see and hear at known times",
            arguments=_add_make_synthetic_arguments)
def run_make_synthetic(args) -> int:
    from ..data.synthetic import SynthHitsConfig, make_synthetic_dataset
    from ..data.synthetic_v2 import SPLIT_SEEDS, SynthHitsV2Config, make_synthhits_v2_dataset

    if args.num_clips < 1:
        raise CLIError(f"--num-clips must be positive, got {args.num_clips}")
    started = time.perf_counter()
    if args.version == 1:
        if args.impact_tail_seconds is not None:
            raise CLIError("--impact-tail-seconds is for --version 2; v1 renders every impact for 1.5 s")
        config = SynthHitsConfig(width=args.width, height=args.height, fps=args.fps or 8.0, sample_rate=args.sample_rate,
                                 duration=args.duration or 2.0, min_events=args.min_events, max_events=args.max_events)
        args.seed_used = args.seed or 0
        out = make_synthetic_dataset(args.out, args.num_clips, config=config, seed=args.seed_used, progress=not args.quiet)
    else:
        if args.duration is not None:
            raise CLIError("--duration is for --version 1; v2 draws each clip's duration from its split")
        overrides = dict(width=args.width, height=args.height, sample_rate=args.sample_rate,
                         impact_tail_seconds=args.impact_tail_seconds)
        if args.fps is not None:
            overrides["fps_choices"] = (args.fps,)
        config = SynthHitsV2Config.split(args.split, **overrides)
        out = make_synthhits_v2_dataset(args.out, args.num_clips, args.split, config, args.seed, progress=not args.quiet)
        args.seed_used = SPLIT_SEEDS[args.split] if args.seed is None else args.seed
    return _finish(args, f"wrote {args.num_clips} SynthHits v{args.version} clips to {out}", started)
