"""Per-GPU memory of Fusion Block training, estimated without computing anything: build the models on the meta device.

    with torch.device("meta"):
        audio, video, adapter = ...                      # real-scale configs cost no memory here
    memory = estimate_training_memory(audio, video, adapter, audio=x_a, video=x_v, audio_text=..., video_text=...,
                                      task="v2a", gradient_checkpointing=True)
    memory.total_bytes, memory.as_dict()

What is counted, per GPU (data parallel: every GPU holds all of it):
- weights: the frozen backbones in `frozen_dtype` (bf16), the adapter's master weights in `master_dtype` (fp32);
- gradients of the adapter (its master dtype: accelerate's mixed precision keeps fp32 parameters and gradients);
- optimizer states: AdamW's two moments per trained parameter, and the EMA copy when `use_ema`;
- activations: the bytes autograd keeps for the backward pass after one training forward (the `fusion_loss` call:
  `joint_forward` returning only the generated modality), measured by summing the tensors autograd saves
  (`torch.autograd.graph.saved_tensors_hooks`), each storage once, parameters and buffers excluded. With gradient
  checkpointing the kept bytes are the checkpointed regions' inputs (held for the recompute) plus what is saved
  outside them, and the backward pass adds one region's activations at a time while it recomputes it
  (`recompute_peak`: the largest region).

Approximations (say so where the numbers are quoted): the forward runs in `activation_dtype` throughout, whereas
autocast keeps a few ops (norms, softmax statistics) in fp32; attention is counted as a GPU's fused kernels keep it
(q, k, v, output and the log-sum-exp, never the L x L probabilities: `scaled_dot_product_attention` is routed to
the memory-efficient kernel, which has a meta implementation); allocator slack, the CUDA context,
communication buffers and the transient gradients of the backward pass are not included; text encoders and VAEs are
not resident (training reads cached latents and text embeddings).
"""

import copy
import functools
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from diffusers.utils import logging as diffusers_logging
from torch.overrides import TorchFunctionMode

from ..models.backbone_views import ForeignBackbone, as_backbone
from ..models.joint import joint_forward
from .objectives import CONDITIONING_TIME

GIB = 2**30


@dataclass
class TrainingMemory:
    """Bytes per GPU (see the module docstring for what each holds)."""

    frozen_weights: int
    trained_weights: int
    gradients: int
    optimizer: int
    ema: int
    activations: int
    recompute_peak: int
    frozen_parameters: int
    trained_parameters: int
    gradient_checkpointing: bool

    @property
    def total_bytes(self) -> int:
        return (self.frozen_weights + self.trained_weights + self.gradients + self.optimizer + self.ema + self.activations
                + self.recompute_peak)

    def as_dict(self) -> dict:
        return {**asdict(self), "total_bytes": self.total_bytes, "total_gib": self.total_bytes / GIB}


def _bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype, device="meta").element_size()


def _storage_key(tensor: torch.Tensor):
    return tensor.untyped_storage()._cdata  # unique per storage, meta tensors included (their data_ptr is 0)


