"""Loading a local pipeline directory for a subcommand: cheap static checks first, then `from_pretrained` with every
failure turned into one line."""

import importlib
import json
import os
from contextlib import contextmanager
from typing import Sequence

from . import EXIT_FAILURE, CLIError
from .helpers import _one_line, _reason, dtype_name


@contextmanager
def _quiet_libraries():
    """Silence diffusers/transformers logging and their loading bars (restored afterwards). Even errors: diffusers
    logs a failed weight lookup at error level and then raises, and the raise is what we report."""
    import diffusers
    import transformers

    d_log, t_log = diffusers.utils.logging, transformers.utils.logging
    saved = (d_log.get_verbosity(), t_log.get_verbosity(), d_log.is_progress_bar_enabled(), t_log.is_progress_bar_enabled())
    d_log.set_verbosity(d_log.CRITICAL)
    t_log.set_verbosity(t_log.CRITICAL)
    d_log.disable_progress_bar()
    t_log.disable_progress_bar()
    try:
        yield
    finally:
        d_log.set_verbosity(saved[0])
        t_log.set_verbosity(saved[1])
        if saved[2]:
            d_log.enable_progress_bar()
        if saved[3]:
            t_log.enable_progress_bar()


def _read_model_index(directory: str, cls_name: str) -> dict:
    """Check that `directory` is a local av-link pipeline directory and return its model_index.json."""
    if not os.path.exists(directory):
        raise CLIError(f"--model {directory}: no such directory")
    if not os.path.isdir(directory):
        raise CLIError(f"--model {directory}: is a file, expected a pipeline directory")
    prefix = f"{directory} is not an av-link {cls_name} directory"
    index_path = os.path.join(directory, "model_index.json")
    if not os.path.isfile(index_path):
        raise CLIError(f"{prefix}: it has no model_index.json")
    try:
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CLIError(f"{prefix}: model_index.json is unreadable ({_one_line(err)})")
    if not isinstance(index, dict):
        raise CLIError(f"{prefix}: model_index.json is not a JSON object")
    return index


def _import_component_modules(index: dict, prefix: str) -> None:
    # diffusers only loads components from modules that are already imported; import av-link's own ones (never
    # anything else: the file must not make us import arbitrary code).
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or len(value) != 2 or not isinstance(value[0], str):
            continue
        module = value[0]
        if module == "av_link" or module.startswith("av_link."):
            try:
                importlib.import_module(module)
            except ImportError as err:
                raise CLIError(f"{prefix}: component '{name}' names module {module}, which cannot be imported ({_one_line(err)})")


_COMMAND_FOR_CLASS = {
    "AVLinkV2APipeline": "v2a",
    "AVLinkA2VPipeline": "a2v",
    "AVLinkTextToAudioPipeline": "t2a",
    "AVLinkTextToVideoPipeline": "t2v",
}

# A V2A/A2V checkpoint holds both backbones, so the unimodal pipelines can run them (to check they are intact).
CROSS_MODAL = ("AVLinkV2APipeline", "AVLinkA2VPipeline")


def check_pipeline_dir(cls, directory: str, accept: Sequence[str] = ()) -> dict:
    """Cheap static checks of a pipeline directory (before decoding inputs or loading weights); returns the index.

    `accept` lists other pipeline class names whose directories hold what `cls` needs (e.g. a text-to-audio
    pipeline can run the audio backbone of a V2A checkpoint)."""
    name = cls.__name__
    prefix = f"{directory} is not an av-link {name} directory"
    index = _read_model_index(directory, name)
    found = index.get("_class_name")
    if found != name and found not in accept:
        if isinstance(found, str) and found.startswith("AVLink"):
            hint = _COMMAND_FOR_CLASS.get(found)
            raise CLIError(f"{prefix}: it holds an {found} checkpoint" + (f" (use 'av-link {hint}')" if hint else ""))
        raise CLIError(f"{prefix}: model_index.json names {found!r}" if found else f"{prefix}: model_index.json has no _class_name")
    expected = cls._get_signature_keys(cls)[0]  # component names (optional components included)
    for component in sorted(set(expected) - set(cls._optional_components)):
        value = index.get(component)
        if not isinstance(value, list) or not value or value[0] is None:
            raise CLIError(f"{prefix}: component '{component}' is missing from model_index.json")
    from ..pipelines.folders import component_dir  # an adapter-only folder names where its other components are

    for component in sorted(expected):
        value = index.get(component)
        if isinstance(value, list) and value and value[0] is not None and not os.path.isdir(component_dir(directory, index, component)):
            raise CLIError(f"{prefix}: component folder '{component}' is missing")
    return index


def load_pipeline(cls, directory: str, device, dtype, accept: Sequence[str] = ()):
    """`cls.from_pretrained(directory)` (local files, safetensors only) moved to `device`/`dtype`, with every loading
    failure turned into one `CLIError` line. The vocoder stays float32 whatever `dtype` is."""
    import torch

    prefix = f"{directory} is not an av-link {cls.__name__} directory"
    index = check_pipeline_dir(cls, directory, accept)
    _import_component_modules(index, prefix)
    with _quiet_libraries():
        try:
            pipe = cls.from_pretrained(directory, local_files_only=True, use_safetensors=True)
        except Exception as err:  # diffusers raises OSError, ValueError, TypeError, KeyError, safetensors errors...
            raise CLIError(f"{prefix}: {_reason(err)}") from err  # --debug shows the original traceback
        try:
            pipe.to(device, dtype, silence_dtype_warnings=True)
        except RuntimeError as err:
            raise CLIError(f"cannot move the pipeline to {device} in {dtype_name(dtype)} ({_one_line(err)})", EXIT_FAILURE)
        vocoder = getattr(pipe, "vocoder", None)
        if vocoder is not None and dtype != torch.float32:
            # half/bfloat16 audio from a vocoder is audibly worse and saves almost nothing (it is small)
            vocoder.to(dtype=torch.float32)
    return pipe

