"""The training loop's fault handling, in process on toy objectives."""

import argparse
import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
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


class WithFrozen(Objective):
    """A trained weight beside a frozen module, like Fusion Blocks between frozen backbones."""

    def __init__(self, frozen_seed=0):
        super().__init__()
        self.backbone = torch.nn.Linear(3, 3).requires_grad_(False)
        torch.nn.init.normal_(self.backbone.weight, generator=torch.Generator().manual_seed(frozen_seed))


def _run(tmp_path, out, objective=None, **kw):
    args = _args(tmp_path, output_dir=str(tmp_path / out), use_ema=True, checkpointing_steps=2, **kw)
    objective = objective or WithFrozen()
    train(args, make_accelerator(args), objective, objective, Toy())
    return objective


def test_a_checkpoint_holds_the_trained_weights_their_ema_and_frozen_references(tmp_path):
    _run(tmp_path, "run", max_train_steps=2)
    ckpt = tmp_path / "run" / "checkpoint-2"
    assert {p.name for p in ckpt.iterdir()} == {"model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl",
                                                 "train_state.json", "frozen_modules.json", "ema.safetensors", "ema.json"}
    assert set(load_file(str(ckpt / "model.safetensors"))) == set(load_file(str(ckpt / "ema.safetensors"))) == {"w"}
    assert json.loads((ckpt / "ema.json").read_text())["optimization_step"] == 2
    assert set(json.loads((ckpt / "frozen_modules.json").read_text())) == {"backbone"}
    with pytest.raises(ValueError, match=r"other frozen weights: backbone \(checkpoint: None sha256 \w{12}; this run: None sha256"):
        _run(tmp_path, "run", WithFrozen(frozen_seed=1), max_train_steps=4, resume_from_checkpoint="latest")


def test_resume_with_ema_is_exact(tmp_path):
    straight = _run(tmp_path, "straight", max_train_steps=4)
    _run(tmp_path, "resumed", max_train_steps=2)
    resumed = _run(tmp_path, "resumed", max_train_steps=4, resume_from_checkpoint="latest")
    assert torch.equal(straight.w, resumed.w) and not torch.equal(straight.w, WithFrozen().w)  # the EMA weights, copied in
    assert len(resumed.history) == 2  # only steps 3 and 4 ran


def test_no_pickle_loads_of_untrusted_state(tmp_path):
    root = Path(__file__).resolve().parents[1]
    sources = [p for d in ("src", "examples") for p in (root / d).rglob("*.py")]
    assert sources and not [p for p in sources if "weights_only=False" in p.read_text() or "register_for_checkpointing" in p.read_text()]
