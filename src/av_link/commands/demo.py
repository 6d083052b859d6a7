"""`av-link demo`: the shipped SynthHits models on a new clip."""

import time

from . import subcommand
from .helpers import _finish
from .loading import _quiet_libraries


def _add_demo_arguments(parser):
    parser.add_argument("--out", default="demo_out")
    parser.add_argument("--model", default=None, help="folder with v2a/ and a2v/ (default: the shipped SynthHits models)")
    parser.add_argument("--seed", type=int, default=2026, help="which held-out clip")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--fast", action="store_true",
                        help="the shipped 8-step distilled students (one forward pass a step, no guidance) instead of the "
                             "64-step models")


@subcommand("demo", help="run the shipped SynthHits V2A and A2V models on a new clip (offline)", arguments=_add_demo_arguments)
def run_demo(args) -> int:
    import os

    from ..demo import run_demo as demo
    from ..evaluation import shipped_models_dir

    if args.fast and args.model:
        raise SystemExit("--fast picks the shipped students; with --model, point it at a students folder instead")
    model = os.path.join(shipped_models_dir(), "students") if args.fast else args.model
    started = time.perf_counter()
    with _quiet_libraries():
        demo(args.out, model, args.seed, args.steps)
    return _finish(args, f"demo written to {args.out}/", started)
