"""The ``av-link`` command line.

    av-link v2a --model DIR --video in.mp4 --out out.mp4 [--wav] [--prompt ...]
    av-link a2v --model DIR --audio in.wav --out out.mp4 [--prompt ...]
    av-link t2a --model DIR --prompt ... --out out.wav [--seconds S]
    av-link t2v --model DIR --prompt ... --out out.mp4 [--seconds S]

Also runnable as ``python -m av_link.cli``. :func:`main` takes an argv list and returns the exit code, so tests
and other programs can call it in-process.

User errors (missing or unreadable inputs, a file without the needed stream, a directory that is not an av-link
checkpoint, bad option values, ...) end with one line ``av-link: error: <message>`` on stderr and a non-zero exit
code (2 for command lines argparse rejects, 1 otherwise); nothing is left at ``--out``. Set ``AV_LINK_DEBUG=1`` (or pass
``--debug``) to get the full traceback instead.

Adding a subcommand
-------------------
Every subcommand is one entry of :data:`SUBCOMMANDS`, made by the :func:`subcommand` decorator::

    def _add_make_synthetic_arguments(parser):           # fills the subcommand's argparse parser
        parser.add_argument("--out", required=True)
        add_device_arguments(parser)                     # shared option groups are available

    @subcommand("make-synthetic", help="write a SynthHits dataset", arguments=_add_make_synthetic_arguments)
    def run_make_synthetic(args) -> int:                 # gets the parsed namespace, returns the exit code
        ...
        if bad:
            raise CLIError("one-line message")          # -> "av-link: error: one-line message", exit 1
        return 0

The function can live in another module: call :func:`register_subcommand` there and add the module's name to
:data:`SUBCOMMAND_MODULES`, which :func:`build_parser` imports first. Raise :class:`CLIError`, ``ValueError`` or
``OSError`` (``MediaError`` is a ``ValueError``) for user errors; anything else is treated as a bug and shows its
traceback. Helpers for the common chores: :func:`check_output_path`, :func:`check_input_file`,
:func:`load_pipeline`, :func:`resolve_device`, :func:`make_generator`.
"""

import argparse
import importlib
import json
import math
import os
import secrets
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Optional, Sequence

PROG = "av-link"

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv")
AUDIO_EXTENSIONS = (".wav",)

# Exit codes: 2 for command lines argparse rejects, 1 for every other error.
EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


