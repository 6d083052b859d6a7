"""diffusers' Wan and LongCat-AudioDiT behind av-link's backbone interface (models/backbone_views.py), on tiny random
configs of the exact diffusers classes, built in code."""

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from av_link import AVLinkAudioTransformer, AVLinkFusionAdapter, LongCatBackbone, WanBackbone, as_backbone, embed_prefix, joint_forward
from av_link.models.backbone_longcat import vae_downsampling
from av_link.testing import TINY_WAN_FPS, tiny_longcat_transformer, tiny_longcat_vae, tiny_wan_transformer, tiny_wan_vae

from conftest import randomize_


@pytest.fixture(scope="module")
def views():
    """Wan (width 24, 3 blocks) at 8 fps and LongCat (width 16, 2 blocks) at 8 latents per second."""
    wan = as_backbone(tiny_wan_transformer(), vae=tiny_wan_vae(), fps=TINY_WAN_FPS)
    longcat = as_backbone(tiny_longcat_transformer(), vae=tiny_longcat_vae())
    return wan, longcat


def _inputs(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(
        video=torch.randn(batch, 4, 3, 4, 6, generator=g),  # 3 latent frames (9 pixel frames) of 2 x 3 tokens
        audio=torch.randn(batch, 9, 8, generator=g),  # 9 latents: 72 samples at 64 samples/s
        text=torch.randn(batch, 5, 32, generator=g),
        mask=torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]][:batch], dtype=torch.bool),
        t=torch.tensor([0.25, 0.75][:batch]),
    )


def _adapter(**config):
    return AVLinkFusionAdapter(audio_dim=16, video_dim=24, hidden_size=32, num_attention_heads=2, mlp_dim=64,
                               num_audio_layers=2, num_video_layers=3, num_blocks=2, time_rate=8.0, **config).eval()


# -- the block path is the model's own forward ------------------------------------------------------------------

@torch.no_grad()
def test_wan_block_path_equals_its_forward(views):
    wan, _ = views
    x = _inputs()
    padded_text = x["text"] * x["mask"][..., None]  # what Wan's pipeline feeds for a masked prompt: zero padding
    prediction = wan.model(x["video"], timestep=torch.tensor([750.0, 250.0]), encoder_hidden_states=padded_text).sample
    velocity = wan(x["video"], x["t"], x["text"], x["mask"]).sample
    torch.testing.assert_close(velocity, -prediction, atol=1e-6, rtol=0)


@torch.no_grad()
def test_longcat_block_path_equals_its_forward(views):
    _, longcat = views
    x = _inputs()
    model = longcat.model
    frames = torch.tensor([[1] * 9, [1] * 6 + [0] * 3], dtype=torch.bool)
    cond = torch.randn_like(x["audio"])
    for kwargs in (dict(latent_cond=torch.zeros_like(x["audio"])), dict(attention_mask=frames, latent_cond=cond)):
        prediction = model(x["audio"], x["text"], x["mask"], timestep=x["t"], **kwargs).sample
        assert prediction.abs().max() > 0.1  # the random output layers make the comparison non-trivial
        velocity = longcat(x["audio"], x["t"], x["text"], x["mask"], **kwargs).sample
        torch.testing.assert_close(velocity, prediction, atol=1e-6, rtol=0)


# -- time and sign conventions -----------------------------------------------------------------------------------

