"""Crash-safe training checkpoints on top of `accelerator.save_state`.

A checkpoint is written to a hidden temporary folder and renamed into place only when complete, so a
process killed mid-save leaves the previous checkpoint as the latest loadable one. `train_state.json`
records where in the data the run stood.

A checkpoint holds only what training changes (docs/training.md): accelerate's `model.safetensors` keeps
just the trained parameters (under FSDP, `trained_sharded/` holds each rank's shards of them and of their
optimizer state), the EMA goes to `ema.safetensors` + `ema.json`, and the frozen modules (backbones, a LoRA's
base weights) are referenced by source and sha256 in `frozen_modules.json`, so a resume against other frozen
weights fails instead of silently training a mismatched adapter.
"""

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .fsdp_checkpoint import load_trained_sharded, save_trained_sharded

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
FROZEN_FILE, EMA_WEIGHTS, EMA_CONFIG = "frozen_modules.json", "ema.safetensors", "ema.json"
logger = logging.getLogger("av_link.training")


def list_checkpoints(output_dir: str) -> list[str]:
    """Complete checkpoints, oldest first."""
    if not os.path.isdir(output_dir):
        return []
    found = [(int(m.group(1)), name) for name in os.listdir(output_dir) if (m := CHECKPOINT.match(name))]
    return [os.path.join(output_dir, name) for _, name in sorted(found)
            if os.path.isfile(os.path.join(output_dir, name, "train_state.json"))]


def resolve_resume(output_dir: str, resume: str | None) -> str | None:
    if not resume:
        return None
    if resume == "latest":
        checkpoints = list_checkpoints(output_dir)
        return checkpoints[-1] if checkpoints else None
    path = resume if os.path.isabs(resume) or os.path.isdir(resume) else os.path.join(output_dir, resume)
    if not os.path.isfile(os.path.join(path, "train_state.json")):
        raise ValueError(f"--resume_from_checkpoint {resume}: {path} is not a complete checkpoint")
    return path


@contextlib.contextmanager
def _accelerate_state_without_model(accelerator, fsdp_trained):
    """Under FSDP accelerate would save and load the model whole (frozen backbones included) and its optimizer through
    it: hide both from `save_state` / `load_state`, which keep the scheduler, RNG states and the hooks' files, and
    let `fsdp_checkpoint` handle the trained parameters and their optimizer state."""
    if fsdp_trained is None:
        yield
        return
    held = accelerator._models, accelerator._optimizers
    accelerator._models, accelerator._optimizers = [], []
    try:
        yield
    finally:
        accelerator._models, accelerator._optimizers = held


def save_checkpoint(accelerator, output_dir: str, step: int, state: dict, total_limit: int | None, fsdp_trained=None) -> str:
    """`fsdp_trained`: (prepared model, optimizer, trained parameter names) under FSDP, else None."""
    final = os.path.join(output_dir, f"checkpoint-{step}")
    tmp = os.path.join(output_dir, f".checkpoint-{step}.tmp")
    if accelerator.is_main_process and os.path.exists(tmp):
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    with _accelerate_state_without_model(accelerator, fsdp_trained):
        accelerator.save_state(tmp)  # every rank writes its own RNG state file into it
    if fsdp_trained is not None:
        save_trained_sharded(*fsdp_trained, tmp)
    # every rank has written its files before the main process renames the folder: without this barrier a slower
    # rank still writing its RNG state found its folder gone ("Parent directory ... does not exist"; the 2-process
    # tests on a loaded machine, about once in 15 runs)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with open(os.path.join(tmp, "train_state.json"), "w") as f:
            json.dump(state, f)
        _fault_injection("AVLINK_FAULT_KILL_DURING_SAVE", step)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
        if total_limit is not None:
            for old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, path: str, fsdp_trained=None) -> dict:
    """Restore a checkpoint written by `save_checkpoint`; returns its train state."""
    with _accelerate_state_without_model(accelerator, fsdp_trained):
        accelerator.load_state(path, strict=False)  # the load hook checks the checkpoint holds exactly the trained parameters
    if fsdp_trained is not None:
        load_trained_sharded(*fsdp_trained, path)
    return load_train_state(path)


def load_train_state(path: str) -> dict:
    with open(os.path.join(path, "train_state.json")) as f:
        return json.load(f)


