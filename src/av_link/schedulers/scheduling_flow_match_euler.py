"""First-order Euler sampler for rectified flow, with diffusers' sigma convention at its interface.

`FlowMatchEulerScheduler` is diffusers' `FlowMatchEulerDiscreteScheduler` with the paper's grid as its default
(uniform in sigma from 1 to 1/N, then 0: AV-Link samples with 64 uniform Euler steps), and an `add_noise` that
takes any timestep, so the two are interchangeable in av-link pipelines (which pass that grid as `sigmas`).
Times, velocities and timesteps follow diffusers (see :mod:`av_link.schedulers.flow_time`).

Configs saved before this class followed diffusers carried training-time samplers (`time_sampling`,
`logit_mean`, `logit_std`, `fixed_time`) that training never read; they are dropped on load. Their `shift` and
the paper grid are kept, so such checkpoints sample exactly as before.
"""

import numpy as np
import torch
from diffusers.schedulers.scheduling_flow_match_euler_discrete import (
    FlowMatchEulerDiscreteScheduler,
    FlowMatchEulerDiscreteSchedulerOutput,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin  # noqa: F401  (the diffusers loader looks this name up here)

FlowMatchEulerSchedulerOutput = FlowMatchEulerDiscreteSchedulerOutput
LEGACY_TRAINING_KEYS = ("time_sampling", "logit_mean", "logit_std", "fixed_time")


def paper_sigmas(num_inference_steps: int) -> np.ndarray:
    """The N sigmas the model is evaluated at on the paper's uniform grid: 1, 1 - 1/N, ..., 1/N."""
    if not isinstance(num_inference_steps, (int, np.integer)) or num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
    return np.linspace(1.0, 1.0 / num_inference_steps, num_inference_steps)


class FlowMatchEulerScheduler(FlowMatchEulerDiscreteScheduler):
    """Euler from sigma = 1 (noise) to 0 (data). `set_timesteps(N)` without `sigmas` gives the paper's uniform grid
    (with `shift` applied as in diffusers); `add_noise` noises to any timestep, on the grid or not."""

    _compatibles = ["FlowMatchEulerDiscreteScheduler", "FlowMatchHeunDiscreteScheduler"]

    @classmethod
    def extract_init_dict(cls, config_dict, **kwargs):
        # Samplers of training time live in av_link.training now; old configs still load, without a warning.
        config_dict = {k: v for k, v in config_dict.items() if k not in LEGACY_TRAINING_KEYS}
        return super().extract_init_dict(config_dict, **kwargs)

    def set_timesteps(self, num_inference_steps: int | None = None, device=None, sigmas=None, mu=None, timesteps=None):
        if sigmas is None and timesteps is None:
            sigmas = paper_sigmas(num_inference_steps)
        return super().set_timesteps(num_inference_steps, device=device, sigmas=sigmas, mu=mu, timesteps=timesteps)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps) -> torch.Tensor:
        """`x = (1 - sigma) * original + sigma * noise` with `sigma = timesteps / num_train_timesteps`; `timesteps`
        is a scalar, a single value or one per batch element (broadcast like diffusers' schedulers)."""
        sigma = torch.as_tensor(timesteps, device=original_samples.device, dtype=torch.float32).flatten()
        if sigma.numel() not in (1, original_samples.shape[0]):
            raise ValueError(f"got {sigma.numel()} timesteps for a batch of {original_samples.shape[0]}")
        sigma = (sigma / self.config.num_train_timesteps).reshape(-1, *([1] * (original_samples.ndim - 1)))
        noisy = (1 - sigma) * original_samples.float() + sigma * noise.float()
        return noisy.to(original_samples.dtype)
