"""LoRA options of the Fusion Block script: the paper's "w/FT" variants (backbones fine-tuned alongside the Fusion
Blocks, paper Table 5) done cheaply, or a cheap fine-tune of already trained Fusion Blocks.

A LoRA leaves the base weights untouched, so the saved pipeline keeps the frozen backbones (and, for the
"fusion" target, the starting adapter) and the LoRA goes beside them in `pytorch_lora_weights.safetensors`,
which `pipe.load_lora_weights(folder)` applies.
"""

import argparse

LORA_TARGETS = ("fusion", "audio", "video")
DEFAULT_LORA_LAYERS = "to_q,to_k,to_v,to_out"


def add_lora_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    g = parser.add_argument_group("LoRA")
    g.add_argument("--lora_targets", nargs="+", choices=LORA_TARGETS, default=[],
                   help="train a LoRA on these models: audio / video (the frozen backbones; the Fusion Blocks still train "
                        "in full) or fusion (the Fusion Blocks from --adapter_model, frozen under the LoRA)")
    g.add_argument("--lora_rank", type=int, default=16)
    g.add_argument("--lora_alpha", type=float, default=None, help="LoRA scale numerator (default: the rank, a scale of 1)")
    g.add_argument("--lora_layers", default=DEFAULT_LORA_LAYERS,
                   help="comma-separated names of the linear layers to adapt in each target (default: the attention projections)")
    return parser


def check_lora_arguments(args) -> None:
    if not args.lora_targets:
        return
    if args.lora_rank < 1:
        raise ValueError(f"--lora_rank must be positive, got {args.lora_rank}")
    if not [name for name in args.lora_layers.split(",") if name.strip()]:
        raise ValueError("--lora_layers names no layer")
    if "fusion" in args.lora_targets and not args.adapter_model:
        raise ValueError("--lora_targets fusion adapts trained Fusion Blocks: pass them with --adapter_model (a LoRA on "
                         "fresh blocks cannot learn, their zero-initialised gates stay frozen)")


def add_lora_adapters(models: dict, args) -> None:
    """Freeze every targeted model (`models`: target name -> model) and give it a trainable LoRA named "default",
    initialised to leave the model's output unchanged."""
    from peft import LoraConfig

    layers = [name.strip() for name in args.lora_layers.split(",") if name.strip()]
    config = LoraConfig(r=args.lora_rank, lora_alpha=args.lora_alpha or args.lora_rank, target_modules=layers)
    for target in args.lora_targets:
        models[target].requires_grad_(False)
        models[target].add_adapter(config)


def lora_training_info(args) -> dict:
    """What the model card says about the LoRA, including how to apply it."""
    if not args.lora_targets:
        return {}
    return {"LoRA": f"rank {args.lora_rank}, alpha {args.lora_alpha or args.lora_rank}, on {', '.join(args.lora_targets)} "
                    f"({args.lora_layers}); apply it with `pipe.load_lora_weights(\"<this folder>\")`"}
