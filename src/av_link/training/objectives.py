"""Flow-matching training objectives: a backbone on its own, and Fusion Blocks between frozen backbones.

Both follow the paper's convention `x_t = t x1 + (1 - t) x0` with velocity target `x1 - x0`.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models.joint import joint_forward
from ..schedulers import noisy_sample, velocity_target
from ..schedulers.flow_time import adjusted_times
from .modality_inputs import OwnInputs
from .randomness import per_sample_logit_normal, per_sample_rand, per_sample_randn, sample_generator

CONDITIONING_TIME = {"v2a": 0.96, "a2v": 0.8}  # paper §4.4: fixed noise level of the conditioning modality
# "joint": one adapter for V2A and A2V, alternating steps; "joint_generation": text to audio+video together
TASKS = ("v2a", "a2v", "joint", "joint_generation")


@dataclass
class ObjectiveConfig:
    seed: int = 0
    logit_mean: float = 0.0  # backbones: logit-normal(0, 1); Fusion Blocks: logit-normal(-1, 1)
    logit_std: float = 1.0
    generated_text_dropout: float = 0.1  # backbones 10%; Fusion Blocks 50% (generated modality)
    conditioning_text_dropout: float = 0.2  # Fusion Blocks: conditioning modality's prompt
    # Fusion Blocks: both prompts dropped together with this probability, on top of the two drops above, so more
    # samples teach what the empty-prompt use needs: everything about the sound (its kind too) from the picture.
    paired_text_dropout: float = 0.0
    # Audio backbones: weight of a second squared error on the frame-to-frame change of the predicted clean mel's
    # band-mean error (0: off). It weights up the error that makes a generated decay ripple (every band's level
    # moving together from one frame to the next), which the vocoder renders as a rough ring; the conditional mean
    # still minimises it, so it reweights the fit rather than biasing it.
    energy_smoothness: float = 0.0
    v2a_conditioning_time: float = CONDITIONING_TIME["v2a"]
    a2v_conditioning_time: float = CONDITIONING_TIME["a2v"]


def fusion_objective_config(args) -> ObjectiveConfig:
    """The Fusion Block objective's settings from `examples/train_fusion.py`'s arguments."""
    for name in ("generated_text_dropout", "conditioning_text_dropout", "paired_text_dropout"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            raise ValueError(f"--{name} must be a probability in [0, 1], got {getattr(args, name)}")
    return ObjectiveConfig(seed=args.seed, logit_mean=args.logit_mean, logit_std=args.logit_std,
                           generated_text_dropout=args.generated_text_dropout,
                           conditioning_text_dropout=args.conditioning_text_dropout,
                           paired_text_dropout=args.paired_text_dropout)


def _signal(batch: dict, modality: str) -> torch.Tensor:
    return batch["mel"] if modality == "audio" else batch["video"]


def _caption(batch: dict, modality: str) -> list[str]:
    return list(batch["audio_caption" if modality == "audio" else "video_caption"])


def _streams(cfg: ObjectiveConfig, epoch: int, indices, name: str):
    return [sample_generator(cfg.seed, epoch, int(i), name) for i in indices]


def drop_captions(captions: list[str], p: float, gens) -> list[str]:
    """Each caption replaced by "" with probability `p`, one draw per sample from its own generator."""
    keep = per_sample_rand(gens) >= p
    return [c if k else "" for c, k in zip(captions, keep.tolist())]


def backbone_loss(model, encode_text, batch: dict, modality: str, cfg: ObjectiveConfig, epoch: int) -> torch.Tensor:
    """Text-to-audio or text-to-video flow matching: t ~ logit-normal, text dropped with probability p."""
    x1 = _signal(batch, modality)
    idx = batch["index"]
    noise = per_sample_randn(x1.shape[1:], _streams(cfg, epoch, idx, f"{modality}-noise"), x1.device, x1.dtype)
    t = per_sample_logit_normal(_streams(cfg, epoch, idx, f"{modality}-time"), cfg.logit_mean, cfg.logit_std).to(x1.device)
    captions = drop_captions(_caption(batch, modality), cfg.generated_text_dropout, _streams(cfg, epoch, idx, f"{modality}-text"))
    text, mask = encode_text(captions)
    prediction = model(noisy_sample(x1, noise, t), t, text, mask).sample
    error = prediction.float() - velocity_target(x1, noise).float()
    loss = error.pow(2).mean()
    if modality == "audio" and cfg.energy_smoothness > 0:
        # clean-mel error = (1 - t) * velocity error; its mean over the bands, differenced along the frames
        level = error.mean(dim=-1) * (1 - t.float())[:, None]
        loss = loss + cfg.energy_smoothness * (level[:, 1:] - level[:, :-1]).pow(2).mean()
    return loss


def fusion_loss(audio_model, video_model, adapter, inputs, batch: dict, task: str, cfg: ObjectiveConfig, epoch: int) -> torch.Tensor:
    """Fusion Block training (paper Eq. 5): the conditioning modality sits at its fixed time (or, for an adapter with
    `conditioning_time="uniform"`, at t ~ U(0, 1)), the generated one at t ~ logit-normal(-1, 1); the loss is the
    generated modality's velocity MSE only.

    `task="joint_generation"` trains joint text-to-audio+video generation (AV-Link's supplementary D.4, SyncFlow,
    Ishii et al.): both modalities from noise at one global t ~ logit-normal, mapped to their local times by the
    adapter's `timestep_gamma` (`adjusted_times`: 0 is t_a = t_v); both prompts are dropped like a generated one;
    the loss is the mean velocity MSE of the modalities the adapter reinjects into (the others are the frozen
    backbones' own).

    `inputs`: per modality, where its clean signal and text come from (`modality_inputs`), or one text encoder
    callable shared by av-link's own backbones. Backbones given as views (`as_backbone`) take av-link's flow time
    and return its velocity whatever their own timestep convention, so latents and mel train alike."""
    if callable(inputs):
        inputs = {m: OwnInputs(m, inputs) for m in ("audio", "video")}
    joint = task == "joint_generation"
    generated = ("audio", "video") if joint else ("audio",) if task == "v2a" else ("video",)
    trained = [m for m in generated if adapter.reinjects(m)]
    if not trained:
        raise ValueError(f"the adapter reinjects only into the {adapter.config.reinject} backbone "
                         f"(reinject={adapter.config.reinject!r}): it cannot condition the {generated[0]} output of {task}")
    idx = batch["index"]
    x, t, text, mask, target = {}, {}, {}, {}, {}
    if joint:
        shared = per_sample_logit_normal(_streams(cfg, epoch, idx, f"{task}-time"), cfg.logit_mean, cfg.logit_std)
        t["audio"], t["video"] = adjusted_times(shared, adapter.config.timestep_gamma)
    # drawn from its own streams, and only when used: runs without it draw exactly what they drew before
    paired = per_sample_rand(_streams(cfg, epoch, idx, f"{task}-paired-text")) < cfg.paired_text_dropout \
        if cfg.paired_text_dropout > 0 else None
    for modality in ("audio", "video"):
        x1 = inputs[modality].signal(batch)
        noise = per_sample_randn(x1.shape[1:], _streams(cfg, epoch, idx, f"{task}-{modality}-noise"), x1.device, x1.dtype)
        if joint:
            t[modality] = t[modality].to(device=x1.device, dtype=torch.float32)
            target[modality] = velocity_target(x1, noise).float()
        elif modality in generated:
            t[modality] = per_sample_logit_normal(_streams(cfg, epoch, idx, f"{task}-time"), cfg.logit_mean, cfg.logit_std).to(x1.device)
            target[modality] = velocity_target(x1, noise).float()
        elif adapter.config.conditioning_time == "uniform":  # the ablation: t_c ~ U(0, 1) per sample
            t[modality] = per_sample_rand(_streams(cfg, epoch, idx, f"{task}-conditioning-time")).to(x1.device)
        else:
            fixed = cfg.v2a_conditioning_time if task == "v2a" else cfg.a2v_conditioning_time
            t[modality] = torch.full((x1.shape[0],), fixed, device=x1.device)
        x[modality] = noisy_sample(x1, noise, t[modality])
        p = cfg.generated_text_dropout if modality in generated else cfg.conditioning_text_dropout
        captions = drop_captions(_caption(batch, modality), p, _streams(cfg, epoch, idx, f"{task}-{modality}-text"))
        if paired is not None:
            captions = [c if not both else "" for c, both in zip(captions, paired.tolist())]
        text[modality], mask[modality] = inputs[modality].encode_text(captions)
    out = joint_forward(
        audio_model, video_model, adapter, x["audio"], x["video"], t["audio"], t["video"],
        text["audio"], text["video"], mask["audio"], mask["video"],
        return_audio="audio" in trained, return_video="video" in trained,
    )
    return sum(F.mse_loss(getattr(out, m).float(), target[m]) for m in trained) / len(trained)


class BackboneObjective(torch.nn.Module):
    """The trained backbone wrapped so that `forward(batch, epoch)` is the loss: accelerate/DDP/FSDP wrap
    this module, and every trained parameter is reached through its forward."""

    def __init__(self, model, encode_text, modality: str, cfg: ObjectiveConfig):
        super().__init__()
        self.model, self.encode_text, self.modality, self.cfg = model, encode_text, modality, cfg

    def forward(self, batch: dict, epoch: int, step: int) -> torch.Tensor:
        return backbone_loss(self.model, self.encode_text, batch, self.modality, self.cfg, epoch)


class FusionObjective(torch.nn.Module):
    """Fusion adapter + frozen backbones. Task "joint" trains one shared adapter for both directions,
    alternating V2A and A2V steps.

    `encode_text`: the shared text encoder of av-link's own backbones, or a dict of per-modality inputs
    (`modality_inputs`). `views`: the backbones as `joint_forward` runs them, for diffusers transformers whose views
    carry token clocks; the transformers themselves stay submodules so accelerate places, wraps and shards them."""

    def __init__(self, adapter, audio_model, video_model, encode_text, task: str, cfg: ObjectiveConfig, views=None):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        self.adapter, self.audio_model, self.video_model = adapter, audio_model, video_model
        self.encode_text, self.task, self.cfg = encode_text, task, cfg
        self.views = views or (audio_model, video_model)

    def train(self, mode: bool = True):
        super().train(mode)
        self.audio_model.eval()  # the backbones stay frozen and in eval mode
        self.video_model.eval()
        return self

    def forward(self, batch: dict, epoch: int, step: int) -> torch.Tensor:
        task = self.task if self.task != "joint" else ("v2a", "a2v")[step % 2]
        return fusion_loss(*self.views, self.adapter, self.encode_text, batch, task, self.cfg, epoch)
