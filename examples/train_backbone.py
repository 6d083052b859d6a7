"""Train a text-to-audio or text-to-video flow-matching backbone (paper §3.2).

    accelerate launch examples/train_backbone.py --modality audio --data_dir DATA --output_dir t2a \
        --preset tiny --text_encoder tiny --max_train_steps 2000

Times t ~ logit-normal(0, 1), text dropped 10% of the time, AdamW (lr 3e-4, betas 0.9/0.99). The
output folder is a complete `AVLinkTextToAudioPipeline` / `AVLinkTextToVideoPipeline` (with a model
card) that `examples/train_fusion.py` loads.
"""

import argparse
import json
import logging
import os
import sys

import torch

from av_link import AVLinkAudioTransformer, AVLinkTextToAudioPipeline, AVLinkTextToVideoPipeline, AVLinkVideoTransformer
from av_link.data import AVClipDataset
from av_link.models.audio_frontend import AVLinkMelSpectrogram
from av_link.schedulers import FlowMatchEulerScheduler
from av_link.training.arguments import add_training_arguments, check_training_arguments
from av_link.training.loop import make_accelerator, train
from av_link.training.objectives import BackboneObjective, ObjectiveConfig
from av_link.training.setup import default_vocoder, load_text_encoder, training_info
from av_link.training.text import FrozenTextEncoder


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modality", choices=["audio", "video"], required=True)
    parser.add_argument("--preset", default="tiny", help="size preset: tiny, small or paper")
    parser.add_argument("--model_config", default="{}", help="JSON of constructor overrides, e.g. '{\"patch_size\": 4}'")
    parser.add_argument("--init_from", default=None,
                        help="start from this backbone: a pipeline folder (its text encoder and, for audio, its mel "
                             "normalisation come with it: the weights were trained on them) or a bare model folder")
    parser.add_argument("--text_encoder", default=None,
                        help='a local T5 encoder folder, or "tiny" for a random 2-layer one (default: "tiny", or the '
                             "--init_from pipeline's own)")
    parser.add_argument("--fps", type=float, default=6.0, help="video frame rate (video)")
    parser.add_argument("--height", type=int, default=None, help="video height (default 36, or the --init_from pipeline's)")
    parser.add_argument("--width", type=int, default=None, help="video width (default 64, or the --init_from pipeline's)")
    parser.add_argument("--text_dropout", type=float, default=0.1)
    parser.add_argument("--mel_stats_clips", type=int, default=64,
                        help="fit the mel normalisation (mean, std) on this many clips; 0 keeps the front end's defaults")
    parser.add_argument("--logit_mean", type=float, default=0.0)
    parser.add_argument("--logit_std", type=float, default=1.0)
    parser.add_argument("--energy_smoothness", type=float, default=0.0,
                        help="audio: weight of the loss on the frame-to-frame change of the clean mel's band-mean error")
    add_training_arguments(parser)
    args = parser.parse_args(argv)
    args.clip_seconds = args.clip_seconds or 5.16
    return args


def fit_mel_normalization(args, frontend):
    """The audio backbone models normalised log-mels; fit mean and std to the training data so they are ~N(0, 1)."""
    settings = {k: v for k, v in frontend.config.items() if not k.startswith("_")}
    raw = AVLinkMelSpectrogram(**{**settings, "mel_mean": 0.0, "mel_std": 1.0})
    probe = AVClipDataset(args.data_dir, mel_frontend=raw, clip_seconds=args.clip_seconds, random_crop=False,
                          modalities=("audio",), cache_dir=args.cache_dir, seed=args.seed, return_waveform=False)
    mels = torch.cat([probe[i]["mel"].flatten() for i in range(min(len(probe), args.mel_stats_clips))])
    mean, std = mels.mean().item(), mels.std().item()
    logging.info(f"mel normalisation fitted on {min(len(probe), args.mel_stats_clips)} clips: mean {mean:.3f}, std {std:.3f}")
    return AVLinkMelSpectrogram(**{**settings, "mel_mean": round(mean, 4), "mel_std": round(std, 4)})


