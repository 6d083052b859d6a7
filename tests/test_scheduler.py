import math

import pytest
import torch

from av_link import FlowMatchEulerScheduler


@pytest.mark.parametrize("steps, shift", [(1, 1.0), (7, 1.0), (64, 3.0)])
def test_euler_integrates_constant_velocity_exactly(steps, shift):
    scheduler = FlowMatchEulerScheduler(shift=shift)
    scheduler.set_timesteps(steps)
    assert scheduler.timesteps[0] == 0 and scheduler.times[-1] == 1 and len(scheduler.timesteps) == steps
    assert (scheduler.times[1:] > scheduler.times[:-1]).all()
    x0 = torch.randn(2, 5, dtype=torch.float64)
    velocity = torch.randn(2, 5, dtype=torch.float64)
    x = x0
    for t in scheduler.timesteps:
        x = scheduler.step(velocity, t, x).prev_sample
    torch.testing.assert_close(x, x0 + velocity, rtol=0, atol=1e-6)


def test_euler_follows_a_linear_path_to_the_data():
    """With the true rectified-flow velocity x1 - x0, every step stays on x_t = t x1 + (1 - t) x0."""
    scheduler = FlowMatchEulerScheduler()
    scheduler.set_timesteps(10)
    x0, x1 = torch.randn(3), torch.randn(3)
    x = x0
    for i, t in enumerate(scheduler.timesteps):
        torch.testing.assert_close(x, scheduler.add_noise(x1, x0, t))
        x = scheduler.step(scheduler.velocity_target(x1, x0), t, x).prev_sample
    torch.testing.assert_close(x, x1)


def test_shift_moves_steps_towards_noise():
    plain, shifted = FlowMatchEulerScheduler(), FlowMatchEulerScheduler(shift=3.0)
    plain.set_timesteps(8)
    shifted.set_timesteps(8)
    assert (shifted.timesteps[1:] < plain.timesteps[1:]).all()


def test_custom_grid_and_stepping_past_the_end():
    scheduler = FlowMatchEulerScheduler()
    scheduler.set_timesteps(times=[0.0, 0.5])
    x = scheduler.step(torch.ones(1), 0.0, torch.zeros(1)).prev_sample
    x = scheduler.step(torch.ones(1), 0.5, x).prev_sample
    assert x.item() == 1.0
    with pytest.raises(ValueError, match="already reached t = 1"):
        scheduler.step(torch.ones(1), 0.5, x)
    with pytest.raises(ValueError, match="increasing"):
        scheduler.set_timesteps(times=[0.5, 0.2])
    with pytest.raises(ValueError, match="positive integer"):
        scheduler.set_timesteps(0)


def test_add_noise_convention():
    x1, noise = torch.full((2, 3), 2.0), torch.zeros(2, 3)
    assert torch.equal(FlowMatchEulerScheduler.add_noise(x1, noise, torch.tensor([0.0, 1.0]))[0], noise[0])
    assert torch.equal(FlowMatchEulerScheduler.add_noise(x1, noise, torch.tensor([0.0, 1.0]))[1], x1[1])
    torch.testing.assert_close(FlowMatchEulerScheduler.add_noise(x1, noise, 0.25), torch.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="got 3 timesteps for a batch of 2"):
        FlowMatchEulerScheduler.add_noise(x1, noise, torch.rand(3))


def test_training_time_samplers():
    scheduler = FlowMatchEulerScheduler(logit_mean=-1.0, logit_std=1.0)
    t = scheduler.sample_timesteps(20000, generator=torch.Generator().manual_seed(0))
    logits = torch.logit(t.double())
    assert abs(logits.mean().item() + 1.0) < 0.03 and abs(logits.std().item() - 1.0) < 0.03
    again = scheduler.sample_timesteps(20000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(t, again)
    u = scheduler.sample_timesteps(20000, generator=torch.Generator().manual_seed(0), time_sampling="uniform")
    assert 0 <= u.min() and u.max() <= 1 and abs(u.mean().item() - 0.5) < 0.01
    fixed = scheduler.sample_timesteps(4, time_sampling="fixed", fixed_time=0.96)
    assert torch.equal(fixed, torch.full((4,), 0.96))


def test_bad_scheduler_configs():
    with pytest.raises(ValueError, match="time_sampling must be one of"):
        FlowMatchEulerScheduler(time_sampling="beta")
    with pytest.raises(ValueError, match="shift must be positive"):
        FlowMatchEulerScheduler(shift=0)
    with pytest.raises(ValueError, match="fixed_time must be in"):
        FlowMatchEulerScheduler(fixed_time=1.5)


def test_scheduler_save_load(tmp_path):
    scheduler = FlowMatchEulerScheduler(shift=2.0, time_sampling="fixed", fixed_time=0.8)
    scheduler.save_pretrained(tmp_path)
    loaded = FlowMatchEulerScheduler.from_pretrained(tmp_path)
    assert loaded.config.shift == 2.0 and loaded.config.fixed_time == 0.8
    scheduler.set_timesteps(5)
    loaded.set_timesteps(5)
    assert torch.equal(scheduler.times, loaded.times)
    assert math.isclose(float(loaded.sample_timesteps(1)[0]), 0.8, rel_tol=1e-6)
