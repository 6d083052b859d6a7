import pytest
import torch

from av_link import AVLinkAudioTransformer, AVLinkFusionAdapter, AVLinkVideoTransformer, embed_prefix, joint_forward
from av_link.models.rope import rope_1d

from conftest import randomize_


def _inputs(batch=2, frames=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    audio = torch.randn(batch, 2 * frames, 8, generator=g)  # 12 mel frames/s at 6 frames/token... 6 tokens/s
    video = torch.randn(batch, 3, frames, 4, 6, generator=g)
    text = torch.randn(batch, 5, 32, generator=g)
    return audio, video, text


def test_untrained_adapter_leaves_backbones_unchanged(tiny_models):
    audio_model, video_model, adapter = tiny_models
    randomize_(audio_model, 0.05, seed=1)
    randomize_(video_model, 0.05, seed=2)
    audio, video, text = _inputs()
    out = joint_forward(audio_model, video_model, adapter, audio, video, 0.3, 0.96, text, text)
    assert torch.equal(out.audio, audio_model(audio, 0.3, text).sample)
    assert torch.equal(out.video, video_model(video, 0.96, text).sample)


def test_trained_adapter_changes_both_backbones(tiny_models):
    audio_model, video_model, adapter = tiny_models
    randomize_(adapter, 0.1)
    audio, video, text = _inputs()
    out = joint_forward(audio_model, video_model, adapter, audio, video, 0.3, 0.96, text, text)
    assert not torch.allclose(out.audio, audio_model(audio, 0.3, text).sample)
    assert not torch.allclose(out.video, video_model(video, 0.96, text).sample)


def test_equal_time_gives_equal_rotation(tiny_models):
    audio_model, video_model, adapter = tiny_models
    audio, video, text = _inputs()
    a = audio_model.embed(audio, 0.5, text)  # 6 tokens per second
    v = video_model.embed(video, 0.5, text)  # 6 frames per second, 2x3 tokens each
    cos, sin = adapter.time_rope(a.time_positions, v.time_positions)
    la = a.hidden.shape[1]
    for n in range(la):
        for j in torch.nonzero(v.time_positions == a.time_positions[n]).flatten():
            assert torch.equal(cos[n], cos[la + j]) and torch.equal(sin[n], sin[la + j])
    assert not torch.equal(cos[0], cos[1])  # different instants, different rotations


def test_paper_tau_positions():
    """tau(n) = n for video frame n and n * eta_v / eta_a for audio token n (paper Eq. 4)."""
    adapter = AVLinkFusionAdapter.from_preset("tiny", time_rate=6.0)
    eta_a, eta_v = 86.1328125, 6.0
    audio_seconds = torch.arange(10, dtype=torch.float64) / eta_a
    video_seconds = torch.arange(4, dtype=torch.float64) / eta_v
    cos, _ = adapter.time_rope(audio_seconds, video_seconds)
    expected, _ = rope_1d(torch.cat([torch.arange(10) * eta_v / eta_a, torch.arange(4.0)]), 16)
    torch.testing.assert_close(cos, expected)


def test_shifting_both_sequences_in_time_keeps_attention_scores():
    adapter = AVLinkFusionAdapter.from_preset("tiny")
    head_dim = 16
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 4, 9, head_dim, generator=g), torch.randn(2, 4, 9, head_dim, generator=g)
    audio_s, video_s = torch.rand(5, dtype=torch.float64) * 3, torch.rand(4, dtype=torch.float64) * 3
    from diffusers.models.embeddings import apply_rotary_emb

    def scores(audio_shift, video_shift):
        rope = adapter.time_rope(audio_s + audio_shift, video_s + video_shift)
        return apply_rotary_emb(q, rope) @ apply_rotary_emb(k, rope).transpose(-1, -2)

    torch.testing.assert_close(scores(0.0, 0.0), scores(2.75, 2.75), atol=1e-4, rtol=1e-4)
    # Shifting only one modality changes the cross-modal scores: alignment is what RoPE encodes.
    assert not torch.allclose(scores(0.0, 0.0), scores(0.0, 0.5), atol=1e-3)


