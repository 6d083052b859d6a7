"""`av-link t2a`: audio from text with the audio backbone alone."""

import time

from . import subcommand
from .arguments import AUDIO_EXTENSIONS, add_text_arguments
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


@subcommand("t2a", help="generate audio from text with the audio backbone alone", arguments=add_text_arguments(AUDIO_EXTENSIONS))
def run_t2a(args) -> int:
    from ..pipelines import AVLinkTextToAudioPipeline
    from ..utils.media_io import write_wav

    started = time.perf_counter()
    check_output_path(args.out, AUDIO_EXTENSIONS)
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    pipe = load_pipeline(AVLinkTextToAudioPipeline, args.model, device, dtype, accept=CROSS_MODAL)
    _configure_progress(pipe, args, "t2a")
    generator, args.seed_used = make_generator(args.seed, device)
    with _precision_errors(device, dtype):
        out = pipe(audio_length_in_s=args.seconds, generator=generator, **_sampling_kwargs(args, conditioning=False))
    audio, rate = out.audios[0], out.sample_rate
    write_wav(args.out, audio, rate)
    vocoder = type(pipe.vocoder).__name__
    return _finish(args, f"wrote {args.out} ({_seconds(audio.shape[-1] / rate)} of audio at {rate} Hz, vocoder {vocoder})", started)
