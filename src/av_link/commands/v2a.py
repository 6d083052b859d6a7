"""`av-link v2a`: the soundtrack of a video (or of every video in a folder)."""

import os

from . import CLIError, subcommand
from .arguments import (
    AUDIO_EXTENSIONS,
    VIDEO_EXTENSIONS,
    VIDEO_INPUT_EXTENSIONS,
    add_device_arguments,
    add_model_argument,
    add_output_argument,
    add_sampling_arguments,
)
from .conversion import Conversion, run_conversion
from .helpers import _sampling_kwargs, _seconds


def _add_v2a_arguments(parser):
    add_model_argument(parser)
    parser.add_argument("--video", required=True, metavar="PATH",
                        help="input video (any format ffmpeg reads), or a folder of them")
    add_output_argument(parser, VIDEO_EXTENSIONS + AUDIO_EXTENSIONS, folder=True)
    parser.add_argument("--wav", action="store_true",
                        help="write the generated audio alone to --out (a .wav) instead of muxing it into the input video")
    add_sampling_arguments(parser, conditioning=True)
    add_device_arguments(parser)


def _pipeline_class():
    from ..pipelines import AVLinkV2APipeline

    return AVLinkV2APipeline


def _video_geometry(model: str):
    """(frame rate, height, width) the pipeline in `model` converts videos to, from its JSON files alone (no
    import of torch or diffusers); None when they do not say (the prefetch is then skipped)."""
    import json

    try:
        with open(os.path.join(model, "model_index.json")) as f:
            index = json.load(f)
        fps = index.get("video_fps")  # a diffusers video backbone's pixel rate (Wan's config has none)
        if fps is None:
            folder = os.path.join(model, "video_transformer")
            if not os.path.isdir(folder) and index.get("_components_from"):  # an adapter-only folder
                folder = os.path.join(model, index["_components_from"], "video_transformer")
            with open(os.path.join(folder, "config.json")) as f:
                fps = json.load(f)["frame_rate"]
        return float(fps), int(index["height"]), int(index["width"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _prefetch(args, path):
    """The input decoding at the model's rate and size in the background, from now on (the pipeline decodes it
    again only if its geometry turns out to differ)."""
    from ..utils.media_stream import PrefetchedVideo

    geometry = _video_geometry(args.model)
    return path if geometry is None else PrefetchedVideo(path, *geometry)


def _read(path):
    from ..utils.media_stream import open_video

    _, fps = open_video(path)  # probe only (cached): the pipeline decodes the file as a stream
    return path, fps


def _check(pipe, args):
    try:
        pipe.family("audio").check_output("np")  # av-link's mel backbones need a vocoder; latent ones decode with their VAE
    except ValueError:
        raise CLIError(f"{args.model} has no vocoder, so it cannot produce a waveform") from None


def _decoder(pipe) -> str:
    """What turned the generated audio into a waveform, for the summary line."""
    if getattr(pipe, "vocoder", None) is not None:
        return f"vocoder {type(pipe.vocoder).__name__}"
    return f"decoded by {type(pipe.audio_vae).__name__}"


def _sample(pipe, args, source, generator):
    video_path, _ = source
    return pipe(video=video_path, generator=generator, **_sampling_kwargs(args, conditioning=True))


def _write(pipe, args, source, out, path) -> str:
    from ..utils.media_io import mux_audio, write_wav

    (video_path, fps), audio, rate = source, out.audios[0], out.sample_rate
    duration = audio.shape[-1] / rate
    decoder = _decoder(pipe)
    if args.wav:
        write_wav(path, audio, rate)
        return f"wrote {path} ({_seconds(duration)} of audio at {rate} Hz, {decoder})"
    # the input's video stream is copied (re-encoded only if the output container cannot hold it)
    how = mux_audio(path, os.fspath(video_path), audio, rate)  # clips to [-1, 1] like write_wav
    return (f"wrote {path} (input video {'stream copied' if how == 'copy' else 're-encoded'}, {fps:g} fps, with "
            f"{_seconds(duration)} of generated audio at {rate} Hz, {decoder})")


V2A = Conversion(
    command="v2a", input_option="--video", input_extensions=VIDEO_INPUT_EXTENSIONS,
    output_extensions=lambda args: AUDIO_EXTENSIONS if args.wav else VIDEO_EXTENSIONS,
    pipeline_class=_pipeline_class, read=_read, sample=_sample, write=_write, check=_check, prefetch=_prefetch,
)


@subcommand(
    "v2a",
    help="generate the soundtrack of a video",
    arguments=_add_v2a_arguments,
    description="Generate audio for --video and write the input video (its own frames and frame rate) with the "
                "generated audio muxed in, or with --wav the audio alone. With a folder as --video, every video in it "
                "goes to the folder --out (split across processes under `accelerate launch`; existing outputs are "
                "skipped; a summary is written there).",
)
def run_v2a(args) -> int:
    return run_conversion(V2A, args)