class _EfficientAttention(TorchFunctionMode):
    """`F.scaled_dot_product_attention` as the memory-efficient kernel, whose backward keeps q, k, v, the output and
    the log-sum-exp (what flash / efficient attention keep on a GPU). On the meta device SDPA would otherwise take
    its math path, which saves the L x L probabilities: 26 GB per Wan block at 480p, and no GPU run keeps them."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale")
        given = {**dict(zip(names, args)), **kwargs}
        if given.pop("enable_gqa", False):
            raise NotImplementedError("grouped-query attention is not handled by the memory estimate")
        q, k, v = given["query"], given["key"], given["value"]
        if q.device.type != "meta" and torch.is_autocast_enabled(q.device.type):  # as autocast casts SDPA's inputs
            q, k, v = (x.to(torch.get_autocast_dtype(q.device.type)) for x in (q, k, v))
        mask = given.get("attn_mask")
        if mask is not None:
            if mask.dtype == torch.bool:
                mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill(~mask, float("-inf"))
            mask = mask.to(q.dtype).expand(*q.shape[:-2], q.shape[-2], k.shape[-2])
        dropout, causal, scale = given.get("dropout_p", 0.0), given.get("is_causal", False), given.get("scale")
        with torch._C.DisableTorchFunction():
            if q.device.type == "cpu":  # the efficient kernel has no CPU implementation; this one keeps the same
                return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                    q, k, v, dropout, causal, attn_mask=mask, scale=scale)[0]
            return torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, mask, True, dropout, causal, scale=scale)[0]


class SavedTensorCounter:
    """Bytes of the distinct storages autograd saves for backward (and, through `checkpoint`, the inputs that gradient
    checkpointing holds for its recompute), excluding `exclude`'s parameters and buffers."""

    def __init__(self, exclude=()):
        self.excluded = {_storage_key(t) for m in exclude for t in (*m.parameters(), *m.buffers())}
        self.storages: dict = {}
        self.recompute_peak = 0

    @property
    def bytes(self) -> int:
        return sum(nbytes for nbytes, _ in self.storages.values())

    def add(self, tensor: torch.Tensor) -> None:
        key = _storage_key(tensor)
        if key not in self.excluded:
            # the tensor is held so that its storage's address is not reused by a later one (keys are addresses)
            self.storages[key] = (tensor.untyped_storage().nbytes(), tensor)

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        self.add(tensor)
        return tensor

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self.pack, lambda tensor: tensor)

    def checkpoint(self, function, *args, **kwargs):
        """A `gradient_checkpointing_func`: counts the tensor inputs the recompute holds, measures what the region
        itself saves (its activations while the backward pass recomputes it) and runs it checkpointed."""
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        params = function.parameters() if isinstance(function, torch.nn.Module) else ()
        if not any(t.requires_grad for t in tensors) and not any(p.requires_grad for p in params):
            return function(*args, **kwargs)  # outside the backward pass (frozen blocks before the first fusion point)
        for tensor in tensors:  # held for the recompute (recent torch also reports them through the hooks: deduplicated)
            self.add(tensor)
        region = SavedTensorCounter()
        region.excluded = self.excluded
        with region.hooks():
            function(*args, **kwargs)
        self.recompute_peak = max(self.recompute_peak, region.bytes)
        return torch.utils.checkpoint.checkpoint(function, *args, use_reentrant=False, **kwargs)


def activation_bytes(forward, exclude=(), checkpointed=()) -> tuple[int, int]:
    """(bytes kept for backward after `forward()`, recompute peak) with `checkpointed` models' gradient checkpointing
    on (their blocks then run through the counter's checkpoint function). `forward` must return the loss."""
    counter = SavedTensorCounter(exclude)
    for model in checkpointed:
        model.enable_gradient_checkpointing(counter.checkpoint)
    try:
        with torch.enable_grad(), _EfficientAttention(), counter.hooks():
            forward()
    finally:
        for model in checkpointed:
            model.disable_gradient_checkpointing()
    return counter.bytes, counter.recompute_peak


def _module(model):
    """The `nn.Module` of a backbone: a view's diffusers model, or the model itself."""
    return model.model if isinstance(model, ForeignBackbone) else model


