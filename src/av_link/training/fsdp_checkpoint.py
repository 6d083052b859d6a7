"""Checkpoints under FSDP that hold only what is trained.

accelerate's `save_state` saves an FSDP model whole: every rank writes its shard of every flat parameter, the frozen
backbones' included (gigabytes at Wan / LongCat scale, for weights that never change). Here the trained parameters
and their optimizer state are saved instead, each rank writing its own shards with `torch.distributed.checkpoint`
(no rank gathers the model), under the names the unwrapped model gives them. The rest of the checkpoint (scheduler,
RNG states, the frozen references and the EMA of `checkpointing.register_checkpoint_hooks`) is accelerate's as before.

    save_trained_sharded(model, optimizer, names, folder)   # every rank, collectively
    load_trained_sharded(model, optimizer, names, folder)
"""

import os

import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

TRAINED_SHARDED = "trained_sharded"  # the folder inside a checkpoint


def _trained_state(model, optimizer, names) -> dict:
    # get_state_dict gives sharded tensors under the unwrapped names; it also creates a fresh optimizer's state, so a
    # resume has the structure to load into
    model_state, optimizer_state = get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=False))
    missing = set(names) - model_state.keys()
    if missing:
        raise ValueError(f"the FSDP model has no parameters named {sorted(missing)[:5]}")
    return {"model": {name: model_state[name] for name in names}, "optimizer": optimizer_state}


def save_trained_sharded(model, optimizer, names, folder: str) -> None:
    """Every rank writes its shards of the parameters `names` and of the optimizer's state to `folder/trained_sharded`."""
    dcp.save(_trained_state(model, optimizer, names), checkpoint_id=os.path.join(folder, TRAINED_SHARDED))


def load_trained_sharded(model, optimizer, names, folder: str) -> None:
    """The inverse of `save_trained_sharded`; the frozen parameters are left as they are. One clear error if the
    checkpoint holds other parameters than `names`."""
    path = os.path.join(folder, TRAINED_SHARDED)
    if not os.path.isdir(path):
        raise ValueError(f"{folder} holds no {TRAINED_SHARDED}/ (it was not saved by an FSDP run of this version)")
    saved = {key.split(".", 1)[1] for key in dcp.FileSystemReader(path).read_metadata().state_dict_metadata
             if key.startswith("model.")}
    if saved != set(names):
        raise ValueError(f"{folder} trained other parameters than this run: missing {sorted(set(names) - saved)[:5]}, "
                         f"unexpected {sorted(saved - set(names))[:5]}")
    state = _trained_state(model, optimizer, names)
    dcp.load(state, checkpoint_id=path)
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"],
                   options=StateDictOptions(full_state_dict=False, strict=False))
