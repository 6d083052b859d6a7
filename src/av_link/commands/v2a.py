"""`av-link v2a`: the soundtrack of a video."""

import time

from . import CLIError, subcommand
from .arguments import (
    AUDIO_EXTENSIONS,
    VIDEO_EXTENSIONS,
    add_device_arguments,
    add_model_argument,
    add_output_argument,
    add_sampling_arguments,
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
    from ..pipelines import AVLinkV2APipeline
    from ..utils.media_io import mux_audio, write_wav
    from ..utils.media_stream import open_video

    started = time.perf_counter()
    check_output_path(args.out, AUDIO_EXTENSIONS if args.wav else VIDEO_EXTENSIONS, inputs=[args.video])
    check_input_file(args.video, "--video")
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    check_pipeline_dir(AVLinkV2APipeline, args.model)  # fail on a bad --model before decoding the video
    _, fps = open_video(args.video)  # probe only (cached): the pipeline decodes the file as a stream
    pipe = load_pipeline(AVLinkV2APipeline, args.model, device, dtype)
    if pipe.vocoder is None:
        raise CLIError(f"{args.model} has no vocoder, so it cannot produce a waveform")
    _configure_progress(pipe, args, "v2a")
    generator, args.seed_used = make_generator(args.seed, device)
    with _precision_errors(device, dtype):
        out = pipe(video=args.video, generator=generator, **_sampling_kwargs(args, conditioning=True))
    audio, rate = out.audios[0], out.sample_rate
    duration = audio.shape[-1] / rate
    vocoder = type(pipe.vocoder).__name__
    if args.wav:
        write_wav(args.out, audio, rate)
        return _finish(args, f"wrote {args.out} ({_seconds(duration)} of audio at {rate} Hz, vocoder {vocoder})", started)
    # the input's video stream is copied (re-encoded only if --out's container cannot hold it)
    how = mux_audio(args.out, args.video, audio, rate)  # clips to [-1, 1] like write_wav
    return _finish(
        args,
        f"wrote {args.out} (input video {'stream copied' if how == 'copy' else 're-encoded'}, {fps:g} fps, with "
        f"{_seconds(duration)} of generated audio at {rate} Hz, vocoder {vocoder})",
        started,
    )