def test_time_conversions_round_trip(views):
    wan, longcat = views
    t = torch.tensor([0.0, 0.25, 0.5, 0.96, 1.0], dtype=torch.float64)
    torch.testing.assert_close(wan.model_timestep(t), torch.tensor([1000.0, 750.0, 500.0, 40.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(longcat.model_timestep(t), t)
    for view in views:
        torch.testing.assert_close(view.flow_time(view.model_timestep(t)), t)


@torch.no_grad()
@pytest.mark.parametrize("family", ["wan", "longcat"])
def test_velocity_steps_like_the_models_own_scheduler(views, family):
    """Sign and time checked against each model's own sampler: the model's raw output stepped by the scheduler its
    diffusers pipeline uses equals an av-link Euler step `x + (t_next - t) * v` with the view's velocity. Wan's
    scheduler is shifted: the shift lives in the schedule, the view only maps times."""
    wan, longcat = views
    x = _inputs()
    if family == "wan":
        view, sample, scheduler = wan, x["video"], FlowMatchEulerDiscreteScheduler(shift=3.0)
        scheduler.set_timesteps(4)

        def raw(latents, timestep):  # WanPipeline: timestep = scheduler timestep (sigma * 1000)
            return view.model(latents, timestep=timestep.expand(2), encoder_hidden_states=x["text"]).sample

        times = [view.flow_time(ts) for ts in scheduler.timesteps] + [torch.tensor(1.0)]
    else:
        view, sample = longcat, x["audio"]
        scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, invert_sigmas=True)  # as LongCatAudioDiTPipeline builds it
        scheduler.set_timesteps(sigmas=torch.linspace(1.0, 1.0 / 4, 4).tolist())

        def raw(latents, timestep):  # LongCatAudioDiTPipeline: timestep / 1000, zero latent_cond
            return view.model(latents, x["text"], x["mask"], timestep=(timestep / 1000).expand(2),
                              latent_cond=torch.zeros_like(latents)).sample

        times = [view.flow_time(ts / 1000) for ts in scheduler.timesteps] + [torch.tensor(1.0)]
    assert times[0] == 0 and all(a < b for a, b in zip(times, times[1:]))  # av-link time rises from noise
    scheduler.set_begin_index(0)
    for i, timestep in enumerate(scheduler.timesteps):
        expected = scheduler.step(raw(sample, timestep), timestep, sample, return_dict=False)[0]
        velocity = view(sample, times[i], x["text"], None if family == "wan" else x["mask"]).sample
        sample = sample + (times[i + 1] - times[i]) * velocity
        torch.testing.assert_close(sample, expected, atol=1e-5, rtol=1e-5)


# -- joint forward between Wan and LongCat -----------------------------------------------------------------------

@torch.no_grad()
def test_untrained_adapter_leaves_wan_and_longcat_unchanged(views):
    wan, longcat = views
    x = _inputs()
    adapter = _adapter()
    out = joint_forward(longcat, wan, adapter, x["audio"], x["video"], x["t"], 0.96, x["text"], x["text"], x["mask"], x["mask"])
    assert torch.equal(out.audio, longcat(x["audio"], x["t"], x["text"], x["mask"]).sample)
    assert torch.equal(out.video, wan(x["video"], 0.96, x["text"], x["mask"]).sample)

    randomize_(adapter, 0.1)
    fused = joint_forward(longcat, wan, adapter, x["audio"], x["video"], x["t"], 0.96, x["text"], x["text"], x["mask"], x["mask"])
    assert not torch.allclose(fused.audio, out.audio, atol=1e-4) and not torch.allclose(fused.video, out.video, atol=1e-4)
    # A2V with the audio prefix embedded once, as the samplers cache it.
    prefix = embed_prefix(longcat, adapter, "audio", x["audio"], 0.8, x["text"], x["mask"])
    cached = joint_forward(longcat, wan, adapter, prefix, x["video"], 0.8, x["t"], None, x["text"], None, x["mask"], return_audio=False)
    full = joint_forward(longcat, wan, adapter, x["audio"], x["video"], 0.8, x["t"], x["text"], x["text"], x["mask"], x["mask"],
                         return_audio=False)
    assert torch.equal(cached.video, full.video)


@torch.no_grad()
@pytest.mark.parametrize("family", ["wan", "longcat"])
def test_global_conditioning_reaches_what_a_foreign_backbone_reads(views, family):
    """add_to_time_embedding (the global_into pathway) gives the model's own forward with the offset added to its
    timestep embedding: Wan's six block modulations and output shift, LongCat's blocks and output norm."""
    wan, longcat = views
    view, x = (wan, _inputs()) if family == "wan" else (longcat, _inputs())
    latents = x["video"] if family == "wan" else x["audio"]
    offset = torch.randn(2, view.hidden_size, generator=torch.Generator().manual_seed(3))
    embedder = view.model.condition_embedder.time_embedder if family == "wan" else view.model.time_embed
    hook = embedder.register_forward_hook(lambda module, args, out: out + offset)
    try:
        expected = view(latents, x["t"], x["text"], x["mask"]).sample
    finally:
        hook.remove()
    state = view.add_to_time_embedding(view.embed(latents, x["t"], x["text"], x["mask"]), offset)
    shifted = view.unembed(view.run_blocks(state))
    assert not torch.allclose(shifted, view(latents, x["t"], x["text"], x["mask"]).sample, atol=1e-4)
    torch.testing.assert_close(shifted, expected, atol=1e-5, rtol=0)


def test_adapter_checks_foreign_widths_and_depths(views):
    wan, longcat = views
    _adapter().check_backbones(longcat.model, wan.model)  # the plain diffusers models are read through their views
    with pytest.raises(ValueError, match="the video backbone has width 16 and 2 blocks, but the fusion adapter expects video_dim=24"):
        _adapter().check_backbones(longcat, longcat)


def test_as_backbone(views):
    wan, longcat = views
    own = AVLinkAudioTransformer.from_preset("tiny")
    assert as_backbone(own) is own and as_backbone(wan) is wan
    assert isinstance(as_backbone(wan.model), WanBackbone) and isinstance(as_backbone(longcat.model), LongCatBackbone)
    with pytest.raises(TypeError, match="Linear has no av-link backbone view"):
        as_backbone(torch.nn.Linear(2, 2))
    x = _inputs()
    with pytest.raises(ValueError, match="WanBackbone has no token clock"):  # joint_forward needs token times
        joint_forward(longcat, wan.model, _adapter(), x["audio"], x["video"], x["t"], 0.96, x["text"], x["text"])


def test_gradient_checkpointing_covers_the_frozen_foreign_blocks(views):
    wan, longcat = views
    x = _inputs()
    adapter = randomize_(_adapter(), 0.1)

    def grads():
        adapter.zero_grad()
        out = joint_forward(longcat, wan, adapter, x["audio"], x["video"], x["t"], 0.96, x["text"], x["text"], x["mask"], x["mask"])
        (out.audio.square().mean() + out.video.square().mean()).backward()
        return [p.grad.clone() for p in adapter.parameters()]

    for view in views:
        view.model.requires_grad_(False)
    reference = grads()
    calls = []

    def checkpoint(block, *args):
        calls.append(type(block).__name__)
        return torch.utils.checkpoint.checkpoint(block, *args, use_reentrant=False)

    try:
        for view in views:  # Wan through diffusers' own switch; LongCat's forward has none, its view's loop reads the flag
            view.enable_gradient_checkpointing(checkpoint)
        checkpointed = grads()
    finally:
        for view in views:
            view.disable_gradient_checkpointing()
    assert sorted(calls) == ["AudioDiTBlock"] * 2 + ["WanTransformerBlock"] * 3
    for a, b in zip(checkpointed, reference):
        torch.testing.assert_close(a, b)


# -- token times ---------------------------------------------------------------------------------------------------

@torch.no_grad()
def test_wan_token_seconds_follow_its_causal_vae(views):
    """Latent frame k stands for the first pixel frame it sees: perturbing pixel frame j first changes latent frame
    0 for j = 0 and 1 + (j - 1) // 4 after; 9 frames give 3 latents, 13 give 4."""
    wan, _ = views
    vae = tiny_wan_vae()
    for frames, latents in ((9, 3), (13, 4)):
        video = torch.randn(1, 3, frames, 8, 8, generator=torch.Generator().manual_seed(frames))
        base = vae.encode(video).latent_dist.mean
        assert base.shape[2] == latents
        first_frame = {}
        for j in range(frames):
            bumped = video.clone()
            bumped[:, :, j] += 1.0
            changed = (vae.encode(bumped).latent_dist.mean - base).abs().amax(dim=(0, 1, 3, 4)) > 0
            first_frame.setdefault(int(changed.nonzero()[0]), j)
        expected = torch.tensor([first_frame[k] for k in range(latents)], dtype=torch.float64) / TINY_WAN_FPS
        torch.testing.assert_close(wan.latent_frame_seconds(latents), expected)
        tokens = wan.token_seconds(torch.zeros(1, 4, latents, 4, 6))  # 2 x 3 tokens per latent frame
        torch.testing.assert_close(tokens, expected.repeat_interleave(6))


@torch.no_grad()
def test_longcat_token_seconds_follow_its_vae():
    vae = tiny_longcat_vae()
    assert vae_downsampling(vae) == 2 * 4  # the product of its strides
    latents = vae.encode(torch.randn(1, 1, 72), sample_posterior=False).latents.transpose(1, 2)
    assert latents.shape[1] == 72 // 8
    view = as_backbone(tiny_longcat_transformer(), vae=vae)
    torch.testing.assert_close(view.token_seconds(latents), torch.arange(9, dtype=torch.float64) * 8 / 64)


def test_mismatched_downsampling_ratio_is_one_clear_error():
    with pytest.raises(ValueError, match=r"downsampling_ratio=16, but its encoder's strides compress 8 samples"):
        as_backbone(tiny_longcat_transformer(), vae=tiny_longcat_vae(downsampling_ratio=16))


@torch.no_grad()
def test_time_aligned_rope_inside_the_fusion_attention(views):
    """A Wan token and a LongCat token at the same instant get the same rotation in the Fusion Block's attention:
    Wan latent frames 0, 1, 2 start at pixel frames 0, 1, 5 (0, 1/8, 5/8 s), LongCat latents n at n/8 s."""
    wan, longcat = views
    x = _inputs()
    adapter = randomize_(_adapter(), 0.1)
    seen = []
    hook = adapter.blocks[0].attn.register_forward_pre_hook(lambda m, args, kwargs: seen.append(kwargs["rotary_emb"]),
                                                           with_kwargs=True)
    try:
        joint_forward(longcat, wan, adapter, x["audio"], x["video"], x["t"], 0.96, x["text"], x["text"])
    finally:
        hook.remove()
    cos, sin = seen[0]
    audio_s, video_s = longcat.token_seconds(x["audio"]), wan.token_seconds(x["video"])
    la = len(audio_s)
    for n, j in ((0, 0), (1, 6), (5, 12)):  # audio latent n and the first token of Wan latent frame 0, 1, 2
        assert audio_s[n] == video_s[j]
        assert torch.equal(cos[n], cos[la + j]) and torch.equal(sin[n], sin[la + j])
    assert not torch.equal(cos[2], cos[la + 6])  # 2/8 s is not 1/8 s
