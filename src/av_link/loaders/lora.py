"""LoRA loading and saving for the av-link pipelines, on diffusers' `LoraBaseMixin` and the models' `PeftAdapterMixin`.

One LoRA file (safetensors only) may hold adapters for any of a pipeline's three transformers; every key is
prefixed by the component's name, as diffusers' pipelines prefix theirs with `transformer.`:
`audio_transformer.blocks.0.attn.to_q.lora_A.weight`, `fusion_adapter.blocks.1.attn.to_out.lora_B.weight`, ...
Each component's LoRA config (rank, alpha, targets) travels in the file's metadata, so a round trip is exact.

    pipe.load_lora_weights("path/to/folder", adapter_name="foley")
    pipe.set_adapters("foley", 0.7); pipe.fuse_lora(components=["fusion_adapter"]); pipe.unload_lora_weights()
    AVLinkV2APipeline.save_lora_weights("out", **lora_save_kwargs(fusion_adapter=pipe.fusion_adapter))
"""

import os

import torch
from diffusers.loaders.lora_base import LoraBaseMixin, _fetch_state_dict
from diffusers.utils.peft_utils import require_peft_backend

LORA_COMPONENTS = ("audio_transformer", "video_transformer", "fusion_adapter")
_HUB_KWARGS = ("cache_dir", "force_download", "proxies", "local_files_only", "token", "revision", "subfolder")


def lora_save_kwargs(adapter_name: str = "default", **models) -> dict:
    """Keyword arguments of `save_lora_weights` for the given components (`audio_transformer=...`, ...): each
    model's layers and config of adapter `adapter_name`; models without that adapter are left out."""
    from peft.utils import get_peft_model_state_dict

    unknown = sorted(set(models) - set(LORA_COMPONENTS))
    if unknown:
        raise ValueError(f"{unknown} are not LoRA components; choose from {list(LORA_COMPONENTS)}")
    kwargs = {}
    for name, model in models.items():
        if model is not None and adapter_name in getattr(model, "peft_config", {}):
            kwargs[f"{name}_lora_layers"] = get_peft_model_state_dict(model, adapter_name=adapter_name)
            kwargs[f"{name}_lora_adapter_metadata"] = model.peft_config[adapter_name].to_dict()
    if not kwargs:
        raise ValueError(f"none of {sorted(models)} has a LoRA adapter named {adapter_name!r}")
    return kwargs


class AVLinkLoraLoaderMixin(LoraBaseMixin):
    """`load_lora_weights` / `save_lora_weights` for pipelines holding some of `audio_transformer`,
    `video_transformer` and `fusion_adapter`; `set_adapters`, `fuse_lora`, `unload_lora_weights`, ... come
    from `LoraBaseMixin`."""

    _lora_loadable_modules = list(LORA_COMPONENTS)

    @classmethod
    def lora_state_dict(cls, pretrained_model_name_or_path_or_dict, weight_name: str | None = None,
                        return_lora_metadata: bool = False, **kwargs):
        """The LoRA state dict (and with `return_lora_metadata` its per-component configs) of a folder or Hub repo
        (`pytorch_lora_weights.safetensors`, or `weight_name`), or of a state dict given directly."""
        hub = {k: kwargs.pop(k, None) for k in _HUB_KWARGS}
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        state_dict, metadata = _fetch_state_dict(
            pretrained_model_name_or_path_or_dict, weight_name=weight_name, use_safetensors=True, allow_pickle=False,
            user_agent={"file_type": "attn_procs_weights", "framework": "pytorch"},
            **hub,
        )
        return (state_dict, metadata) if return_lora_metadata else state_dict

    @require_peft_backend
    def load_lora_weights(self, pretrained_model_name_or_path_or_dict, adapter_name: str | None = None, hotswap: bool = False,
                          **kwargs):
        """Load a LoRA into every component it has weights for, all under one adapter name (default: the first
        free `default_<n>`)."""
        low_cpu_mem_usage = kwargs.pop("low_cpu_mem_usage", False)
        if isinstance(pretrained_model_name_or_path_or_dict, dict):  # loading pops keys: keep the caller's dict
            pretrained_model_name_or_path_or_dict = dict(pretrained_model_name_or_path_or_dict)
        state_dict, metadata = self.lora_state_dict(pretrained_model_name_or_path_or_dict, return_lora_metadata=True, **kwargs)
        if not state_dict or not all("lora" in key for key in state_dict):
            raise ValueError("not a LoRA checkpoint: every parameter name must contain 'lora'")
        components = {key.split(".", 1)[0] for key in state_dict}
        unknown = sorted(components - set(self._lora_loadable_modules))
        if unknown:
            raise ValueError(f"LoRA keys start with {unknown}; an av-link LoRA prefixes each key with one of {self._lora_loadable_modules}")
        absent = sorted(c for c in components if getattr(self, c, None) is None)
        if absent:
            raise ValueError(f"the LoRA has weights for {absent}, which {type(self).__name__} does not have")
        if adapter_name is None:
            taken = {name for names in self.get_list_adapters().values() for name in names}
            adapter_name = next(f"default_{i}" for i in range(len(taken) + 1) if f"default_{i}" not in taken)
        for component in self._lora_loadable_modules:
            if component in components:
                getattr(self, component).load_lora_adapter(
                    state_dict, prefix=component, network_alphas=None, adapter_name=adapter_name, metadata=metadata,
                    _pipeline=self, low_cpu_mem_usage=low_cpu_mem_usage, hotswap=hotswap,
                )

    @classmethod
    def save_lora_weights(
        cls,
        save_directory: str | os.PathLike,
        audio_transformer_lora_layers: dict[str, torch.Tensor] | None = None,
        video_transformer_lora_layers: dict[str, torch.Tensor] | None = None,
        fusion_adapter_lora_layers: dict[str, torch.Tensor] | None = None,
        audio_transformer_lora_adapter_metadata: dict | None = None,
        video_transformer_lora_adapter_metadata: dict | None = None,
        fusion_adapter_lora_adapter_metadata: dict | None = None,
        is_main_process: bool = True,
        weight_name: str | None = None,
        save_function=None,
    ):
        """Write one safetensors file with the given components' LoRA layers (see `lora_save_kwargs`)."""
        given = dict(audio_transformer=(audio_transformer_lora_layers, audio_transformer_lora_adapter_metadata),
                     video_transformer=(video_transformer_lora_layers, video_transformer_lora_adapter_metadata),
                     fusion_adapter=(fusion_adapter_lora_layers, fusion_adapter_lora_adapter_metadata))
        layers = {name: lora for name, (lora, _) in given.items() if lora}
        if not layers:
            raise ValueError("pass the LoRA layers of at least one of " + ", ".join(f"{n}_lora_layers" for n in LORA_COMPONENTS))
        cls._save_lora_weights(
            save_directory=save_directory, lora_layers=layers, lora_metadata={name: given[name][1] for name in layers},
            is_main_process=is_main_process, weight_name=weight_name, save_function=save_function, safe_serialization=True,
        )
