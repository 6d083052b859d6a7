"""Precompute the VAE latents and text states of a dataset folder for Fusion training between diffusers backbones.

    python examples/cache_latents.py --audio_model LongCat-AudioDiT-1B-Diffusers --video_model Wan2.1-T2V-1.3B-Diffusers \
        --data_dir DATA --output_dir DATA_CACHE --clip_seconds 5.0
    accelerate launch examples/train_fusion.py --task v2a --audio_model ... --video_model ... --latent_cache DATA_CACHE ...

Each clip is cached as its first `--clip_seconds` (one fixed window), encoded by both families' VAEs exactly as
training from raw clips encodes it; each distinct caption (and "") by each family's text encoder. Safetensors shards
plus `index.json` (src/av_link/training/latent_cache.py). Rerunning the command resumes at the first missing shard;
a cache made with other models or settings is refused.
"""

import argparse
import sys

import torch

from av_link.training.fusion_latent import WEIGHT_DTYPES, clip_dataset, load_linked
from av_link.training.latent_cache import cache_identity, write_latent_cache
from av_link.training.modality_inputs import FamilyInputs


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio_model", required=True, help="a diffusers LongCatAudioDiTPipeline folder")
    parser.add_argument("--video_model", required=True, help="a diffusers WanPipeline folder")
    parser.add_argument("--data_dir", required=True, help="folder of clips with metadata.jsonl (or .csv)")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--clip_seconds", type=float, default=5.0, help="the cached window (train with the same)")
    parser.add_argument("--video_fps", type=float, default=None, help="Wan 2.1: 16 (default)")
    parser.add_argument("--height", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--max_sequence_length", type=int, default=None)
    parser.add_argument("--text_dtype", choices=["no", "bf16", "fp16"], default="no",
                        help="the text encoders' dtype: that of the training run's --mixed_precision (frozen weights "
                             "are stored in it), so the cached states are those training would compute")
    parser.add_argument("--shard_size", type=int, default=64, help="clips per safetensors shard")
    parser.add_argument("--decode_cache_dir", default=None, help="AVClipDataset's cache of decoded clips")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    settings = dict(video_fps=args.video_fps, height=args.height, width=args.width, max_sequence_length=args.max_sequence_length)
    audio_pipe, video_pipe, config, families = load_linked(args.audio_model, args.video_model,
                                                           WEIGHT_DTYPES.get(args.text_dtype, torch.float32), **settings)
    for pipe in (audio_pipe, video_pipe):
        pipe.vae.to(args.device)
        pipe.text_encoder.to(args.device)
    dataset = clip_dataset(args.data_dir, config, families, args.clip_seconds, random_crop=False, cache_dir=args.decode_cache_dir)
    msl = config["max_sequence_length"]
    inputs = {m: FamilyInputs(families[m], msl, torch.device(args.device)) for m in ("audio", "video")}
    identity = cache_identity(config, families, args.clip_seconds, msl)
    index = write_latent_cache(dataset, inputs, identity, args.output_dir, args.shard_size)
    print(f"cached {len(index['clips'])} clips in {args.output_dir}")


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"cache_latents: error: {error}")