class CLIError(Exception):
    """A user error: printed as one line ``av-link: error: <message>``, never with a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE):
        super().__init__(message)
        self.exit_code = exit_code


class _UsageError(CLIError):
    def __init__(self, message: str):
        super().__init__(message, EXIT_USAGE)


class _ArgumentParser(argparse.ArgumentParser):
    """argparse prints the usage block and calls sys.exit on bad arguments; we want one line and a return code."""

    def error(self, message):
        raise _UsageError(f"{message} (see '{self.prog} --help')")


# ---------------------------------------------------------------------------------------------------------------
# Subcommand registry
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Subcommand:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: Optional[str] = None


SUBCOMMANDS: Dict[str, Subcommand] = {}

# Modules that register subcommands with `register_subcommand` when imported (e.g. "av_link.data.cli").
SUBCOMMAND_MODULES: list = []


def register_subcommand(name: str, *, help: str, arguments: Callable, run: Callable, description: str = None):
    """Add (or replace) the subcommand `name`: `arguments(parser)` declares its options, `run(args) -> int` runs it."""
    SUBCOMMANDS[name] = Subcommand(name, help, arguments, run, description)
    return run


def subcommand(name: str, *, help: str, arguments: Callable, description: str = None):
    """Decorator form of :func:`register_subcommand`."""

    def decorate(run):
        return register_subcommand(name, help=help, arguments=arguments, run=run, description=description)

    return decorate


# ---------------------------------------------------------------------------------------------------------------
# Argument types and shared option groups
# ---------------------------------------------------------------------------------------------------------------


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


DTYPES = ("float32", "float16", "bfloat16")


def add_model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="DIR", help="a local directory saved with save_pretrained")


def add_output_argument(parser: argparse.ArgumentParser, extensions: Sequence[str]) -> None:
    parser.add_argument("--out", required=True, metavar="PATH", help=f"output file ({', '.join(extensions)})")


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
        group.add_argument("--conditioning-timestep", type=unit_interval, default=None, metavar="T",
                           help="flow time the conditioning input is noised to (default: the pipeline config, "
                                "0.96 for v2a, 0.8 for a2v)")
    group.add_argument("--seed", type=seed_int, default=None, metavar="N", help="random seed (default: a fresh one, printed)")
    group.add_argument("--quiet", action="store_true", help="no progress bar")


# ---------------------------------------------------------------------------------------------------------------
# Helpers shared by the subcommands
# ---------------------------------------------------------------------------------------------------------------


def _one_line(text) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _reason(err: BaseException) -> str:
    text = _one_line(err)
    if isinstance(err, (KeyError, TypeError, AttributeError, ImportError, RuntimeError)) or not text:
        return f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text


def check_input_file(path: str, what: str) -> str:
    """An existing, readable, non-empty regular file; the message names the option."""
    from .utils.media_io import MediaError, check_input_file as check_media_file

    try:
        return check_media_file(path)
    except MediaError as err:
        raise CLIError(f"{what} {err}") from None


def check_output_path(path: str, extensions: Sequence[str], inputs: Iterable[str] = (), what: str = "--out") -> str:
    """Check `--out` before any work: known extension, existing directory, not a directory, not an input file."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in extensions:
        shown = f"'{ext}'" if ext else "no extension"
        raise CLIError(f"{what} {path}: has {shown}; expected {' or '.join(extensions)}")
    if os.path.isdir(path):
        raise CLIError(f"{what} {path}: is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CLIError(f"{what} {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise CLIError(f"{what} {path}: directory {directory} is not writable")
    for source in inputs:
        if source is None:
            continue
        same = os.path.realpath(source) == os.path.realpath(path)
        if not same and os.path.exists(source) and os.path.exists(path):
            try:
                same = os.path.samefile(source, path)
            except OSError:
                pass
        if same:
            raise CLIError(f"{what} {path}: refusing to overwrite the input file")
    return path


def resolve_device(name: Optional[str]):
    import torch

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as err:
        raise CLIError(f"--device {name!r} is not a torch device ({_one_line(err)})")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise CLIError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
    if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise CLIError(f"--device {name}: MPS is not available on this machine (use --device cpu)")
    return device


def resolve_dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def make_generator(seed: Optional[int], device):
    """A `torch.Generator` on `device`, seeded with `seed` (or a fresh random seed); returns (generator, seed)."""
    import torch

    if seed is None:
        seed = secrets.randbits(63)
    return torch.Generator(device=device).manual_seed(seed), seed


@contextmanager
def _quiet_libraries():
    """Silence diffusers/transformers logging and their loading bars (restored afterwards). Even errors: diffusers
    logs a failed weight lookup at error level and then raises, and the raise is what we report."""
    import diffusers
    import transformers

    d_log, t_log = diffusers.utils.logging, transformers.utils.logging
    saved = (d_log.get_verbosity(), t_log.get_verbosity(), d_log.is_progress_bar_enabled(), t_log.is_progress_bar_enabled())
    d_log.set_verbosity(d_log.CRITICAL)
    t_log.set_verbosity(t_log.CRITICAL)
    d_log.disable_progress_bar()
    t_log.disable_progress_bar()
    try:
        yield
    finally:
        d_log.set_verbosity(saved[0])
        t_log.set_verbosity(saved[1])
        if saved[2]:
            d_log.enable_progress_bar()
        if saved[3]:
            t_log.enable_progress_bar()


def _read_model_index(directory: str, cls_name: str) -> dict:
    """Check that `directory` is a local av-link pipeline directory and return its model_index.json."""
    if not os.path.exists(directory):
        raise CLIError(f"--model {directory}: no such directory")
    if not os.path.isdir(directory):
        raise CLIError(f"--model {directory}: is a file, expected a pipeline directory")
    prefix = f"{directory} is not an av-link {cls_name} directory"
    index_path = os.path.join(directory, "model_index.json")
    if not os.path.isfile(index_path):
        raise CLIError(f"{prefix}: it has no model_index.json")
    try:
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CLIError(f"{prefix}: model_index.json is unreadable ({_one_line(err)})")
    if not isinstance(index, dict):
        raise CLIError(f"{prefix}: model_index.json is not a JSON object")
    return index


def _import_component_modules(index: dict, prefix: str) -> None:
    # diffusers only loads components from modules that are already imported; import av-link's own ones (never
    # anything else: the file must not make us import arbitrary code).
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], str):
            continue
        module = value[0]
        if module == "av_link" or module.startswith("av_link."):
            try:
                importlib.import_module(module)
            except ImportError as err:
                raise CLIError(f"{prefix}: component '{name}' names module {module}, which cannot be imported ({_one_line(err)})")


