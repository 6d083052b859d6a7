"""`av-link t2a` / `av-link t2v`: audio or video from text with one backbone alone."""

import time

from . import subcommand
from .arguments import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, add_text_arguments
from .helpers import (
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
from .progress import Progress


def _generate(args, name: str, pipeline_class: str, extensions, **length):
    from .. import pipelines

    started = time.perf_counter()
    check_output_path(args.out, extensions)
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    pipe = load_pipeline(getattr(pipelines, pipeline_class), args.model, device, dtype, accept=CROSS_MODAL)
    Progress(name, enabled=not args.quiet).sampling(pipe)
    generator, args.seed_used = make_generator(args.seed, device)
    with _precision_errors(device, dtype):
        out = pipe(generator=generator, **length, **_sampling_kwargs(args, conditioning=False))
    return pipe, out, started


@subcommand("t2a", help="generate audio from text with the audio backbone alone", arguments=add_text_arguments(AUDIO_EXTENSIONS))
def run_t2a(args) -> int:
    from ..utils.media_io import write_wav

    pipe, out, started = _generate(args, "t2a", "AVLinkTextToAudioPipeline", AUDIO_EXTENSIONS, audio_length_in_s=args.seconds)
    audio, rate = out.audios[0], out.sample_rate
    write_wav(args.out, audio, rate)
    vocoder = type(pipe.vocoder).__name__
    return _finish(args, f"wrote {args.out} ({_seconds(audio.shape[-1] / rate)} of audio at {rate} Hz, vocoder {vocoder})", started)


@subcommand("t2v", help="generate video from text with the video backbone alone", arguments=add_text_arguments(VIDEO_EXTENSIONS))
def run_t2v(args) -> int:
    from ..utils.media_io import write_video

    _, out, started = _generate(args, "t2v", "AVLinkTextToVideoPipeline", VIDEO_EXTENSIONS, duration_in_s=args.seconds)
    frames, fps = out.frames[0], out.fps
    write_video(args.out, frames, fps)
    return _finish(args, f"wrote {args.out} ({len(frames)} frames at {fps:g} fps, {_seconds(len(frames) / fps)}, no audio)", started)