def fusion_training_loss(audio_backbone, video_backbone, fusion_adapter, *, audio, video, audio_text, video_text,
                         audio_text_mask=None, video_text_mask=None, task: str = "v2a", dtype: torch.dtype | None = None):
    """The forward of `objectives.fusion_loss` on given model-space inputs (no data pipeline, no random draws): the
    conditioning modality at its fixed time, the generated one at t = 0.5, only the generated output computed, MSE
    against a zero target (the target changes no activation)."""
    generated = "audio" if task == "v2a" else "video"
    cast = (lambda x: x) if dtype is None else functools.partial(torch.Tensor.to, dtype=dtype)
    batch = audio.shape[0]
    times = {m: torch.full((batch,), 0.5 if m == generated else CONDITIONING_TIME[task], device=audio.device)
             for m in ("audio", "video")}
    out = joint_forward(
        audio_backbone, video_backbone, fusion_adapter, cast(audio), cast(video), times["audio"], times["video"],
        cast(audio_text), cast(video_text), audio_text_mask, video_text_mask,
        return_audio=generated == "audio", return_video=generated == "video",
    )
    prediction = getattr(out, generated)
    return F.mse_loss(prediction.float(), torch.zeros_like(prediction, dtype=torch.float32))


def parameter_count(model) -> int:
    return sum(p.numel() for p in _module(model).parameters())


def _cast_copy(model, dtype: torch.dtype):
    """A copy of `model` behind the backbone interface (a view keeps its token clock), cast to `dtype` (all of it:
    diffusers' warning about modules it would keep in fp32 is silenced, see the module docstring)."""
    model = copy.deepcopy(model)
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    try:
        _module(model).to(dtype)
    finally:
        diffusers_logging.set_verbosity(verbosity)
    return model


def estimate_training_memory(
    audio_transformer,
    video_transformer,
    fusion_adapter,
    *,
    audio: torch.Tensor,
    video: torch.Tensor,
    audio_text: torch.Tensor,
    video_text: torch.Tensor,
    audio_text_mask: torch.Tensor | None = None,
    video_text_mask: torch.Tensor | None = None,
    task: str = "v2a",
    gradient_checkpointing: bool = False,
    use_ema: bool = False,
    frozen_dtype: torch.dtype = torch.bfloat16,
    master_dtype: torch.dtype = torch.float32,
    activation_dtype: torch.dtype = torch.bfloat16,
    optimizer_states: int = 2,
) -> TrainingMemory:
    """Per-GPU memory of one Fusion Block training step on the batch `audio` / `video` (model-space inputs of the
    backbones, e.g. VAE latents, batch first) with their text states. The models are copied (free on the meta device,
    where they belong at real scale) and the copies cast: the inputs' own device decides where the forward runs.
    The transformers are av-link's own backbones or views with token clocks (`as_backbone(transformer, vae=...)`).
    `optimizer_states`: tensors per trained parameter in the optimizer (AdamW: 2)."""
    if task not in CONDITIONING_TIME:
        raise ValueError(f"task must be one of {sorted(CONDITIONING_TIME)}, got {task!r}")
    frozen = parameter_count(audio_transformer) + parameter_count(video_transformer)
    trained = parameter_count(fusion_adapter)
    master = _bytes(master_dtype)

    # The training forward of `fusion_loss`, on copies in the activation dtype (mixed precision computes in it).
    views = [_cast_copy(as_backbone(m), activation_dtype) for m in (audio_transformer, video_transformer)]
    adapter = _cast_copy(fusion_adapter, activation_dtype)
    modules = [_module(v).requires_grad_(False) for v in views] + [adapter.requires_grad_(True)]
    inputs = dict(audio=audio, video=video, audio_text=audio_text, video_text=video_text, audio_text_mask=audio_text_mask,
                  video_text_mask=video_text_mask)
    forward = functools.partial(fusion_training_loss, *views, adapter, task=task, dtype=activation_dtype, **inputs)
    kept, peak = activation_bytes(forward, exclude=modules, checkpointed=[*views, adapter] if gradient_checkpointing else ())
    return TrainingMemory(
        frozen_weights=frozen * _bytes(frozen_dtype), trained_weights=trained * master, gradients=trained * master,
        optimizer=optimizer_states * trained * master, ema=trained * master if use_ema else 0, activations=kept,
        recompute_peak=peak, frozen_parameters=frozen, trained_parameters=trained,
        gradient_checkpointing=gradient_checkpointing,
    )
