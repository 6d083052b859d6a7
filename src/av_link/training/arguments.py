"""Command-line options shared by `examples/train_backbone.py` and `examples/train_fusion.py`."""

import argparse


def add_training_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    g = parser.add_argument_group("data")
    g.add_argument("--data_dir", default=None, help="folder of clips with metadata.jsonl (or .csv); required unless a "
                   "script's --latent_cache replaces it")
    g.add_argument("--cache_dir", default=None, help="cache decoded clips here so later epochs skip decoding")
    g.add_argument("--clip_seconds", type=float, default=None, help="training window length (default: the model's)")
    g.add_argument("--repeat_fps", default=None, type=parse_repeat_fps,
                   help='list clips by their video\'s native rate N times, e.g. "8=3" or "8=3,12=2" (AVClipDatasetConfig.repeat_fps)')
    g.add_argument("--dataloader_num_workers", type=int, default=0)
    g = parser.add_argument_group("optimisation (defaults: the paper's AdamW settings)")
    g.add_argument("--output_dir", required=True)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--train_batch_size", type=int, default=4, help="per device")
    g.add_argument("--max_train_steps", type=int, default=1000)
    g.add_argument("--gradient_accumulation_steps", type=int, default=1)
    g.add_argument("--learning_rate", type=float, default=3e-4)
    g.add_argument("--adam_beta1", type=float, default=0.9)
    g.add_argument("--adam_beta2", type=float, default=0.99)
    g.add_argument("--adam_epsilon", type=float, default=1e-8)
    g.add_argument("--adam_weight_decay", type=float, default=0.01)
    g.add_argument("--lr_scheduler", default="constant_with_warmup", help="any diffusers.optimization scheduler name")
    g.add_argument("--lr_warmup_steps", type=int, default=10000)
    g.add_argument("--max_grad_norm", type=float, default=1.0)
    g.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], default=None, help="overrides accelerate's config")
    g.add_argument("--gradient_checkpointing", action="store_true")
    g.add_argument("--use_ema", action="store_true")
    g.add_argument("--ema_decay", type=float, default=0.999)
    g.add_argument("--max_nonfinite_steps", type=int, default=10, help="stop after this many non-finite losses in a row")
    g = parser.add_argument_group("checkpoints and logging")
    g.add_argument("--checkpointing_steps", type=int, default=500)
    g.add_argument("--checkpoints_total_limit", type=int, default=None)
    g.add_argument("--resume_from_checkpoint", default=None, help='a checkpoint folder, or "latest"')
    g.add_argument("--report_to", default="tensorboard", choices=["tensorboard", "none"])
    g.add_argument("--logging_steps", type=int, default=10)
    return parser


def parse_repeat_fps(text: str) -> dict:
    """'8=3,12=2' -> {8.0: 3, 12.0: 2}."""
    try:
        pairs = [part.split("=") for part in text.split(",") if part.strip()]
        out = {float(rate): int(n) for rate, n in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected RATE=COUNT[,RATE=COUNT...], e.g. 8=3, got {text!r}") from None
    if not out or any(rate <= 0 or n < 1 for rate, n in out.items()):
        raise argparse.ArgumentTypeError(f"rates must be > 0 and counts >= 1, got {text!r}")
    return out


def check_training_arguments(args) -> None:
    import os

    if args.data_dir is None:
        if getattr(args, "latent_cache", None) is None:
            raise ValueError("--data_dir is required")
    elif not os.path.isdir(args.data_dir):
        raise ValueError(f"--data_dir {args.data_dir} does not exist")
    for name in ("train_batch_size", "max_train_steps", "gradient_accumulation_steps", "checkpointing_steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be positive, got {getattr(args, name)}")
    if args.learning_rate <= 0:
        raise ValueError(f"--learning_rate must be positive, got {args.learning_rate}")
    if args.checkpoints_total_limit is not None and args.checkpoints_total_limit < 1:
        raise ValueError("--checkpoints_total_limit must be positive")
