"""Tiny random av-link models, fixed inputs and one way to run each, shared by the model contract and LoRA tests.

The "adapter" case runs the Fusion adapter through `joint_forward` between the two random backbones.
"""

import torch

from av_link import AVLinkAudioTransformer, AVLinkFusionAdapter, AVLinkVideoTransformer
from av_link.models.joint import joint_forward

from conftest import randomize_

KINDS = ["audio", "video", "adapter"]
# Separately built models with equal weights can differ by an ulp (CPU kernels pick SIMD paths by alignment).
CLOSE = dict(rtol=1e-5, atol=1e-5)


def build_models():
    audio = AVLinkAudioTransformer.from_preset("tiny", in_channels=8, patch_size=2, frame_rate=12.0)
    video = AVLinkVideoTransformer.from_preset("tiny", patch_size=(1, 2, 2), frame_rate=6.0)
    adapter = AVLinkFusionAdapter.from_preset("tiny", time_bias=True)  # the time bias exercises the logit-bias path
    return {k: randomize_(m, std=0.1, seed=i).eval() for i, (k, m) in enumerate(dict(audio=audio, video=video, adapter=adapter).items())}


def make_inputs(batch=2):
    g = torch.Generator().manual_seed(7)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]][:batch], dtype=torch.bool)
    return dict(audio=torch.randn(batch, 12, 8, generator=g), video=torch.randn(batch, 3, 4, 8, 8, generator=g),
                text=torch.randn(batch, 5, 32, generator=g), mask=mask, t_a=torch.tensor([0.3, 0.7][:batch]), t_v=0.96)


def run(kind, models, x, fn=joint_forward):
    """The outputs of model `kind`: a backbone's velocity, or both velocities of the joint forward."""
    if kind == "audio":
        return (models["audio"](x["audio"], x["t_a"], x["text"], x["mask"]).sample,)
    if kind == "video":
        return (models["video"](x["video"], x["t_v"], x["text"], x["mask"]).sample,)
    out = fn(models["audio"], models["video"], models["adapter"], x["audio"], x["video"], x["t_a"], x["t_v"],
             x["text"], x["text"], x["mask"], x["mask"])
    return out.audio, out.video


def assert_outputs(actual, expected, **tolerance):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, **tolerance)


def reference(kind, x):
    with torch.no_grad():
        return run(kind, build_models(), x)
