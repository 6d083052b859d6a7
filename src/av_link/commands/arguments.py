"""Option types and the option groups the subcommands share."""

import argparse
import math
from typing import Sequence

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv")
AUDIO_EXTENSIONS = (".wav",)
# What a folder given as input contributes (any of these ffmpeg reads); outputs use the lists above.
VIDEO_INPUT_EXTENSIONS = VIDEO_EXTENSIONS + (".webm", ".avi")
AUDIO_INPUT_EXTENSIONS = AUDIO_EXTENSIONS + (".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac") + VIDEO_INPUT_EXTENSIONS

def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}")
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = non_negative_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def unit_interval(text: str) -> float:
    value = non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text!r}")
    return value


def seed_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}")
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**63), got {text!r}")
    return value


def even_size(text: str) -> int:
    # H.264 in 4:2:0 (what the mp4 writer uses) needs even sizes; the writer would pad an odd one by a row/column
    value = positive_int(text)
    if value % 2:
        raise argparse.ArgumentTypeError(f"must be even (H.264 video), got {text!r}")
    return value


DTYPES = ("float32", "float16", "bfloat16")


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="a local directory saved with save_pretrained")


def add_output_argument(parser: argparse.ArgumentParser, extensions: Sequence[str], folder: bool = False) -> None:
    also = "; a folder when the input is a folder" if folder else ""
    parser.add_argument("--out", required=True, metavar="PATH", help=f"output file ({', '.join(extensions)}){also}")


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("device")
    group.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    group.add_argument("--dtype", default="float32", choices=DTYPES,
                       help="weights/compute precision of the transformers and text encoder (the mel front end "
                            "and the vocoder always run in float32)")


def add_sampling_arguments(parser: argparse.ArgumentParser, conditioning: bool) -> None:
    group = parser.add_argument_group("sampling")
    group.add_argument("--prompt", default=None, metavar="TEXT", help="text for the generated modality (default: empty)")
    if conditioning:
        group.add_argument("--conditioning-prompt", default=None, metavar="TEXT", help="text for the conditioning input (default: empty)")
    group.add_argument("--negative-prompt", default=None, metavar="TEXT", help="text of the unconditional CFG branch (default: empty)")
    group.add_argument("--steps", type=positive_int, default=None, metavar="N", help="Euler steps (default: the pipeline config, 64)")
    group.add_argument("--guidance", type=non_negative_float, default=None, metavar="SCALE",
                       help="classifier-free guidance scale (default: the pipeline config, 5.0; 1 disables CFG)")
    if conditioning:
        group.add_argument("--guidance-stop", type=unit_interval, default=None, metavar="F",
                           help="guide only the first F of the steps (diffusers' ClassifierFreeGuidance(stop=F)); the "
                                "rest run the conditional branch alone (default: the pipeline config, 1.0 = every step)")
        group.add_argument("--conditioning-timestep", type=unit_interval, default=None, metavar="T",
                           help="flow time the conditioning input is noised to (default: the pipeline config, "
                                "0.96 for v2a, 0.8 for a2v)")
    group.add_argument("--seed", type=seed_int, default=None, metavar="N", help="random seed (default: a fresh one, printed)")
    group.add_argument("--quiet", action="store_true", help="no progress bar")



def add_text_arguments(extensions):
    """The options of t2a / t2v, writing one of `extensions`."""

    def add(parser):
        add_model_argument(parser)
        add_output_argument(parser, extensions)
        parser.add_argument("--seconds", type=positive_float, default=None, metavar="S",
                            help="duration to generate (default: the trained clip length)")
        add_sampling_arguments(parser, conditioning=False)
        add_device_arguments(parser)

    return add
