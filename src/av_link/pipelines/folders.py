"""What av-link adds to diffusers' pipeline folders: no build paths, model cards that survive, adapter-only folders.

An adapter-only folder (the shipped A2V model: its backbones, text encoder, front end and vocoder are the V2A
model's) is a pipeline folder whose `model_index.json` lists every component as usual, holds only some of
them, and names the folder that holds the others, relative to itself:

    "_components_from": "../v2a"

`AVLinkA2VPipeline.from_pretrained(folder)` and `av-link a2v --model folder` load the missing components from
there. `pipe.save_pretrained` always writes a complete folder; `scripts/ship_synthhits_models.py` makes the
adapter-only one. A folder on the Hub must be complete.

A folder may also name a LoRA file of its own that is part of the model rather than an option (a distilled
few-step student keeps the teacher's frozen backbones and adapts the generated one with a LoRA):

    "_fused_lora": "pytorch_lora_weights.safetensors"

`from_pretrained` loads it and fuses it into the weights, so the pipeline samples as the student did in training
and a later `save_pretrained` writes a complete folder with the fused weights.
"""

import json
import os

COMPONENTS_FROM = "_components_from"
FUSED_LORA = "_fused_lora"
# diffusers records where a pipeline/component was loaded from; in a saved folder that is the build machine's path
SOURCE_KEY = "_name_or_path"
CONFIG_FILES = ("model_index.json", "config.json", "scheduler_config.json")
LOADING_KWARGS = ("torch_dtype", "dtype", "local_files_only", "use_safetensors", "low_cpu_mem_usage", "variant", "cache_dir",
                  "token", "revision", "device_map")


def read_index(folder) -> dict | None:
    path = os.path.join(folder, "model_index.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _rewrite_json(path: str, update) -> None:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if update(data) is not False:
        with open(path, "w", encoding="utf-8") as f:  # diffusers' own layout, so a re-save gives the same bytes
            f.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def drop_source_paths(save_directory) -> None:
    """Remove `_name_or_path` from the configs diffusers wrote (the pipeline's and its components')."""
    def drop(data):
        return data.pop(SOURCE_KEY, None) is not None  # False: nothing to rewrite

    for root in [save_directory, *(e.path for e in os.scandir(save_directory) if e.is_dir())]:
        for name in CONFIG_FILES:
            if os.path.isfile(os.path.join(root, name)):
                _rewrite_json(os.path.join(root, name), drop)


def mark_adapter_only(folder, components_from: str, removed: list[str]) -> None:
    """Delete `removed` component folders from `folder` and record where they are found instead."""
    import shutil

    for name in removed:
        shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
    _rewrite_json(os.path.join(folder, "model_index.json"), lambda data: data.__setitem__(COMPONENTS_FROM, components_from))


def mark_fused_lora(folder, weight_name: str) -> None:
    """Record that the LoRA file `weight_name` in `folder` is part of the model: loading fuses it in."""
    _rewrite_json(os.path.join(folder, "model_index.json"), lambda data: data.__setitem__(FUSED_LORA, weight_name))


def fuse_folder_lora(pipe, folder, passed=()) -> None:
    """Load and fuse the LoRA a pipeline folder names under `_fused_lora` (see above); nothing for other folders."""
    index = read_index(folder) if os.path.isdir(str(folder)) else None
    weight_name = (index or {}).get(FUSED_LORA)
    if not weight_name:
        return
    import copy

    for name in passed:  # a module the caller passed in may be in use elsewhere: fuse into a copy of it
        if name in pipe._lora_loadable_modules and getattr(pipe, name, None) is not None:
            setattr(pipe, name, copy.deepcopy(getattr(pipe, name)))
    pipe.load_lora_weights(folder, weight_name=weight_name, adapter_name="fused")
    components = [name for name in pipe._lora_loadable_modules if "fused" in getattr(getattr(pipe, name, None), "peft_config", {})]
    pipe.fuse_lora(components=components, adapter_names=["fused"])
    pipe.unload_lora_weights()  # keeps the fused weights, drops the LoRA layers


def save_component(folder, name: str, module) -> None:
    """Write `module` as component `name` of the pipeline folder `folder` (replacing the saved one)."""
    import shutil

    shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
    module.save_pretrained(os.path.join(folder, name))
    drop_source_paths(folder)
    entry = [type(module).__module__.split(".")[0], type(module).__name__]
    if entry[0] == "av_link":  # av-link's own classes are recorded by module, like diffusers does for them
        entry[0] = type(module).__module__
    _rewrite_json(os.path.join(folder, "model_index.json"), lambda data: data.__setitem__(name, entry))


def component_dir(folder, index: dict, name: str) -> str:
    """The folder that holds component `name`: `folder/name`, or the one `_components_from` names."""
    own = os.path.join(folder, name)
    if os.path.isdir(own) or not index.get(COMPONENTS_FROM):
        return own
    return os.path.join(folder, index[COMPONENTS_FROM], name)


def shared_components(cls, folder, kwargs: dict) -> dict:
    """The components an adapter-only `folder` does not hold, loaded from the folder it names (none are loaded
    that the caller passes in `kwargs`)."""
    index = read_index(folder) if os.path.isdir(str(folder)) else None
    if not index:
        return {}
    # components are [library, class] pairs; other lists are sampling settings (a student's `sigmas`)
    names = [k for k, v in index.items() if not k.startswith("_") and isinstance(v, list) and v and isinstance(v[0], str)]
    missing = [k for k in names if k not in kwargs and not os.path.isdir(os.path.join(folder, k))]
    if not missing:
        return {}
    if not index.get(COMPONENTS_FROM):
        raise ValueError(
            f"{folder} lacks the component folders {missing}. If it is an adapter-only folder (as "
            f"scripts/ship_synthhits_models.py wrote them before), add \"{COMPONENTS_FROM}\": \"../v2a\" (the folder that "
            f"holds them, relative to this one) to its model_index.json, or pass the components to from_pretrained."
        )
    base = os.path.normpath(os.path.join(folder, index[COMPONENTS_FROM]))
    if read_index(base) is None:
        raise ValueError(
            f"{folder} is an adapter-only {cls.__name__} folder: its components {missing} come from {base} "
            f"({COMPONENTS_FROM} in its model_index.json), which is not a pipeline folder. Keep both folders side by "
            f"side, or write a complete folder with pipe.save_pretrained()."
        )
    source = pipeline_class(base).from_pretrained(base, **{k: kwargs[k] for k in LOADING_KWARGS if k in kwargs})
    absent = [k for k in missing if getattr(source, k, None) is None and k not in cls._optional_components]
    if absent:
        raise ValueError(f"{base} lacks the components {absent} that the adapter-only folder {folder} needs")
    return {k: getattr(source, k, None) for k in missing}


def pipeline_class(folder):
    """The av-link class a pipeline folder records, whose `from_pretrained` reads adapter-only folders (an A2V
    folder may take its components from one that itself takes them from V2A's); diffusers' otherwise."""
    import av_link
    from diffusers import DiffusionPipeline

    cls = getattr(av_link, (read_index(folder) or {}).get("_class_name", ""), None)
    return cls if isinstance(cls, type) and issubclass(cls, DiffusionPipeline) else DiffusionPipeline


def source_training_info(pipe) -> dict | None:
    """The training facts of the av-link model card in the folder `pipe` was loaded from, if any."""
    folder = pipe.config.get(SOURCE_KEY)
    path = os.path.join(folder, "README.md") if isinstance(folder, (str, os.PathLike)) else ""
    if not os.path.isfile(path):
        return None
    from .model_card import read_training_info

    return read_training_info(path)
