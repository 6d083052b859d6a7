"""Chores every generating subcommand shares: input/output checks, device, seed, progress and error wording."""

import os
import secrets
import time
from contextlib import contextmanager
from typing import Iterable, Optional, Sequence

from . import EXIT_FAILURE, PROG, CLIError


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
    from ..utils.media_io import MediaError, check_input_file as check_media_file

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


def dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


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
        kwargs.update(conditioning_prompt=args.conditioning_prompt, conditioning_timestep=args.conditioning_timestep,
                      guidance_stop=args.guidance_stop)
    return kwargs


def _seconds(value: float) -> str:
    return f"{value:.2f} s"


def _finish(args, message: str, started: float) -> int:
    print(f"{PROG} {args.command}: {message}; took {_seconds(time.perf_counter() - started)}, seed {args.seed_used}", flush=True)
    return 0