_COMMAND_FOR_CLASS = {
    "AVLinkV2APipeline": "v2a",
    "AVLinkA2VPipeline": "a2v",
    "AVLinkTextToAudioPipeline": "t2a",
    "AVLinkTextToVideoPipeline": "t2v",
}


def check_pipeline_dir(cls, directory: str, accept: Sequence[str] = ()) -> dict:
    """Cheap static checks of a pipeline directory (before decoding inputs or loading weights); returns the index.

    `accept` lists other pipeline class names whose directories hold what `cls` needs (e.g. a text-to-audio
    pipeline can run the audio backbone of a V2A checkpoint)."""
    name = cls.__name__
    prefix = f"{directory} is not an av-link {name} directory"
    index = _read_model_index(directory, name)
    found = index.get("_class_name")
    if found != name and found not in accept:
        if isinstance(found, str) and found.startswith("AVLink"):
            hint = _COMMAND_FOR_CLASS.get(found)
            raise CLIError(f"{prefix}: it holds an {found} checkpoint" + (f" (use 'av-link {hint}')" if hint else ""))
        raise CLIError(f"{prefix}: model_index.json names {found!r}" if found else f"{prefix}: model_index.json has no _class_name")
    expected = cls._get_signature_keys(cls)[0]  # component names (optional components included)
    for component in sorted(set(expected) - set(cls._optional_components)):
        value = index.get(component)
        if not isinstance(value, list) or not value or value[0] is None:
            raise CLIError(f"{prefix}: component '{component}' is missing from model_index.json")
    from .pipelines.folders import component_dir  # an adapter-only folder names where its other components are

    for component in sorted(expected):
        value = index.get(component)
        if isinstance(value, list) and value and value[0] is not None and not os.path.isdir(component_dir(directory, index, component)):
            raise CLIError(f"{prefix}: component folder '{component}' is missing")
    return index


def load_pipeline(cls, directory: str, device, dtype, accept: Sequence[str] = ()):
    """`cls.from_pretrained(directory)` (local files, safetensors only) moved to `device`/`dtype`, with every loading
    failure turned into one `CLIError` line. The vocoder stays float32 whatever `dtype` is."""
    import torch

    prefix = f"{directory} is not an av-link {cls.__name__} directory"
    index = check_pipeline_dir(cls, directory, accept)
    _import_component_modules(index, prefix)
    with _quiet_libraries():
        try:
            pipe = cls.from_pretrained(directory, local_files_only=True, use_safetensors=True)
        except Exception as err:  # diffusers raises OSError, ValueError, TypeError, KeyError, safetensors errors...
            raise CLIError(f"{prefix}: {_reason(err)}") from err  # --debug shows the original traceback
        try:
            pipe.to(device, dtype, silence_dtype_warnings=True)
        except RuntimeError as err:
            raise CLIError(f"cannot move the pipeline to {device} in {dtype_name(dtype)} ({_one_line(err)})", EXIT_FAILURE)
        vocoder = getattr(pipe, "vocoder", None)
        if vocoder is not None and dtype != torch.float32:
            # half/bfloat16 audio from a vocoder is audibly worse and saves almost nothing (it is small)
            vocoder.to(dtype=torch.float32)
    return pipe


def dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def _configure_progress(pipe, args, desc: str) -> None:
    pipe.set_progress_bar_config(disable=bool(getattr(args, "quiet", False)), desc=desc, file=sys.stderr, leave=True)


