import json
import logging
import os

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FlowMatchHeunDiscreteScheduler

from av_link import FlowMatchEulerScheduler
from av_link.evaluation import shipped_models_dir
from av_link.schedulers import noisy_sample, scheduler_output, time_from_timestep, velocity_target


def integrate(scheduler, x0, velocity_at):
    """Sample with an av-link velocity field `velocity_at(x, t)` (t: av-link time), converting as the pipelines do."""
    x = x0
    for timestep in scheduler.timesteps:
        v = velocity_at(x, time_from_timestep(timestep, scheduler.config.num_train_timesteps))
        x = scheduler.step(scheduler_output(v), timestep, x).prev_sample
    return x


@pytest.mark.parametrize("steps, shift", [(1, 1.0), (7, 1.0), (64, 3.0)])
def test_euler_integrates_constant_velocity_exactly(steps, shift):
    scheduler = FlowMatchEulerScheduler(shift=shift)
    scheduler.set_timesteps(steps)
    assert scheduler.timesteps[0] == 1000 and scheduler.sigmas[-1] == 0 and len(scheduler.timesteps) == steps
    assert (scheduler.sigmas[1:] < scheduler.sigmas[:-1]).all()
    x0, velocity = torch.randn(2, 5), torch.randn(2, 5)
    x = integrate(scheduler, x0, lambda x, t: velocity)
    torch.testing.assert_close(x, x0 + velocity, rtol=0, atol=1e-5)


def test_euler_follows_the_linear_path_to_the_data():
    """With the true velocity x1 - x0, every step stays on av-link's x_t = t x1 + (1 - t) x0."""
    scheduler = FlowMatchEulerScheduler()
    scheduler.set_timesteps(10)
    x0, x1 = torch.randn(3), torch.randn(3)
    x = x0
    for timestep in scheduler.timesteps:
        t = time_from_timestep(timestep)
        torch.testing.assert_close(x, noisy_sample(x1, x0, t))
        torch.testing.assert_close(x, scheduler.add_noise(x1, x0, timestep))  # the same point in diffusers' units
        x = scheduler.step(scheduler_output(velocity_target(x1, x0)), timestep, x).prev_sample
    torch.testing.assert_close(x, x1)


def test_default_grid_is_the_papers_uniform_grid():
    scheduler = FlowMatchEulerScheduler()
    scheduler.set_timesteps(4)
    assert scheduler.sigmas.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert scheduler.timesteps.tolist() == [1000.0, 750.0, 500.0, 250.0]


def test_shift_moves_steps_towards_noise():
    plain, shifted = FlowMatchEulerScheduler(), FlowMatchEulerScheduler(shift=3.0)
    plain.set_timesteps(8)
    shifted.set_timesteps(8)
    assert (shifted.sigmas[1:-1] > plain.sigmas[1:-1]).all()


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_diffusers_flow_match_euler_gives_the_same_samples(shift):
    """Given the same grid, diffusers' own scheduler is a drop-in replacement (same sigmas, same trajectory)."""
    ours = FlowMatchEulerScheduler(shift=shift)
    theirs = FlowMatchEulerDiscreteScheduler.from_config(ours.config)
    assert theirs.config.shift == shift
    ours.set_timesteps(16)
    theirs.set_timesteps(sigmas=[1.0 - i / 16 for i in range(16)])
    torch.testing.assert_close(theirs.sigmas, ours.sigmas)
    x0 = torch.randn(2, 6)
    field = lambda x, t: torch.sin(3 * x) * (1 - t) + t  # noqa: E731  (nonlinear, time-dependent)
    torch.testing.assert_close(integrate(theirs, x0, field), integrate(ours, x0, field), rtol=0, atol=1e-6)


def test_compatibles_are_diffusers_flow_schedulers():
    assert set(FlowMatchEulerScheduler().compatibles) == {FlowMatchEulerDiscreteScheduler, FlowMatchHeunDiscreteScheduler}


def test_add_noise_broadcasts_a_single_timestep():
    x1, noise = torch.full((3, 2), 2.0), torch.zeros(3, 2)
    scheduler = FlowMatchEulerScheduler()
    for timestep in (250, torch.tensor(250.0), torch.tensor([250.0])):  # sigma 0.25: x = 0.75 * 2
        torch.testing.assert_close(scheduler.add_noise(x1, noise, timestep), torch.full((3, 2), 1.5))
    per_row = scheduler.add_noise(x1, noise, torch.tensor([0.0, 500.0, 1000.0]))
    torch.testing.assert_close(per_row[:, 0], torch.tensor([2.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="got 2 timesteps for a batch of 3"):
        scheduler.add_noise(x1, noise, torch.tensor([0.0, 1.0]))


def test_noisy_sample_convention():
    x1, noise = torch.full((2, 3), 2.0), torch.zeros(2, 3)
    torch.testing.assert_close(noisy_sample(x1, noise, torch.tensor([0.0, 1.0])), torch.stack([noise[0], x1[1]]))
    torch.testing.assert_close(noisy_sample(x1, noise, 0.25), torch.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="one per batch element"):
        noisy_sample(x1, noise, torch.rand(3))


def test_scheduler_save_load(tmp_path):
    scheduler = FlowMatchEulerScheduler(shift=2.0)
    scheduler.save_pretrained(tmp_path)
    loaded = FlowMatchEulerScheduler.from_pretrained(tmp_path)
    scheduler.set_timesteps(5)
    loaded.set_timesteps(5)
    assert loaded.config.shift == 2.0 and torch.equal(scheduler.sigmas, loaded.sigmas)


def test_configs_saved_before_still_load_and_sample_the_same_grid(tmp_path, caplog):
    """A scheduler config saved before the sigma convention (training samplers in it, as the first shipped models had)."""
    old = os.path.join(shipped_models_dir(), "v2a", "scheduler")
    with open(os.path.join(old, "scheduler_config.json")) as f:
        saved = json.load(f)
    legacy = {**saved, "_class_name": "FlowMatchEulerScheduler", "time_sampling": "logit_normal", "logit_mean": 0.0,
              "logit_std": 1.0, "fixed_time": 1.0, "shift": 2.0}
    (tmp_path / "scheduler_config.json").write_text(json.dumps(legacy))
    with caplog.at_level(logging.WARNING):
        scheduler = FlowMatchEulerScheduler.from_pretrained(tmp_path)
    assert "not expected" not in caplog.text and "time_sampling" not in scheduler.config
    scheduler.set_timesteps(4)
    # the old scheduler's grid: t = shift_time(linspace(0, 1, 5)), i.e. sigma = 2 s / (1 + s) on s = 1, 0.75, ...
    expected = torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0])
    torch.testing.assert_close(scheduler.sigmas, 2 * expected / (1 + expected))
    assert FlowMatchEulerScheduler.from_pretrained(old).config.shift == saved.get("shift", 1.0)
