"""The dtype a model computes in, which under layerwise casting is not the dtype its weights are stored in."""

import torch
from torch import nn


def compute_dtype(layer: nn.Module) -> torch.dtype:
    """`layer`'s compute dtype: the `compute_dtype` of a diffusers layerwise-casting hook on it, else its weight's dtype.

    Models read it from a layer their `_skip_layerwise_casting_patterns` keep out of casting (so it is the weight's
    dtype unless someone hooked that layer directly). `ModelMixin.dtype` answers the same question by walking
    every module, which costs milliseconds per call at paper scale: too slow for every model call."""
    registry = getattr(layer, "_diffusers_hook", None)
    hook = registry.get_hook("layerwise_casting") if registry is not None else None
    return hook.compute_dtype if hook is not None else layer.weight.dtype
