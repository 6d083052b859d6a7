"""The cross-modal subcommands (`v2a`, `a2v`) as one recipe: read an input, sample, write an output. A direction
fills in a :class:`Conversion`; :func:`run_conversion` runs it on one file, or on every clip of a folder (with
:mod:`.batch`)."""

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from .helpers import (
    _finish,
    _precision_errors,
    check_input_file,
    check_output_path,
    make_generator,
    resolve_device,
    resolve_dtype,
)
from .loading import check_pipeline_dir, load_pipeline
from .progress import Progress


@dataclass
class Conversion:
    command: str  # "v2a"
    input_option: str  # "--video": the argparse dest is the name without dashes
    input_extensions: Sequence[str]  # the files of a folder that are inputs
    output_extensions: Callable[[Any], Sequence[str]]  # args -> accepted --out extensions; a folder writes the first
    pipeline_class: Callable[[], type]  # imported lazily: `av-link --help` must not import torch
    read: Callable[[str], Any]  # path -> decoded input
    sample: Callable[[Any, Any, Any, Any], Any]  # (pipe, args, input, generator) -> pipeline output
    write: Callable[[Any, Any, Any, Any, str], str]  # (pipe, args, input, output, path) -> what was written
    check: Optional[Callable[[Any, Any], None]] = None  # (pipe, args) -> raise CLIError if it cannot do the job
    # (args, path) -> what `read` takes instead of the path, started before the heavy imports and the model load
    # (V2A: the input decoding in the background, utils.media_stream.PrefetchedVideo)
    prefetch: Optional[Callable[[Any, str], Any]] = None

    def source(self, args) -> str:
        return getattr(args, self.input_option.lstrip("-"))


def convert_clip(conversion: Conversion, pipe, args, source: str, out: str, progress: Progress, generator) -> str:
    """Decode `source`, sample and write `out` (atomically: the writers publish a finished file or nothing);
    returns the summary of what was written. `pipe` is None in a single-file run: it is loaded after decoding, so
    a bad input fails before the (slow) model load."""
    with progress.stage("decoding", source):
        data = conversion.read(source)
    if pipe is None:
        pipe = load_clip_pipeline(conversion, args, progress)
    with _precision_errors(pipe.device, resolve_dtype(args.dtype)):
        output = conversion.sample(pipe, args, data, generator)
    with progress.stage("encoding", out):
        return conversion.write(pipe, args, data, output, out)


def load_clip_pipeline(conversion: Conversion, args, progress: Progress, device=None):
    device = device or resolve_device(args.device)
    pipe = load_pipeline(conversion.pipeline_class(), args.model, device, resolve_dtype(args.dtype))
    if conversion.check is not None:
        conversion.check(pipe, args)
    progress.sampling(pipe)
    return pipe


def run_conversion(conversion: Conversion, args) -> int:
    """The subcommand: a folder given as input runs every clip in it, a file runs that file."""
    if os.path.isdir(conversion.source(args)):
        from .batch import run_folder

        return run_folder(conversion, args)
    return _run_file(conversion, args)


def _run_file(conversion: Conversion, args) -> int:
    started = time.perf_counter()
    source = conversion.source(args)
    check_output_path(args.out, conversion.output_extensions(args), inputs=[source])
    check_input_file(source, conversion.input_option)
    if conversion.prefetch is not None:  # before torch and diffusers are imported: they overlap the decode
        source = conversion.prefetch(args, source)
    device = resolve_device(args.device)
    resolve_dtype(args.dtype)
    check_pipeline_dir(conversion.pipeline_class(), args.model)  # fail on a bad --model before the (slow) model load
    generator, args.seed_used = make_generator(args.seed, device)
    progress = Progress(conversion.command, enabled=not args.quiet)
    message = convert_clip(conversion, None, args, source, args.out, progress, generator)
    return _finish(args, message, started)