def init_pipeline(args):
    """The --init_from folder loaded as a text-to-`modality` pipeline, or None (no --init_from, or a bare model folder)."""
    if not args.init_from or not os.path.isfile(os.path.join(args.init_from, "model_index.json")):
        return None
    cls = AVLinkTextToAudioPipeline if args.modality == "audio" else AVLinkTextToVideoPipeline
    return cls.from_pretrained(args.init_from)


def main(argv=None):
    args = parse_args(argv)
    check_training_arguments(args)
    logging.basicConfig(level=logging.INFO)
    accelerator = make_accelerator(args)
    init = init_pipeline(args)
    if init is not None and args.text_encoder is None:
        text_encoder, tokenizer = init.text_encoder, init.tokenizer
    else:
        text_encoder, tokenizer = load_text_encoder(args.text_encoder or "tiny", seed=args.seed)
    overrides = {"text_dim": text_encoder.config.d_model, **json.loads(args.model_config)}
    for name, default in (("height", 36), ("width", 64)):
        if getattr(args, name) is None:
            setattr(args, name, init.config[name] if init is not None and args.modality == "video" else default)
    if init is not None and args.modality == "audio":
        frontend = init.audio_frontend  # the normalisation the weights were trained on
    else:
        frontend = AVLinkMelSpectrogram()
        if args.modality == "audio" and args.mel_stats_clips > 0:  # a bare model folder keeps no normalisation
            frontend = fit_mel_normalization(args, frontend)
    if args.modality == "audio":
        cls, extra = AVLinkAudioTransformer, {"frame_rate": frontend.frames_per_second, "in_channels": frontend.config.n_mels}
    else:
        cls, extra = AVLinkVideoTransformer, {"frame_rate": args.fps}
    if init is not None:
        model = getattr(init, f"{args.modality}_transformer")
    else:
        model = cls.from_pretrained(args.init_from) if args.init_from else cls.from_preset(args.preset, **{**extra, **overrides})
    if model.config.text_dim != text_encoder.config.d_model:
        raise ValueError(f"the text encoder's width {text_encoder.config.d_model} != the model's text_dim {model.config.text_dim}")
    if args.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    dataset = AVClipDataset(
        args.data_dir, fps=model.config.frame_rate if args.modality == "video" else args.fps, height=args.height, width=args.width,
        mel_frontend=frontend, clip_seconds=args.clip_seconds, random_crop=True, modalities=(args.modality,),
        cache_dir=args.cache_dir, seed=args.seed, return_waveform=False, repeat_fps=args.repeat_fps,
    )
    encoder = FrozenTextEncoder(text_encoder, tokenizer).to(accelerator.device)
    cfg = ObjectiveConfig(seed=args.seed, logit_mean=args.logit_mean, logit_std=args.logit_std, generated_text_dropout=args.text_dropout,
                          energy_smoothness=args.energy_smoothness)
    objective = BackboneObjective(model, encoder, args.modality, cfg)
    trained = train(args, accelerator, objective, model, dataset, run_name=f"train_backbone_{args.modality}").model
    if accelerator.is_main_process:
        common = dict(scheduler=FlowMatchEulerScheduler(), text_encoder=text_encoder.cpu(), tokenizer=tokenizer, clip_seconds=args.clip_seconds)
        if args.modality == "audio":
            pipe = AVLinkTextToAudioPipeline(audio_transformer=trained.float().cpu(), audio_frontend=frontend,
                                             vocoder=default_vocoder(frontend), **common)
        else:
            pipe = AVLinkTextToVideoPipeline(video_transformer=trained.float().cpu(), height=args.height, width=args.width, **common)
        pipe.save_pretrained(args.output_dir, training_info=training_info(args, dataset, accelerator))
        accelerator.print(f"saved {type(pipe).__name__} to {args.output_dir}")


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"train_backbone: error: {error}")