def test_fusion_block_output_is_invariant_to_a_common_time_shift(tiny_models):
    _, _, adapter = tiny_models
    randomize_(adapter, 0.1)
    g = torch.Generator().manual_seed(0)
    audio, video = torch.randn(1, 7, 64, generator=g), torch.randn(1, 12, 64, generator=g)
    mods = adapter.modulation(torch.tensor([0.2]), torch.tensor([0.96]))
    audio_s, video_s = torch.arange(7.0).double() / 6, torch.arange(12.0).double().div(4).floor() / 6
    base = adapter.fuse(0, audio, video, *mods, adapter.time_rope(audio_s, video_s))
    shifted = adapter.fuse(0, audio, video, *mods, adapter.time_rope(audio_s + 1.5, video_s + 1.5))
    for a, b in zip(base, shifted):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_gradients_reach_adapter_not_frozen_backbones(tiny_models):
    audio_model, video_model, adapter = tiny_models
    audio_model.requires_grad_(False)
    video_model.requires_grad_(False)
    audio, video, text = _inputs()
    for randomized in (False, True):
        if randomized:
            randomize_(adapter, 0.1)
        adapter.zero_grad()
        out = joint_forward(audio_model, video_model, adapter, audio, video, 0.3, 0.96, text, text, return_video=False)
        out.audio.square().mean().backward()
        grads = {n: p.grad for n, p in adapter.named_parameters()}
        assert all(p.grad is None for p in list(audio_model.parameters()) + list(video_model.parameters()))
        if randomized:  # every adapter parameter takes part, but the last block's video MLP, which V2A skips
            idle = {n for n, g in grads.items() if g is None or g.abs().sum() == 0}
            assert idle == {n for n in grads if n.startswith("blocks.1.video_mlp.")}, idle
        else:  # at zero init only the gates see a gradient, which is what lets training start
            assert grads["blocks.0.audio_modulation"].abs().sum() > 0


def test_v2a_skips_unused_video_work(tiny_models):
    audio_model, video_model, adapter = tiny_models  # fusion after video blocks 0 and 2 of 4
    calls = []
    for i, block in enumerate(video_model.blocks):
        block.register_forward_hook(lambda m, a, o, i=i: calls.append(i))
    video_model.proj_out.register_forward_hook(lambda *a: calls.append("proj_out"))
    audio, video, text = _inputs()
    out = joint_forward(audio_model, video_model, adapter, audio, video, 0.3, 0.96, text, text, return_video=False)
    assert out.video is None and out.audio is not None
    assert calls == [0, 1, 2]


def test_cached_prefix_gives_the_same_result(tiny_models):
    audio_model, video_model, adapter = tiny_models
    randomize_(adapter, 0.1)
    audio, video, text = _inputs()
    full = joint_forward(audio_model, video_model, adapter, audio, video, 0.3, 0.96, text, text, return_video=False)
    prefix = embed_prefix(video_model, adapter, "video", video, 0.96, text)
    assert prefix.next_block == adapter.config.video_layers[0] + 1
    cached = joint_forward(audio_model, video_model, adapter, audio, prefix, 0.3, 0.96, text, None, return_video=False)
    assert torch.equal(full.audio, cached.audio)


def test_heterogeneous_backbones():
    """A shallower, narrower audio model beside a deeper video model (paper Appx. D)."""
    audio_model = AVLinkAudioTransformer(in_channels=8, patch_size=2, frame_rate=12.0, num_layers=3, hidden_size=32,
                                         num_attention_heads=2, mlp_dim=64, text_dim=32)
    video_model = AVLinkVideoTransformer.from_preset("tiny", num_layers=6)
    adapter = randomize_(AVLinkFusionAdapter.from_preset("tiny", audio_dim=32, num_audio_layers=3, num_video_layers=6, num_blocks=4), 0.1)
    assert adapter.placement == [(0, 0), (1, 0), (3, 1), (4, 2)]
    audio, video, text = _inputs()
    out = joint_forward(audio_model, video_model, adapter, audio, video, 0.4, 0.8, text, text)
    assert out.audio.shape == audio.shape and out.video.shape == video.shape
    assert torch.isfinite(out.audio).all() and torch.isfinite(out.video).all()


