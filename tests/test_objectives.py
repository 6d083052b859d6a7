"""The Fusion Block objective's prompt dropout: which captions reach the text encoder, drawn per sample."""

import argparse

import pytest
import torch

from av_link.training.objectives import ObjectiveConfig, fusion_loss, fusion_objective_config

CAPTIONS = {"audio_caption": [f"sound {i}" for i in range(64)], "video_caption": [f"picture {i}" for i in range(64)]}


def captions_seen(tiny_models, cfg: ObjectiveConfig, task: str = "v2a") -> dict:
    """The captions fusion_loss encodes per modality, for a batch of 64."""
    audio, video, adapter = tiny_models
    seen = {}

    class Recording:
        def __init__(self, modality):
            self.modality = modality

        def signal(self, batch):
            return batch["mel"] if self.modality == "audio" else batch["video"]

        def encode_text(self, captions):
            seen[self.modality] = captions
            return torch.zeros(len(captions), 3, 32), torch.ones(len(captions), 3, dtype=torch.bool)

    batch = dict(CAPTIONS, index=torch.arange(64), mel=torch.randn(64, 24, 8), video=torch.randn(64, 3, 4, 4, 4))
    with torch.no_grad():
        fusion_loss(audio, video, adapter, {m: Recording(m) for m in ("audio", "video")}, batch, task, cfg, epoch=0)
    return seen


def test_paired_dropout_empties_both_prompts_of_the_same_samples(tiny_models):
    base = captions_seen(tiny_models, ObjectiveConfig(generated_text_dropout=0.0, conditioning_text_dropout=0.0))
    assert base == {"audio": CAPTIONS["audio_caption"], "video": CAPTIONS["video_caption"]}
    paired = captions_seen(tiny_models, ObjectiveConfig(generated_text_dropout=0.0, conditioning_text_dropout=0.0,
                                                        paired_text_dropout=0.5))
    empty = {m: [c == "" for c in paired[m]] for m in paired}
    assert empty["audio"] == empty["video"]  # together, never one alone
    assert 16 <= sum(empty["audio"]) <= 48  # about half of 64
    # the draws are the sample's own: the same samples again give the same drops
    again = captions_seen(tiny_models, ObjectiveConfig(generated_text_dropout=0.0, conditioning_text_dropout=0.0,
                                                       paired_text_dropout=0.5))
    assert again == paired


def test_paired_dropout_adds_to_the_per_modality_drops_without_changing_them(tiny_models):
    cfg = dict(generated_text_dropout=0.5, conditioning_text_dropout=0.2)
    alone = captions_seen(tiny_models, ObjectiveConfig(**cfg))
    paired = captions_seen(tiny_models, ObjectiveConfig(**cfg, paired_text_dropout=0.3))
    for modality in ("audio", "video"):
        # every caption dropped without it is dropped with it (its own draws are unchanged), and more are
        assert all(p == "" for a, p in zip(alone[modality], paired[modality]) if a == "")
        assert sum(p == "" for p in paired[modality]) > sum(a == "" for a in alone[modality])
    both = sum(a == "" and v == "" for a, v in zip(paired["audio"], paired["video"]))
    both_alone = sum(a == "" and v == "" for a, v in zip(alone["audio"], alone["video"]))
    assert both > both_alone


def test_dropout_arguments_must_be_probabilities():
    args = argparse.Namespace(seed=0, logit_mean=-1.0, logit_std=1.0, generated_text_dropout=0.5,
                              conditioning_text_dropout=0.2, paired_text_dropout=1.5)
    with pytest.raises(ValueError, match="--paired_text_dropout must be a probability"):
        fusion_objective_config(args)
    args.paired_text_dropout = 0.25
    assert fusion_objective_config(args).paired_text_dropout == 0.25
