"""`av-link evaluate`: the SynthHits benchmark."""

import os
import time

from . import CLIError, subcommand
from .helpers import _finish
from .loading import _quiet_libraries


def _add_evaluate_arguments(parser):
    parser.add_argument("--model", default=None, help="V2A/A2V pipeline folder, or a folder with v2a/ and a2v/ (default: the shipped SynthHits models)")
    parser.add_argument("--data", required=True, help="held-out SynthHits folder (see make-synthetic); created with --make N if missing")
    parser.add_argument("--make", type=int, default=0, metavar="N", help="write N held-out SynthHits v2 clips to --data first")
    parser.add_argument("--split", choices=["id", "ood"], default="id", help="which held-out split --make writes")
    parser.add_argument("--out", default="synthhits_eval", help="folder for synthhits.json, .md and .png")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--guidance", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N clips")
    parser.add_argument("--quiet", action="store_true")


@subcommand("evaluate", help="score V2A/A2V on SynthHits against text-only baselines and the ground truth",
            arguments=_add_evaluate_arguments)
def run_evaluate(args) -> int:
    from ..data.synthetic_v2 import make_synthhits_v2_dataset
    from ..evaluation import run_synthhits, shipped_models_dir

    started = time.perf_counter()
    if args.make:
        make_synthhits_v2_dataset(args.data, args.make, split=args.split, progress=not args.quiet)
    if not os.path.isdir(args.data):
        raise CLIError(f"--data {args.data} does not exist (add --make N to create a held-out split)")
    with _quiet_libraries():
        result = run_synthhits(args.model or shipped_models_dir(), args.data, args.out, args.steps, args.guidance, args.seed,
                               args.limit, progress=not args.quiet)
    print(result["table"])
    return _finish(args, f"wrote {args.out}/synthhits.json, .md, .png (vocoder {result['vocoder']})", started)
