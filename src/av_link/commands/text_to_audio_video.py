"""`av-link t2av`: audio and video together from their texts (a joint model, docs/joint.md), written as one mp4."""

import time

from . import subcommand
from .arguments import (
    VIDEO_EXTENSIONS,
    add_device_arguments,
    add_model_argument,
    add_output_argument,
    non_negative_float,
    positive_float,
    positive_int,
    seed_int,
)
from .helpers import _finish, _precision_errors, _seconds, check_output_path, make_generator, resolve_device, resolve_dtype
from .loading import load_pipeline
from .progress import Progress


def _add_arguments(parser):
    add_model_argument(parser)
    add_output_argument(parser, VIDEO_EXTENSIONS)
    parser.add_argument("--seconds", type=positive_float, default=None, metavar="S",
                        help="duration to generate (default: the trained clip length)")
    group = parser.add_argument_group("sampling")
    group.add_argument("--audio-prompt", default=None, metavar="TEXT", help="text of the sound (default: empty)")
    group.add_argument("--video-prompt", default=None, metavar="TEXT", help="text of the picture (default: empty)")
    group.add_argument("--steps", type=positive_int, default=None, metavar="N", help="Euler steps (default: the pipeline config)")
    group.add_argument("--guidance", type=non_negative_float, default=None, metavar="SCALE",
                       help="classifier-free guidance scale on text (default: the pipeline config; 1 disables CFG)")
    group.add_argument("--gamma", type=float, default=None, metavar="G",
                       help="Ishii et al.'s timestep adjustment (default: the value the adapter was trained with)")
    group.add_argument("--seed", type=seed_int, default=None, metavar="N", help="random seed (default: a fresh one, printed)")
    group.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_arguments(parser)


@subcommand("t2av", help="generate audio and video together from text with a joint model", arguments=_add_arguments,
            description="Generate a video and its sound together from --audio-prompt and --video-prompt with a joint "
                        "model (AVLinkTextToAudioVideoPipeline, trained with train_fusion.py --task joint_generation) "
                        "and write both to one --out video file.")
def run_t2av(args) -> int:
    from .. import pipelines
    from ..utils.media_io import write_video

    started = time.perf_counter()
    check_output_path(args.out, VIDEO_EXTENSIONS)
    device, dtype = resolve_device(args.device), resolve_dtype(args.dtype)
    pipe = load_pipeline(pipelines.AVLinkTextToAudioVideoPipeline, args.model, device, dtype)
    Progress("t2av", enabled=not args.quiet).sampling(pipe)
    generator, args.seed_used = make_generator(args.seed, device)
    with _precision_errors(device, dtype):
        out = pipe(audio_prompt=args.audio_prompt, video_prompt=args.video_prompt, duration_in_s=args.seconds,
                   num_inference_steps=args.steps, guidance_scale=args.guidance, timestep_gamma=args.gamma,
                   generator=generator)
    frames, fps, audio, rate = out.frames[0], out.fps, out.audios[0], out.sample_rate
    write_video(args.out, frames, fps, audio=audio, sample_rate=rate)
    return _finish(args, f"wrote {args.out} ({len(frames)} frames at {fps:g} fps with {_seconds(audio.shape[-1] / rate)} "
                         f"of audio at {rate} Hz, made together)", started)