@contextmanager
def _precision_errors(device, dtype):
    """Turn 'not implemented for Half' style kernel gaps into one clear line."""
    try:
        yield
    except RuntimeError as err:
        text = str(err)
        if "not implemented for" in text and ("Half" in text or "BFloat16" in text):
            raise CLIError(
                f"--dtype {dtype_name(dtype)} is not supported on {device} by this torch build ({_one_line(err)}); "
                f"use --dtype float32",
                EXIT_FAILURE,
            ) from err
        import torch

        if isinstance(err, getattr(torch, "OutOfMemoryError", ())):
            raise CLIError(f"out of memory on {device} ({_one_line(err)}); try --dtype bfloat16 or a shorter input", EXIT_FAILURE) from err
        raise


def _sampling_kwargs(args, conditioning: bool) -> dict:
    kwargs = dict(
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
    )
    if conditioning:
        kwargs.update(conditioning_prompt=args.conditioning_prompt, conditioning_timestep=args.conditioning_timestep)
    return kwargs


def _seconds(value: float) -> str:
    return f"{value:.2f} s"


def _finish(args, message: str, started: float) -> int:
    print(f"{PROG} {args.command}: {message}; took {_seconds(time.perf_counter() - started)}, seed {args.seed_used}", flush=True)
    return 0


# ---------------------------------------------------------------------------------------------------------------
# v2a / a2v / t2a / t2v
# ---------------------------------------------------------------------------------------------------------------


def _add_v2a_arguments(parser):
    add_model_argument(parser)
    parser.add_argument("--video", required=True, metavar="PATH", help="input video (any format ffmpeg reads)")
    add_output_argument(parser, VIDEO_EXTENSIONS + AUDIO_EXTENSIONS)
    parser.add_argument("--wav", action="store_true",
                        help="write the generated audio alone to --out (a .wav) instead of muxing it into the input video")
    add_sampling_arguments(parser, conditioning=True)
    add_device_arguments(parser)


@subcommand(
    "v2a",
    help="generate the soundtrack of a video",
    arguments=_add_v2a_arguments,
    description="Generate audio for --video and write the input video (its own frames and frame rate) with the "
                "generated audio muxed in, or with --wav the audio alone.",
)
def run_v2a(args) -> int:
    from .pipelines import AVLinkV2APipeline
    from .utils.media_io import read_video, write_video, write_wav

    started = time.perf_counter()
    check_output_path(args.out, AUDIO_EXTENSIONS if args.wav else VIDEO_EXTENSIONS, inputs=[args.video])
    check_input_file(args.video, "--video")
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    check_pipeline_dir(AVLinkV2APipeline, args.model)  # fail on a bad --model before decoding the video
    frames, fps = read_video(args.video)
    pipe = load_pipeline(AVLinkV2APipeline, args.model, device, dtype)
    if pipe.vocoder is None:
        raise CLIError(f"{args.model} has no vocoder, so it cannot produce a waveform")
    _configure_progress(pipe, args, "v2a")
    generator, args.seed_used = make_generator(args.seed, device)
    with _precision_errors(device, dtype):
        out = pipe(video=frames, video_fps=fps, generator=generator, **_sampling_kwargs(args, conditioning=True))
    audio, rate = out.audios[0], out.sample_rate
    duration = audio.shape[-1] / rate
    vocoder = type(pipe.vocoder).__name__
    if args.wav:
        write_wav(args.out, audio, rate)
        return _finish(args, f"wrote {args.out} ({_seconds(duration)} of audio at {rate} Hz, vocoder {vocoder})", started)
    write_video(args.out, frames, fps, audio=audio, sample_rate=rate)  # clips to [-1, 1] like write_wav
    return _finish(
        args,
        f"wrote {args.out} ({len(frames)} input frames at {fps:g} fps, {_seconds(len(frames) / fps)}, with "
        f"{_seconds(duration)} of generated audio at {rate} Hz, vocoder {vocoder})",
        started,
    )


def _add_a2v_arguments(parser):
    add_model_argument(parser)
    parser.add_argument("--audio", required=True, metavar="PATH",
                        help="input audio: a wav or any file with an audio track (e.g. a video)")
    add_output_argument(parser, VIDEO_EXTENSIONS)
    add_sampling_arguments(parser, conditioning=True)
    add_device_arguments(parser)


