"""`av-link t2v`: video from text with the video backbone alone."""

import time

from . import subcommand
from .arguments import VIDEO_EXTENSIONS, add_text_arguments
from .helpers import (
    _configure_progress,
    _finish,
    _precision_errors,
    _sampling_kwargs,
    _seconds,
    check_output_path,
    make_generator,
    resolve_device,
    resolve_dtype,
)
from .loading import CROSS_MODAL, load_pipeline


@subcommand("t2v", help="generate video from text with the video backbone alone", arguments=add_text_arguments(VIDEO_EXTENSIONS))
def run_t2v(args) -> int:
    from ..pipelines import AVLinkTextToVideoPipeline
    from ..utils.media_io import write_video

    started = time.perf_counter()
    check_output_path(args.out, VIDEO_EXTENSIONS)
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    pipe = load_pipeline(AVLinkTextToVideoPipeline, args.model, device, dtype, accept=CROSS_MODAL)
    _configure_progress(pipe, args, "t2v")
    generator, args.seed_used = make_generator(args.seed, device)
    with _precision_errors(device, dtype):
        out = pipe(duration_in_s=args.seconds, generator=generator, **_sampling_kwargs(args, conditioning=False))
    frames, fps = out.frames[0], out.fps
    write_video(args.out, frames, fps)
    return _finish(args, f"wrote {args.out} ({len(frames)} frames at {fps:g} fps, {_seconds(len(frames) / fps)}, no audio)", started)