def frozen_fingerprint(model: torch.nn.Module, trained: list) -> dict:
    """Per top-level submodule, its source folder and a sha256 of its frozen state (every entry of the state dict
    that is not a trained parameter). Call it on the unwrapped model, before `accelerator.prepare` shards it."""
    trained_ids, digests = {id(p) for p in trained}, {}
    for name, value in model.state_dict(keep_vars=True).items():
        if id(value) in trained_ids:
            continue
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest = digests.setdefault(name.split(".")[0], hashlib.sha256())
        digest.update(f"{name} {tensor.dtype} {tuple(value.shape)};".encode())
        digest.update(tensor.view(torch.uint8).numpy())
    return {head: {"source": getattr(getattr(getattr(model, head, None), "config", None), "_name_or_path", None),
                   "sha256": digest.hexdigest()} for head, digest in digests.items()}


def register_checkpoint_hooks(accelerator, params: list, names: list[str], frozen: dict, ema=None) -> None:
    """Make `accelerator.save_state` / `load_state(path, strict=False)` keep only the trained parameters `params`
    (named `names`), their EMA and the `frozen` references. Under FSDP `save_checkpoint` hides the model from accelerate and
    saves the trained parameters itself (`fsdp_checkpoint`)."""
    trained_ids = {id(p) for p in params}

    def trained_keys(model) -> set[str]:  # state-dict keys of the prepared (maybe DDP-wrapped) model
        return {k for k, v in model.state_dict(keep_vars=True).items() if id(v) in trained_ids}

    def save_hook(models, weights, output_dir):
        for i, model in enumerate(models[:len(weights)]):  # FSDP leaves `weights` empty: it saved the models itself
            keep = trained_keys(model)
            weights[i] = {k: v for k, v in weights[i].items() if k in keep}
        if not accelerator.is_main_process:
            return
        with open(os.path.join(output_dir, FROZEN_FILE), "w") as f:
            json.dump(frozen, f, indent=2)
        if ema is not None:
            state = ema.state_dict()
            save_file({n: p.contiguous() for n, p in zip(names, state.pop("shadow_params"))}, os.path.join(output_dir, EMA_WEIGHTS))
            with open(os.path.join(output_dir, EMA_CONFIG), "w") as f:
                json.dump(state, f, indent=2)

    def load_hook(models, input_dir):
        legacy = not os.path.isfile(os.path.join(input_dir, FROZEN_FILE))  # written before it: every model whole
        for i, model in enumerate(models):
            with safe_open(os.path.join(input_dir, f"model{f'_{i}' if i else ''}.safetensors"), "pt") as f:
                saved, expected = set(f.keys()), trained_keys(model)
            if saved != expected and not (legacy and expected <= saved):
                raise ValueError(f"{input_dir} trained other parameters than this run: missing {sorted(expected - saved)[:5]}, "
                                 f"unexpected {sorted(saved - expected)[:5]} (different LoRA targets or adapter?)")
        if legacy:
            logger.warning(f"{input_dir} has no {FROZEN_FILE}: its frozen backbones cannot be checked against this run's")
        else:
            check_frozen(input_dir, frozen)
        if os.path.isfile(os.path.join(input_dir, "custom_checkpoint_0.pkl")):  # the EMA, as accelerate pickled it before
            raise ValueError(f"{input_dir} holds a pickled EMA state, which is not loaded; start a new run")
        if ema is not None:
            if not os.path.isfile(os.path.join(input_dir, EMA_WEIGHTS)):
                raise ValueError(f"--use_ema: {input_dir} holds no {EMA_WEIGHTS} (it was saved without --use_ema)")
            shadow = load_file(os.path.join(input_dir, EMA_WEIGHTS))
            with open(os.path.join(input_dir, EMA_CONFIG)) as f:
                state = json.load(f)
            ema.load_state_dict({**state, "shadow_params": [shadow[n].to(p.device) for n, p in zip(names, params)]})

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def check_frozen(path: str, frozen: dict) -> None:
    """One error naming every frozen module that differs from the one the checkpoint was trained against."""
    with open(os.path.join(path, FROZEN_FILE)) as f:
        saved = json.load(f)

    def describe(refs, head):
        ref = refs.get(head, {})
        return f"{ref.get('source')} sha256 {ref.get('sha256', 'none')[:12]}"

    differ = [f"{head} (checkpoint: {describe(saved, head)}; this run: {describe(frozen, head)})"
              for head in sorted(set(saved) | set(frozen)) if saved.get(head, {}).get("sha256") != frozen.get(head, {}).get("sha256")]
    if differ:
        raise ValueError(f"{path} was trained against other frozen weights: {'; '.join(differ)}. Resume with the modules it "
                         f"references ({FROZEN_FILE}), or start a new run")


def _fault_injection(variable: str, step: int) -> None:
    """Tests simulate a crash at an exact point by naming a step in this environment variable."""
    if os.environ.get(variable) == str(step):
        os.kill(os.getpid(), 9)