@subcommand(
    "a2v",
    help="generate a video for a sound",
    arguments=_add_a2v_arguments,
    description="Generate a video for --audio and write it with the input audio (as read, native rate and "
                "channels) muxed in.",
)
def run_a2v(args) -> int:
    from .pipelines import AVLinkA2VPipeline
    from .utils.media_io import read_audio, write_video

    started = time.perf_counter()
    check_output_path(args.out, VIDEO_EXTENSIONS, inputs=[args.audio])
    check_input_file(args.audio, "--audio")
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    check_pipeline_dir(AVLinkA2VPipeline, args.model)
    waveform, rate = read_audio(args.audio)
    pipe = load_pipeline(AVLinkA2VPipeline, args.model, device, dtype)
    _configure_progress(pipe, args, "a2v")
    generator, args.seed_used = make_generator(args.seed, device)
    with _precision_errors(device, dtype):
        out = pipe(audio=waveform, sample_rate=rate, generator=generator, **_sampling_kwargs(args, conditioning=True))
    frames, fps = out.frames[0], out.fps
    write_video(args.out, frames, fps, audio=waveform, sample_rate=rate)
    return _finish(
        args,
        f"wrote {args.out} ({len(frames)} generated frames at {fps:g} fps, {_seconds(len(frames) / fps)}, with the "
        f"input audio, {_seconds(waveform.shape[-1] / rate)} at {rate} Hz)",
        started,
    )


def _add_text_arguments(extensions):
    def add(parser):
        add_model_argument(parser)
        add_output_argument(parser, extensions)
        parser.add_argument("--seconds", type=positive_float, default=None, metavar="S",
                            help="duration to generate (default: the trained clip length)")
        add_sampling_arguments(parser, conditioning=False)
        add_device_arguments(parser)

    return add


# A V2A/A2V checkpoint holds both backbones, so the unimodal pipelines can run them (to check they are intact).
_CROSS_MODAL = ("AVLinkV2APipeline", "AVLinkA2VPipeline")


@subcommand("t2a", help="generate audio from text with the audio backbone alone", arguments=_add_text_arguments(AUDIO_EXTENSIONS))
def run_t2a(args) -> int:
    from .pipelines import AVLinkTextToAudioPipeline
    from .utils.media_io import write_wav

    started = time.perf_counter()
    check_output_path(args.out, AUDIO_EXTENSIONS)
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    pipe = load_pipeline(AVLinkTextToAudioPipeline, args.model, device, dtype, accept=_CROSS_MODAL)
    _configure_progress(pipe, args, "t2a")
    generator, args.seed_used = make_generator(args.seed, device)
    with _precision_errors(device, dtype):
        out = pipe(audio_length_in_s=args.seconds, generator=generator, **_sampling_kwargs(args, conditioning=False))
    audio, rate = out.audios[0], out.sample_rate
    write_wav(args.out, audio, rate)
    vocoder = type(pipe.vocoder).__name__
    return _finish(args, f"wrote {args.out} ({_seconds(audio.shape[-1] / rate)} of audio at {rate} Hz, vocoder {vocoder})", started)


@subcommand("t2v", help="generate video from text with the video backbone alone", arguments=_add_text_arguments(VIDEO_EXTENSIONS))
def run_t2v(args) -> int:
    from .pipelines import AVLinkTextToVideoPipeline
    from .utils.media_io import write_video

    started = time.perf_counter()
    check_output_path(args.out, VIDEO_EXTENSIONS)
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    pipe = load_pipeline(AVLinkTextToVideoPipeline, args.model, device, dtype, accept=_CROSS_MODAL)
    _configure_progress(pipe, args, "t2v")
    generator, args.seed_used = make_generator(args.seed, device)
    with _precision_errors(device, dtype):
        out = pipe(duration_in_s=args.seconds, generator=generator, **_sampling_kwargs(args, conditioning=False))
    frames, fps = out.frames[0], out.fps
    write_video(args.out, frames, fps)
    return _finish(args, f"wrote {args.out} ({len(frames)} frames at {fps:g} fps, {_seconds(len(frames) / fps)}, no audio)", started)


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
    parser.add_argument("--min-events", type=int, default=1, help="v1 only")
    parser.add_argument("--max-events", type=int, default=3, help="v1 only")
    parser.add_argument("--quiet", action="store_true")


