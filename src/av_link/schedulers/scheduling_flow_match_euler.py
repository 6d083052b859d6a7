"""First-order Euler sampler and training-time samplers for rectified flow, in the paper's convention.

Convention (AV-Link, SyncFlow): `x_t = t * x1 + (1 - t) * x0` with `t = 0` pure noise `x0` and
`t = 1` data `x1`; the network predicts the velocity `x1 - x0`; sampling integrates from t = 0 to
t = 1. diffusers' `FlowMatchEulerDiscreteScheduler` runs sigma = 1 - t from 1 down to 0 instead:
every time this class takes or returns is a `t` of the paper's convention.
"""

from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput

TIME_SAMPLINGS = ("logit_normal", "uniform", "fixed")


@dataclass
class FlowMatchEulerSchedulerOutput(BaseOutput):
    prev_sample: torch.Tensor  # the sample at the next (less noisy) time


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    """SD3-style time shift in this convention: shift > 1 spends more of the schedule near noise."""
    if shift == 1.0:
        return t
    sigma = 1 - t
    return 1 - shift * sigma / (1 + (shift - 1) * sigma)


class FlowMatchEulerScheduler(SchedulerMixin, ConfigMixin):
    """Euler sampler from t = 0 (noise) to t = 1 (data), plus `add_noise` and training time samplers.

    Args:
        shift: time shift applied to the sampling grid (1.0 = the uniform grid of the paper).
        time_sampling: training distribution of t: "logit_normal" (sigmoid of N(logit_mean, logit_std)),
            "uniform", or "fixed" (always `fixed_time`).
        logit_mean, logit_std: logit-normal location and scale (0, 1 for backbones; -1, 1 for Fusion Blocks).
        fixed_time: the time used by "fixed" (e.g. 0.96 for the conditioning video in V2A).
    """

    order = 1
    init_noise_sigma = 1.0

    @register_to_config
    def __init__(
        self,
        shift: float = 1.0,
        time_sampling: str = "logit_normal",
        logit_mean: float = 0.0,
        logit_std: float = 1.0,
        fixed_time: float = 1.0,
    ):
        if shift <= 0:
            raise ValueError(f"shift must be positive, got {shift}")
        if time_sampling not in TIME_SAMPLINGS:
            raise ValueError(f"time_sampling must be one of {TIME_SAMPLINGS}, got {time_sampling!r}")
        if logit_std <= 0:
            raise ValueError(f"logit_std must be positive, got {logit_std}")
        if not 0.0 <= fixed_time <= 1.0:
            raise ValueError(f"fixed_time must be in [0, 1], got {fixed_time}")
        self.times: torch.Tensor | None = None
        self.timesteps: torch.Tensor | None = None
        self.num_inference_steps: int | None = None
        self._step_index: int | None = None

    # -- sampling -----------------------------------------------------------------------
    def set_timesteps(self, num_inference_steps: int | None = None, device=None, times: list[float] | None = None):
        """Build the grid: `self.timesteps` are the N times the model is evaluated at, `self.times` the
        N + 1 grid points including the final t = 1. Pass `times` (increasing, in [0, 1)) for a custom grid."""
        if times is not None:
            grid = torch.as_tensor(list(times) + [1.0], dtype=torch.float64)
            if grid[0] < 0 or (grid[1:] <= grid[:-1]).any():
                raise ValueError("times must be increasing, start at >= 0 and stay below 1")
        else:
            if num_inference_steps is None or int(num_inference_steps) < 1:
                raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps}")
            grid = shift_time(torch.linspace(0.0, 1.0, int(num_inference_steps) + 1, dtype=torch.float64), self.config.shift)
        self.times = grid.float().to(device)
        self.timesteps = self.times[:-1]
        self.num_inference_steps = len(self.timesteps)
        self._step_index = None

    @property
    def step_index(self) -> int | None:
        return self._step_index

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        return sample

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, return_dict: bool = True):
        """One Euler step `x <- x + (t_next - t) * v` from the current grid point to the next."""
        if self.times is None:
            raise ValueError("call set_timesteps before step")
        if self._step_index is None:
            self._step_index = self._index_for(timestep)
        if self._step_index >= self.num_inference_steps:
            raise ValueError("the sampler has already reached t = 1; call set_timesteps to start again")
        dt = self.times[self._step_index + 1] - self.times[self._step_index]
        prev = (sample.float() + dt.to(sample.device) * model_output.float()).to(sample.dtype)
        self._step_index += 1
        return FlowMatchEulerSchedulerOutput(prev_sample=prev) if return_dict else (prev,)

    def _index_for(self, timestep) -> int:
        t = torch.as_tensor(timestep, dtype=self.timesteps.dtype, device=self.timesteps.device).reshape(-1)[0]
        return int((self.timesteps - t).abs().argmin())

    # -- training -----------------------------------------------------------------------
    @staticmethod
    def add_noise(original_samples: torch.Tensor, noise: torch.Tensor, timesteps) -> torch.Tensor:
        """`x_t = t * x1 + (1 - t) * x0`, `timesteps` a scalar or one t per batch element."""
        t = torch.as_tensor(timesteps, dtype=original_samples.dtype, device=original_samples.device)
        if t.ndim == 1:
            if t.shape[0] != original_samples.shape[0]:
                raise ValueError(f"got {t.shape[0]} timesteps for a batch of {original_samples.shape[0]}")
            t = t.reshape(-1, *([1] * (original_samples.ndim - 1)))
        elif t.ndim != 0:
            raise ValueError(f"timesteps must be a scalar or 1D, got shape {tuple(t.shape)}")
        return t * original_samples + (1 - t) * noise

    @staticmethod
    def velocity_target(original_samples: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The regression target of the network: `x1 - x0`."""
        return original_samples - noise

    def sample_timesteps(self, batch_size: int, generator: torch.Generator | None = None, device=None, **overrides) -> torch.Tensor:
        """Training times `(batch_size,)` from the configured distribution; keyword args override the config
        for one call (e.g. `time_sampling="fixed", fixed_time=0.96`)."""
        cfg = {**{k: self.config[k] for k in ("time_sampling", "logit_mean", "logit_std", "fixed_time")}, **overrides}
        gen_device = generator.device if generator is not None else "cpu"
        if cfg["time_sampling"] == "logit_normal":
            z = torch.randn(batch_size, generator=generator, device=gen_device)
            t = torch.sigmoid(cfg["logit_mean"] + cfg["logit_std"] * z)
        elif cfg["time_sampling"] == "uniform":
            t = torch.rand(batch_size, generator=generator, device=gen_device)
        elif cfg["time_sampling"] == "fixed":
            t = torch.full((batch_size,), float(cfg["fixed_time"]))
        else:
            raise ValueError(f"time_sampling must be one of {TIME_SAMPLINGS}, got {cfg['time_sampling']!r}")
        return t.to(device) if device is not None else t

    def __len__(self) -> int:
        return self.num_inference_steps or 0
