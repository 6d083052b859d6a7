"""`av-link a2v`: a video for a sound."""

import time

from . import subcommand
from .arguments import VIDEO_EXTENSIONS, add_device_arguments, add_model_argument, add_output_argument, add_sampling_arguments
from .helpers import (
    _configure_progress,
    _finish,
    _precision_errors,
    _sampling_kwargs,
    _seconds,
    check_input_file,
    check_output_path,
    make_generator,
    resolve_device,
    resolve_dtype,
)
from .loading import check_pipeline_dir, load_pipeline


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
    from ..pipelines import AVLinkA2VPipeline
    from ..utils.media_io import read_audio, write_video

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
