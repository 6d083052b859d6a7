"""The training loop's fault handling, in process on toy objectives."""

import argparse
import logging

import pytest
import torch
from torch.utils.data import Dataset

from av_link.training.arguments import add_training_arguments
from av_link.training.checkpointing import list_checkpoints, resolve_resume
from av_link.training.loop import EpochShuffleSampler, make_accelerator, train


class Toy(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return {"x": torch.full((3,), float(i + 1)), "index": i}


class Objective(torch.nn.Module):
    def __init__(self, bad_steps=()):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3))
        self.bad_steps, self.history = set(bad_steps), []

    def forward(self, batch, epoch, step):
        self.history.append(self.w.detach().clone())
        loss = (self.w * batch["x"]).square().mean()
        return loss * float("nan") if step in self.bad_steps else loss


def _args(tmp_path, **kw):
    parser = add_training_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--data_dir", str(tmp_path), "--output_dir", str(tmp_path / "out"), "--report_to", "none",
                              "--lr_warmup_steps", "0", "--train_batch_size", "2", "--checkpointing_steps", "100"])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def test_a_nonfinite_loss_skips_the_update_with_a_warning(tmp_path, caplog):
    args = _args(tmp_path, max_train_steps=4)
    objective = Objective(bad_steps={1})
    with caplog.at_level(logging.WARNING, logger="av_link.training"):
        train(args, make_accelerator(args), objective, objective, Toy())
    assert "non-finite loss, update skipped" in caplog.text
    assert torch.equal(objective.history[1], objective.history[2])  # step 1 changed nothing
    assert not torch.equal(objective.history[0], objective.history[1])


def test_too_many_nonfinite_losses_stop_the_run(tmp_path):
    args = _args(tmp_path, max_train_steps=10, max_nonfinite_steps=3)
    objective = Objective(bad_steps={2, 3, 4, 5})
    with pytest.raises(RuntimeError, match="3 non-finite losses in a row at step 5"):
        train(args, make_accelerator(args), objective, objective, Toy())


def test_dataset_smaller_than_a_batch_is_refused(tmp_path):
    args = _args(tmp_path, max_train_steps=1, train_batch_size=16)
    objective = Objective()
    with pytest.raises(ValueError, match="fewer than one global batch"):
        train(args, make_accelerator(args), objective, objective, Toy())


def test_sampler_is_a_seeded_permutation_per_epoch():
    sampler = EpochShuffleSampler(10, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(10)) and list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_checkpoint_listing_ignores_incomplete_saves(tmp_path):
    for name, complete in (("checkpoint-2", True), ("checkpoint-10", True), (".checkpoint-12.tmp", True), ("checkpoint-11", False)):
        (tmp_path / name).mkdir()
        if complete:
            (tmp_path / name / "train_state.json").write_text("{}")
    assert [p.split("/")[-1] for p in list_checkpoints(str(tmp_path))] == ["checkpoint-2", "checkpoint-10"]
    assert resolve_resume(str(tmp_path), "latest").endswith("checkpoint-10")
    with pytest.raises(ValueError, match="is not a complete checkpoint"):
        resolve_resume(str(tmp_path), "checkpoint-11")
