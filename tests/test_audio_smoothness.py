"""The audio backbone's two options against rippling decays: convolutional MLPs over neighbouring tokens
(`mlp_conv_kernel`) and the loss on the frame-to-frame change of the band-mean error (`energy_smoothness`)."""

import json
from types import SimpleNamespace

import pytest
import torch

from av_link import AVLinkAudioTransformer
from av_link.models.attention import ConvFeedForward, FeedForward
from av_link.schedulers import noisy_sample, velocity_target
from av_link.training.objectives import ObjectiveConfig, backbone_loss
from av_link.training.randomness import (
    per_sample_logit_normal,
    per_sample_randn,
    sample_generator,
)


def test_conv_mlp_starts_as_the_plain_mlp_and_then_mixes_only_neighbours():
    torch.manual_seed(0)
    plain, conv = FeedForward(16, 32), ConvFeedForward(16, 32, 3)
    conv[0].load_state_dict(plain[0].state_dict())
    conv[3].load_state_dict(plain[2].state_dict())
    x = torch.randn(2, 9, 16)
    torch.testing.assert_close(conv(x), plain(x))  # identity init: a new model starts as the plain one
    with torch.no_grad():
        conv[1].weight.normal_()
    changed = x.clone()
    changed[:, 4] += 1.0
    moved = (conv(changed) - conv(x)).abs().amax(dim=(0, 2))
    assert (moved[3:6] > 1e-4).all() and (moved[[0, 1, 2, 6, 7, 8]] == 0).all()  # kernel 3: tokens 3, 4, 5 only


def test_conv_mlp_kernel_is_checked_and_saved(tmp_path):
    with pytest.raises(ValueError, match="mlp_conv_kernel must be 1 .* or an odd number >= 3, got 2"):
        AVLinkAudioTransformer.from_preset("tiny", in_channels=8, mlp_conv_kernel=2)
    model = AVLinkAudioTransformer.from_preset("tiny", in_channels=8, patch_size=2, mlp_conv_kernel=3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    model.save_pretrained(tmp_path)
    loaded = AVLinkAudioTransformer.from_pretrained(tmp_path)
    assert loaded.config.mlp_conv_kernel == 3 and isinstance(loaded.blocks[0].mlp, ConvFeedForward)
    x, text = torch.randn(1, 11, 8), torch.randn(1, 4, 32)
    torch.testing.assert_close(loaded(x, 0.3, text).sample, model(x, 0.3, text).sample)
    # a folder saved before the option existed has no key: it loads with plain MLPs
    old = tmp_path / "old"
    AVLinkAudioTransformer.from_preset("tiny", in_channels=8).save_pretrained(old)
    config = json.loads((old / "config.json").read_text())
    del config["mlp_conv_kernel"]
    (old / "config.json").write_text(json.dumps(config))
    assert isinstance(AVLinkAudioTransformer.from_pretrained(old).blocks[0].mlp, FeedForward)


class FixedPrediction(torch.nn.Module):
    def __init__(self, prediction):
        super().__init__()
        self.prediction = prediction

    def forward(self, x, t, text, mask):
        return SimpleNamespace(sample=self.prediction)


def _batch(modality):
    shape = (3, 10, 8) if modality == "audio" else (3, 3, 2, 4, 4)
    key = "mel" if modality == "audio" else "video"
    return {key: torch.randn(*shape, generator=torch.Generator().manual_seed(1)), "index": torch.arange(3),
            "audio_caption": ["a", "b", "c"], "video_caption": ["a", "b", "c"]}


def _encode(captions):
    return torch.zeros(len(captions), 2, 32), torch.ones(len(captions), 2, dtype=torch.bool)


@pytest.mark.parametrize("modality", ["audio", "video"])
def test_energy_smoothness_adds_the_differenced_band_mean_error_of_the_clean_prediction(modality):
    batch = _batch(modality)
    x1 = batch["mel" if modality == "audio" else "video"]
    prediction = torch.randn(x1.shape, generator=torch.Generator().manual_seed(2))
    model = FixedPrediction(prediction)
    plain = backbone_loss(model, _encode, batch, modality, ObjectiveConfig(), epoch=0)
    smooth = backbone_loss(model, _encode, batch, modality, ObjectiveConfig(energy_smoothness=4.0), epoch=0)
    # the reference: the same per-sample noise and times the objective draws
    cfg = ObjectiveConfig()
    gens = lambda name: [sample_generator(cfg.seed, 0, i, name) for i in range(3)]  # noqa: E731
    noise = per_sample_randn(x1.shape[1:], gens(f"{modality}-noise"), x1.device, x1.dtype)
    t = per_sample_logit_normal(gens(f"{modality}-time"), 0.0, 1.0)
    error = prediction - velocity_target(x1, noise)
    torch.testing.assert_close(plain, error.pow(2).mean())
    if modality == "video":  # audio only
        torch.testing.assert_close(smooth, plain)
        return
    # the clean mel the prediction implies, x_t + (1 - t) v, against the data
    clean_error = noisy_sample(x1, noise, t) + (1 - t)[:, None, None] * prediction - x1
    level = clean_error.mean(dim=-1)
    expected = plain + 4.0 * (level[:, 1:] - level[:, :-1]).pow(2).mean()
    torch.testing.assert_close(smooth, expected)
    # a prediction whose error is the same in every frame adds nothing
    steady = velocity_target(x1, noise) + 0.5
    steady_loss = backbone_loss(FixedPrediction(steady), _encode, batch, modality, ObjectiveConfig(energy_smoothness=4.0), 0)
    assert torch.isclose(steady_loss, torch.tensor(0.25))
