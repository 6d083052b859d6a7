"""`av-link a2v`: a video for a sound."""

import time

from . import subcommand
from .arguments import (
    VIDEO_EXTENSIONS,
    add_device_arguments,
    add_model_argument,
    add_output_argument,
    add_sampling_arguments,
    even_size,
)
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
    group = parser.add_argument_group("output size")
    for name in ("height", "width"):
        group.add_argument(f"--{name}", type=even_size, default=None, metavar="PX",
                           help=f"{name} of the written video: the model's frames are upscaled (nearest pixel, so no "
                                f"new colours); give one of --height/--width to keep the aspect ratio (default: the "
                                f"model's size)")
    add_sampling_arguments(parser, conditioning=True)
    add_device_arguments(parser)


def display_size(model_height: int, model_width: int, height=None, width=None) -> tuple:
    """(height, width) to write: the requested size; one side given -> the other from the model's aspect ratio,
    rounded to an even number."""
    if height is None and width is None:
        return model_height, model_width
    if height is None:
        height = 2 * max(1, round(width * model_height / model_width / 2))
    if width is None:
        width = 2 * max(1, round(height * model_width / model_height / 2))
    return height, width


@subcommand(
    "a2v",
    help="generate a video for a sound",
    arguments=_add_a2v_arguments,
    description="Generate a video for --audio and write it with the input audio (as read: native channels, and "
                "native rate where AAC carries it, else the nearest rate above) muxed in.",
)
def run_a2v(args) -> int:
    from ..pipelines import AVLinkA2VPipeline
    from ..utils.media_io import aac_sample_rate, read_audio, write_video
    from ..utils.video_ops import resize_nearest

    started = time.perf_counter()
    check_output_path(args.out, VIDEO_EXTENSIONS, inputs=[args.audio])
    check_input_file(args.audio, "--audio")
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    check_pipeline_dir(AVLinkA2VPipeline, args.model)
    waveform, rate = read_audio(args.audio)
    pipe = load_pipeline(AVLinkA2VPipeline, args.model, device, dtype)
    size = display_size(pipe.config.height, pipe.config.width, args.height, args.width)
    _configure_progress(pipe, args, "a2v")
    generator, args.seed_used = make_generator(args.seed, device)
    with _precision_errors(device, dtype):
        out = pipe(audio=waveform, sample_rate=rate, generator=generator, **_sampling_kwargs(args, conditioning=True))
    frames, fps = out.frames[0], out.fps
    model_size = tuple(frames.shape[1:3])
    if size != model_size:
        frames = resize_nearest(frames, *size)
    write_video(args.out, frames, fps, audio=waveform, sample_rate=rate)
    upscaled = f", {size[0]}x{size[1]} px upscaled from {model_size[0]}x{model_size[1]}" if size != model_size else ""
    muxed = f", muxed at {aac_sample_rate(rate)} Hz (the nearest rate AAC carries)" if aac_sample_rate(rate) != rate else ""
    return _finish(
        args,
        f"wrote {args.out} ({len(frames)} generated frames at {fps:g} fps, {_seconds(len(frames) / fps)}{upscaled}, with "
        f"the input audio, {_seconds(waveform.shape[-1] / rate)} at {rate} Hz{muxed})",
        started,
    )