def test_paper_scale_adapter_parameters():
    with torch.device("meta"):
        adapter = AVLinkFusionAdapter()
    total = sum(p.numel() for p in adapter.parameters())
    per_block = sum(p.numel() for p in adapter.blocks[0].parameters())
    assert len(adapter.blocks) == 8 and adapter.placement == [(3 * k, 3 * k) for k in range(8)]
    assert abs(total - 186e6) / 186e6 < 0.02, total
    assert abs(per_block - 23.25e6) / 23.25e6 < 0.02, per_block


def test_adapter_save_load_round_trip(tmp_path, tiny_models):
    audio_model, video_model, adapter = tiny_models
    randomize_(adapter, 0.1)
    adapter.save_pretrained(tmp_path)
    loaded = AVLinkFusionAdapter.from_pretrained(tmp_path)
    assert loaded.placement == adapter.placement
    audio, video, text = _inputs()
    a = joint_forward(audio_model, video_model, adapter, audio, video, 0.3, 0.96, text, text)
    b = joint_forward(audio_model, video_model, loaded, audio, video, 0.3, 0.96, text, text)
    torch.testing.assert_close(a.audio, b.audio, rtol=0, atol=1e-6)
    torch.testing.assert_close(a.video, b.video, rtol=0, atol=1e-6)


def test_adapter_gradient_checkpointing_same_gradients(tiny_models):
    audio_model, video_model, adapter = tiny_models
    randomize_(adapter, 0.1)
    audio, video, text = _inputs()

    def grads():
        adapter.zero_grad()
        out = joint_forward(audio_model, video_model, adapter, audio, video, 0.3, 0.96, text, text)
        (out.audio.square().mean() + out.video.square().mean()).backward()
        return [p.grad.clone() for p in adapter.parameters()]

    plain = grads()
    adapter.enable_gradient_checkpointing()
    audio_model.enable_gradient_checkpointing()
    for a, b in zip(plain, grads()):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(video_layers=[0, 5], audio_layers=[0, 1]), "video_layers index 5 is out of range for a backbone with 4 blocks"),
        (dict(video_layers=[], audio_layers=[]), "empty"),
        (dict(video_layers=[0, 1], audio_layers=[0]), "video_layers has 2 entries but audio_layers has 1"),
        (dict(video_layers=[2, 1], audio_layers=[0, 1]), "video_layers must be non-decreasing"),
        (dict(video_layers=[0]), "give both video_layers and audio_layers"),
        (dict(hidden_size=60), "hidden_size 60 must split into num_attention_heads=4"),
        (dict(num_blocks=0), "num_blocks must be positive"),
    ],
)
def test_bad_adapter_configs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AVLinkFusionAdapter.from_preset("tiny", **kwargs)


def test_mismatched_backbones_and_batches(tiny_models):
    audio_model, video_model, adapter = tiny_models
    audio, video, text = _inputs()
    wide = AVLinkFusionAdapter.from_preset("tiny", audio_dim=32)
    with pytest.raises(ValueError, match="audio backbone has width 64 .* expects audio_dim=32"):
        joint_forward(audio_model, video_model, wide, audio, video, 0.3, 0.96, text, text)
    with pytest.raises(ValueError, match="audio batch size 2 != video batch size 1"):
        joint_forward(audio_model, video_model, adapter, audio, video[:1], 0.3, 0.96, text, text[:1])


@pytest.mark.parametrize("side", ["audio", "video"])
def test_one_sided_fusion_equals_the_full_block(tiny_models, side):
    """The last block in V2A (A2V) attends from audio (video) queries only; that side's result is unchanged."""
    _, _, adapter = tiny_models
    randomize_(adapter, 0.1)
    g = torch.Generator().manual_seed(0)
    audio, video = torch.randn(2, 7, 64, generator=g), torch.randn(2, 12, 64, generator=g)
    mods = adapter.modulation(torch.tensor([0.2, 0.7]), torch.tensor([0.96, 0.96]))
    rope = adapter.time_rope(torch.arange(7.0).double() / 6, torch.arange(12.0).double().div(4).floor() / 6)
    full = adapter.fuse(1, audio, video, *mods, rope)
    one = adapter.fuse(1, audio, video, *mods, rope, return_audio=side == "audio", return_video=side == "video")
    k = 0 if side == "audio" else 1
    torch.testing.assert_close(one[k], full[k], atol=1e-6, rtol=1e-5)
    assert torch.equal(one[1 - k], (audio, video)[1 - k])  # the other side comes back untouched
