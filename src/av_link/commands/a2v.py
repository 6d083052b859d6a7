"""`av-link a2v`: a video for a sound (or for every sound in a folder)."""

from . import subcommand
from .arguments import (
    AUDIO_INPUT_EXTENSIONS,
    VIDEO_EXTENSIONS,
    add_device_arguments,
    add_model_argument,
    add_output_argument,
    add_sampling_arguments,
    even_size,
)
from .conversion import Conversion, run_conversion
from .helpers import _sampling_kwargs, _seconds


def _add_a2v_arguments(parser):
    add_model_argument(parser)
    parser.add_argument("--audio", required=True, metavar="PATH",
                        help="input audio: a wav or any file with an audio track (e.g. a video), or a folder of them")
    add_output_argument(parser, VIDEO_EXTENSIONS, folder=True)
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


def _pipeline_class():
    from ..pipelines import AVLinkA2VPipeline

    return AVLinkA2VPipeline


def _read(path):
    from ..utils.media_io import read_audio

    return read_audio(path)


def _sample(pipe, args, source, generator):
    waveform, rate = source
    return pipe(audio=waveform, sample_rate=rate, generator=generator, **_sampling_kwargs(args, conditioning=True))


def _write(pipe, args, source, out, path) -> str:
    from ..utils.media_io import aac_sample_rate, write_video
    from ..utils.video_ops import resize_nearest

    (waveform, rate), frames, fps = source, out.frames[0], out.fps
    size = display_size(pipe.config.height, pipe.config.width, args.height, args.width)
    model_size = tuple(frames.shape[1:3])
    if size != model_size:
        frames = resize_nearest(frames, *size)
    write_video(path, frames, fps, audio=waveform, sample_rate=rate)
    upscaled = f", {size[0]}x{size[1]} px upscaled from {model_size[0]}x{model_size[1]}" if size != model_size else ""
    muxed = f", muxed at {aac_sample_rate(rate)} Hz (the nearest rate AAC carries)" if aac_sample_rate(rate) != rate else ""
    return (f"wrote {path} ({len(frames)} generated frames at {fps:g} fps, {_seconds(len(frames) / fps)}{upscaled}, "
            f"with the input audio, {_seconds(waveform.shape[-1] / rate)} at {rate} Hz{muxed})")


A2V = Conversion(
    command="a2v", input_option="--audio", input_extensions=AUDIO_INPUT_EXTENSIONS,
    output_extensions=lambda args: VIDEO_EXTENSIONS,
    pipeline_class=_pipeline_class, read=_read, sample=_sample, write=_write,
)


@subcommand(
    "a2v",
    help="generate a video for a sound",
    arguments=_add_a2v_arguments,
    description="Generate a video for --audio and write it with the input audio (as read: native channels, and "
                "native rate where AAC carries it, else the nearest rate above) muxed in. With a folder as --audio, "
                "every sound in it goes to the folder --out (split across processes under `accelerate launch`; "
                "existing outputs are skipped; a summary is written there).",
)
def run_a2v(args) -> int:
    return run_conversion(A2V, args)
