"""Crash-safe training checkpoints on top of `accelerator.save_state`.

A checkpoint is written to a hidden temporary folder and renamed into place only when complete, so a
process killed mid-save leaves the previous checkpoint as the latest loadable one. `train_state.json`
records where in the data the run stood.
"""

import json
import os
import re
import shutil

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


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


def save_checkpoint(accelerator, output_dir: str, step: int, state: dict, total_limit: int | None) -> str:
    final = os.path.join(output_dir, f"checkpoint-{step}")
    tmp = os.path.join(output_dir, f".checkpoint-{step}.tmp")
    if accelerator.is_main_process and os.path.exists(tmp):
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(tmp)  # every rank writes its own RNG state file into it
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


def load_train_state(path: str) -> dict:
    with open(os.path.join(path, "train_state.json")) as f:
        return json.load(f)


def _fault_injection(variable: str, step: int) -> None:
    """Tests simulate a crash at an exact point by naming a step in this environment variable."""
    if os.environ.get(variable) == str(step):
        os.kill(os.getpid(), 9)