@subcommand("make-synthetic", help="write a SynthHits dataset: impacts you can see and hear at known times",
            arguments=_add_make_synthetic_arguments)
def run_make_synthetic(args) -> int:
    from .data.synthetic import SynthHitsConfig, make_synthetic_dataset
    from .data.synthetic_v2 import SPLIT_SEEDS, SynthHitsV2Config, make_synthhits_v2_dataset

    if args.num_clips < 1:
        raise CLIError(f"--num-clips must be positive, got {args.num_clips}")
    started = time.perf_counter()
    if args.version == 1:
        config = SynthHitsConfig(width=args.width, height=args.height, fps=args.fps or 8.0, sample_rate=args.sample_rate,
                                 duration=args.duration or 2.0, min_events=args.min_events, max_events=args.max_events)
        args.seed_used = args.seed or 0
        out = make_synthetic_dataset(args.out, args.num_clips, config=config, seed=args.seed_used, progress=not args.quiet)
    else:
        if args.duration is not None:
            raise CLIError("--duration is for --version 1; v2 draws each clip's duration from its split")
        overrides = dict(width=args.width, height=args.height, sample_rate=args.sample_rate)
        if args.fps is not None:
            overrides["fps_choices"] = (args.fps,)
        config = SynthHitsV2Config.split(args.split, **overrides)
        out = make_synthhits_v2_dataset(args.out, args.num_clips, args.split, config, args.seed, progress=not args.quiet)
        args.seed_used = SPLIT_SEEDS[args.split] if args.seed is None else args.seed
    return _finish(args, f"wrote {args.num_clips} SynthHits v{args.version} clips to {out}", started)


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
    from .data.synthetic_v2 import make_synthhits_v2_dataset
    from .evaluation import run_synthhits, shipped_models_dir

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


def _add_demo_arguments(parser):
    parser.add_argument("--out", default="demo_out")
    parser.add_argument("--model", default=None, help="folder with v2a/ and a2v/ (default: the shipped SynthHits models)")
    parser.add_argument("--seed", type=int, default=2026, help="which held-out clip")
    parser.add_argument("--steps", type=int, default=None)


@subcommand("demo", help="run the shipped SynthHits V2A and A2V models on a new clip (offline)", arguments=_add_demo_arguments)
def run_demo(args) -> int:
    from .demo import run_demo as demo

    started = time.perf_counter()
    with _quiet_libraries():
        demo(args.out, args.model, args.seed, args.steps)
    return _finish(args, f"demo written to {args.out}/", started)


# ---------------------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    for module in SUBCOMMAND_MODULES:
        importlib.import_module(module)
    from . import __version__

    parser = _ArgumentParser(
        prog=PROG,
        description="AV-Link: video-to-audio and audio-to-video generation with Fusion Blocks between frozen DiTs.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for user errors too")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_ArgumentParser)
    for name, command in SUBCOMMANDS.items():
        child = sub.add_parser(name, help=command.help, description=command.description or command.help)
        command.add_arguments(child)
        # accepted after the subcommand too; `main` looks for it in argv before parsing
        child.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        child.set_defaults(_run=command.run)
    return parser


def _describe(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return _one_line(err) or type(err).__name__


def _print_error(message: str) -> None:
    sys.stderr.flush()
    print(f"{PROG}: error: {_one_line(message) or 'unknown error'}", file=sys.stderr, flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with `argv` (default: `sys.argv[1:]`) and return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = bool(os.environ.get("AV_LINK_DEBUG")) or "--debug" in argv
    try:
        try:
            parser = build_parser()
            args = parser.parse_args(argv)
        except SystemExit as stop:  # --help / --version
            return stop.code if isinstance(stop.code, int) else 0
        if args.command is None:
            _print_error(f"choose a command: {', '.join(SUBCOMMANDS)} (see '{PROG} --help')")
            return EXIT_USAGE
        args.seed_used = getattr(args, "seed", None)
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        _print_error("interrupted")
        return EXIT_INTERRUPTED
    except CLIError as err:
        if debug:
            raise
        _print_error(str(err))
        return err.exit_code
    except (ValueError, OSError) as err:  # MediaError is a ValueError; FileNotFoundError/EnvironmentError are OSErrors
        if debug:
            raise
        _print_error(_describe(err))
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
