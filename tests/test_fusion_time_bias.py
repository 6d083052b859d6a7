"""The Fusion Blocks' optional time-distance attention bias (AVLinkFusionAdapter(time_bias=True))."""

import pytest
import torch

from av_link import AVLinkFusionAdapter, joint_forward
from av_link.models.fusion import time_bias_slopes

from conftest import randomize_


def _adapter(**kw):
    adapter = AVLinkFusionAdapter.from_preset("tiny", time_bias=True, **kw).eval()
    randomize_(adapter, 0.1)
    with torch.no_grad():  # randomize_ overwrote the slopes too: restore the documented start
        for block in adapter.blocks:
            block.time_bias_log2_slope.copy_(torch.log2(time_bias_slopes(adapter.config.num_attention_heads)))
    return adapter


def _tokens(seed=0):
    g = torch.Generator().manual_seed(seed)
    audio, video = torch.randn(1, 12, 64, generator=g), torch.randn(1, 24, 64, generator=g)
    audio_s = torch.arange(12.0).double() / 6  # 6 tokens/s over 2 s
    video_s = torch.arange(24.0).double().div(2).floor() / 6  # 6 frames/s, 2 tokens each
    return audio, video, audio_s, video_s


def _fuse(adapter, audio, video, audio_s, video_s, **kw):
    mods = adapter.modulation(torch.tensor([0.2]), torch.tensor([0.96]))
    return adapter.fuse(0, audio, video, *mods, adapter.time_rope(audio_s, video_s),
                        time_distance=adapter.time_distance(audio_s, video_s), **kw)


def test_slopes_run_from_one_step_to_nearly_flat():
    torch.testing.assert_close(time_bias_slopes(4), torch.tensor([1.0, 0.25, 0.0625, 0.015625]))
    assert time_bias_slopes(16)[0] == 1 and time_bias_slopes(16)[-1] < 0.01


def test_time_distance_is_in_rope_positions_and_off_by_default():
    assert AVLinkFusionAdapter.from_preset("tiny").time_distance(torch.zeros(2), torch.zeros(3)) is None
    adapter = AVLinkFusionAdapter.from_preset("tiny", time_bias=True, time_rate=6.0)
    d = adapter.time_distance(torch.tensor([0.0, 0.5]), torch.tensor([1.0]))
    torch.testing.assert_close(d, torch.tensor([[0.0, 3.0, 6.0], [3.0, 0.0, 3.0], [6.0, 3.0, 0.0]]))
    bias = adapter.blocks[0].attention_bias(d)
    assert bias.shape == (4, 3, 3)
    torch.testing.assert_close(bias[0], -d)  # first head: slope 1
    assert torch.all(bias.diagonal(dim1=1, dim2=2) == 0)


def test_a_steep_bias_makes_audio_deaf_to_video_far_away_in_time():
    adapter = _adapter()
    with torch.no_grad():
        for block in adapter.blocks:
            block.time_bias_log2_slope.fill_(6.0)  # 64 logits per step: attention stays within an instant
    audio, video, audio_s, video_s = _tokens()
    base, _ = _fuse(adapter, audio, video, audio_s, video_s, return_video=False)
    late = video.clone()
    late[:, video_s >= 1.5] += 3.0  # change only the video after 1.5 s
    changed, _ = _fuse(adapter, audio, late, audio_s, video_s, return_video=False)
    early = audio_s < 1.0
    torch.testing.assert_close(changed[:, early], base[:, early], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(changed[:, ~early], base[:, ~early], atol=1e-3)


def test_bias_changes_the_output_and_keeps_time_shift_invariance():
    adapter = _adapter()
    audio, video, audio_s, video_s = _tokens()
    with_bias = _fuse(adapter, audio, video, audio_s, video_s)
    shifted = _fuse(adapter, audio, video, audio_s + 2.25, video_s + 2.25)
    for a, b in zip(with_bias, shifted):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    mods = adapter.modulation(torch.tensor([0.2]), torch.tensor([0.96]))
    no_bias = adapter.blocks[0](audio, video, *mods, adapter.time_rope(audio_s, video_s))  # time_distance=None
    assert not torch.allclose(with_bias[0], no_bias[0], atol=1e-4)


def test_one_sided_fusion_matches_the_joint_block_with_bias():
    adapter = _adapter()
    audio, video, audio_s, video_s = _tokens(1)
    full_audio, full_video = _fuse(adapter, audio, video, audio_s, video_s)
    only_audio, _ = _fuse(adapter, audio, video, audio_s, video_s, return_video=False)
    _, only_video = _fuse(adapter, audio, video, audio_s, video_s, return_audio=False)
    torch.testing.assert_close(only_audio, full_audio, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(only_video, full_video, atol=1e-5, rtol=1e-5)


def test_fuse_without_time_distance_is_an_error():
    adapter = _adapter()
    audio, video, audio_s, video_s = _tokens()
    mods = adapter.modulation(torch.tensor([0.2]), torch.tensor([0.96]))
    with pytest.raises(ValueError, match="time_distance"):
        adapter.fuse(0, audio, video, *mods, adapter.time_rope(audio_s, video_s))


def test_slopes_are_trained_and_saved(tmp_path, tiny_models):
    audio_model, video_model, _ = tiny_models
    adapter = _adapter()
    g = torch.Generator().manual_seed(0)
    audio, video, text = torch.randn(1, 12, 8, generator=g), torch.randn(1, 3, 6, 4, 6, generator=g), torch.randn(1, 5, 32, generator=g)
    out = joint_forward(audio_model, video_model, adapter, audio, video, 0.3, 0.96, text, text, return_video=False)
    out.audio.square().mean().backward()
    assert all(b.time_bias_log2_slope.grad.abs().sum() > 0 for b in adapter.blocks)
    adapter.save_pretrained(tmp_path)
    loaded = AVLinkFusionAdapter.from_pretrained(tmp_path).eval()
    assert loaded.config.time_bias
    again = joint_forward(audio_model, video_model, loaded, audio, video, 0.3, 0.96, text, text, return_video=False)
    torch.testing.assert_close(again.audio, out.audio.detach())


def test_frozen_slopes_get_no_gradient_and_change_nothing_else(tiny_models):
    audio_model, video_model, _ = tiny_models
    adapter = _adapter()
    g = torch.Generator().manual_seed(0)
    audio, video, text = torch.randn(1, 12, 8, generator=g), torch.randn(1, 3, 6, 4, 6, generator=g), torch.randn(1, 5, 32, generator=g)
    learned = joint_forward(audio_model, video_model, adapter, audio, video, 0.3, 0.96, text, text, return_video=False).audio
    assert adapter.freeze_time_bias() == len(adapter.blocks)
    out = joint_forward(audio_model, video_model, adapter, audio, video, 0.3, 0.96, text, text, return_video=False).audio
    torch.testing.assert_close(out, learned)  # the same function, only what training updates differs
    out.square().mean().backward()
    assert all(b.time_bias_log2_slope.grad is None for b in adapter.blocks)
    assert all(b.audio_in.weight.grad.abs().sum() > 0 for b in adapter.blocks)
    with pytest.raises(ValueError, match="no time bias"):
        AVLinkFusionAdapter.from_preset("tiny", audio_dim=8, video_dim=6).freeze_time_bias()
