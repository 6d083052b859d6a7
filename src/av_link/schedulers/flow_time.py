"""AV-Link's flow time and diffusers' sigma: the one place the two conventions meet.

- AV-Link (the paper, SyncFlow): `x_t = t * x1 + (1 - t) * x0`, `t = 0` pure noise `x0`, `t = 1` data `x1`;
  the models take `t` and predict the velocity `dx/dt = x1 - x0`. Training code and the models use this.
- diffusers' flow schedulers: `x = (1 - sigma) * x1 + sigma * x0`, so `sigma = 1 - t`, sampled from
  sigma = 1 down to 0; `timesteps = sigma * num_train_timesteps` and `step` takes `dx/dsigma = x0 - x1`.
  Every scheduler av-link pipelines call, av-link's own included, speaks this convention.

The pipelines convert with `time_from_timestep` (of a `precise_timestep`) and `scheduler_output` at their sampling
loop, nowhere else.
"""

import math

import torch


def time_from_timestep(timestep, num_train_timesteps: int = 1000):
    """A scheduler timestep (`sigma * num_train_timesteps`) -> av-link's flow time `t = 1 - sigma`."""
    return 1 - timestep / num_train_timesteps


def precise_timestep(timestep: torch.Tensor) -> torch.Tensor:
    """`timestep` in float64 where its device has that dtype (MPS has none). A backbone that takes the scheduler's
    own timestep (Wan: sigma x 1000) gets it back exactly from a float64 `t`; through a float32 `t` it would be off
    by up to ~6e-5, which moves each velocity by ~1e-6."""
    return timestep if timestep.device.type == "mps" else timestep.to(torch.float64)


def scheduler_output(velocity: torch.Tensor) -> torch.Tensor:
    """An av-link velocity `dx/dt` -> the `dx/dsigma` that diffusers' flow schedulers step with."""
    return -velocity


def noisy_sample(data: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
    """`x_t = t * data + (1 - t) * noise`; `t` a scalar, one value, or one per batch element."""
    t = torch.as_tensor(t, dtype=data.dtype, device=data.device)
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] not in (1, data.shape[0])):
        raise ValueError(f"need a scalar time or one per batch element ({data.shape[0]}), got shape {tuple(t.shape)}")
    t = t.reshape(-1, *([1] * (data.ndim - 1))) if t.ndim == 1 else t
    return t * data + (1 - t) * noise


def velocity_target(data: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The regression target of av-link's models: `dx/dt = data - noise`."""
    return data - noise


def adjusted_times(t, gamma: float = 0.0):
    """Ishii et al.'s timestep adjustment, in flow time: a global time `t` -> the local times `(t_audio, t_video)`.

    The summary of the paper leaves the map open (its gamma acts on DDPM timesteps, default 1.5). av-link's: the
    two modalities move apart by `gamma` in logit space, audio ahead (less noisy) for gamma > 0,

        t_audio = sigmoid(logit(t) + gamma / 2),   t_video = sigmoid(logit(t) - gamma / 2),

    written as `t e^c / (t e^c + 1 - t)` so that the end points stay exact (t = 0: noise, t = 1: data, for
    both). gamma = 0 gives equal times: AV-Link's joint generation, t_a = t_v. Training draws the global time and
    both local ones follow; sampling walks the global grid and steps each modality by its own local times.
    """
    t = torch.as_tensor(t, dtype=torch.float64) if not torch.is_tensor(t) else t
    if gamma == 0:
        return t, t
    ahead, behind = (math.exp(sign * gamma / 2) for sign in (1, -1))
    return t * ahead / (t * ahead + (1 - t)), t * behind / (t * behind + (1 - t))
