"""The paper's ablation variants as adapter config (docs/ablations.md): each builds, round-trips, trains and samples;
the zero-initialised ones leave the backbones unchanged; static conditioning features run the conditioning backbone
once per input and give the step-by-step path's samples."""

import numpy as np
import pytest
import torch

from av_link import AVLinkA2VPipeline, AVLinkFusionAdapter, AVLinkV2APipeline, joint_forward
from av_link.models.fusion_variants import align, time_pooling
from av_link.models.joint import ConditioningStates, conditioning_states
from av_link.training.objectives import ObjectiveConfig, fusion_loss

from conftest import overfit_losses, randomize_, tiny_pipeline
from test_windows import conditioning, sequential

VARIANTS = {  # name -> adapter config (beside the tiny preset); docs/ablations.md lists them with the paper's names
    "fusion_blocks": {},
    "uniform_time": dict(conditioning_time="uniform"),
    "single_placement": dict(video_layers=[1, 1], audio_layers=[1, 1]),
    "static": dict(reinject="audio"),
    "cross_attention": dict(fusion_type="cross_attention"),
    "direct": dict(fusion_type="direct", reinject="audio"),
    "direct_both": dict(fusion_type="direct"),
    "concat_text": dict(fusion_type="concat_text", reinject="audio"),
    "rope_index": dict(rope_positions="index"),
    "text_tokens": dict(text_tokens_into="audio"),  # not in the paper: Fusion Blocks plus prefix tokens in the text
    "static_text_tokens": dict(reinject="audio", text_tokens_into="audio"),
    "global": dict(global_into="audio"),  # not in the paper: the video prefix, pooled, into the audio's adaLN
    "static_global": dict(reinject="audio", global_into="audio"),
}
ZERO_INITIALISED = [name for name in VARIANTS if "text" not in name]


def inputs(seed=0, batch=2):
    g = torch.Generator().manual_seed(seed)
    return dict(audio=torch.randn(batch, 24, 8, generator=g), video=torch.randn(batch, 3, 4, 4, 4, generator=g),
                text=torch.randn(batch, 5, 32, generator=g))


def run(models, adapter, x, **kw):
    audio, video, _ = models
    kw.setdefault("return_video", False)
    return joint_forward(audio, video, adapter, x["audio"], x["video"], 0.3, 0.96, x["text"], x["text"], **kw)


@pytest.mark.parametrize("name", ZERO_INITIALISED)
def test_an_untrained_variant_leaves_the_backbones_unchanged(tiny_models, name):
    audio, video, _ = tiny_models
    adapter = AVLinkFusionAdapter.from_preset("tiny", **VARIANTS[name]).eval()
    x = inputs()
    with torch.no_grad():
        out = run(tiny_models, adapter, x, return_video=adapter.reinjects("video"))
        torch.testing.assert_close(out.audio, audio(x["audio"], 0.3, x["text"]).sample, atol=1e-5, rtol=0)
        if adapter.reinjects("video"):
            torch.testing.assert_close(out.video, video(x["video"], 0.96, x["text"]).sample, atol=1e-5, rtol=0)


def test_concat_to_text_is_not_the_identity_untrained_and_reads_the_video(tiny_models):
    """Documented: its extra text tokens take attention weight from the start (the paper's variant has no gate)."""
    audio, _, _ = tiny_models
    adapter = AVLinkFusionAdapter.from_preset("tiny", **VARIANTS["concat_text"]).eval()
    x = inputs()
    with torch.no_grad():
        out = run(tiny_models, adapter, x).audio
        assert not torch.allclose(out, audio(x["audio"], 0.3, x["text"]).sample, atol=1e-4)
        other = run(tiny_models, adapter, dict(x, video=x["video"].flip(0))).audio
        assert not torch.allclose(out, other, atol=1e-4)
    with pytest.raises(ValueError, match="reinject"):
        AVLinkFusionAdapter.from_preset("tiny", fusion_type="concat_text")


@pytest.mark.parametrize("name", list(VARIANTS))
def test_a_variant_round_trips_through_save_pretrained(tiny_models, tmp_path, name):
    adapter = randomize_(AVLinkFusionAdapter.from_preset("tiny", **VARIANTS[name]), 0.1).eval()
    adapter.save_pretrained(tmp_path)
    loaded = AVLinkFusionAdapter.from_pretrained(tmp_path).eval()
    for key, value in VARIANTS[name].items():
        assert loaded.config[key] == value
    x = inputs(1)
    with torch.no_grad():
        torch.testing.assert_close(run(tiny_models, loaded, x).audio, run(tiny_models, adapter, x).audio, atol=0, rtol=0)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_a_variant_trains_and_samples(name):
    pipe = tiny_pipeline(AVLinkV2APipeline)
    pipe.set_progress_bar_config(disable=True)
    adapter = AVLinkFusionAdapter.from_preset("tiny", **VARIANTS[name])
    pipe.register_modules(fusion_adapter=adapter)
    losses = overfit_losses(pipe, adapter, "v2a")
    assert losses[-1] < losses[0], losses
    video = np.random.default_rng(0).integers(0, 256, (24, 20, 24, 3), dtype=np.uint8)  # 2 s
    out = pipe(video=video, video_fps=12, prompt="a knock", num_inference_steps=2, output_type="latent")
    assert out.audios.shape[:2] == (1, 172) and torch.isfinite(out.audios).all()


def test_uniform_conditioning_time_is_drawn_per_sample(monkeypatch, tiny_models):
    from av_link.training import objectives

    seen = []
    real = objectives.joint_forward

    def spy(*args, **kw):
        seen.append(args[6])  # video_timestep: the conditioning one in V2A
        return real(*args, **kw)

    monkeypatch.setattr(objectives, "joint_forward", spy)
    audio, video, _ = tiny_models
    batch = dict(index=torch.arange(16), mel=torch.randn(16, 24, 8), video=torch.randn(16, 3, 4, 4, 4),
                 audio_caption=[""] * 16, video_caption=[""] * 16)
    encode = lambda c: (torch.zeros(len(c), 3, 32), None)  # noqa: E731
    for time, adapter in (("fixed", AVLinkFusionAdapter.from_preset("tiny")),
                          ("uniform", AVLinkFusionAdapter.from_preset("tiny", conditioning_time="uniform"))):
        with torch.no_grad():
            fusion_loss(audio, video, adapter, encode, batch, "v2a", ObjectiveConfig(), epoch=0)
        t_c = seen[-1]
        if time == "fixed":
            assert torch.all(t_c == 0.96)
        else:
            assert t_c.min() >= 0 and t_c.max() < 1 and t_c.std() > 0.1


def test_index_rope_positions_count_each_modality_on_its_own():
    adapter = AVLinkFusionAdapter.from_preset("tiny", rope_positions="index")
    audio_s = torch.arange(6).double() / 12  # 12 tokens per second
    video_s = (torch.arange(8) // 4).double() / 4  # 2 frames of 4 tokens at 4 fps
    positions = adapter.rope_positions(audio_s, video_s)
    assert positions.tolist() == [0, 1, 2, 3, 4, 5, 0, 0, 0, 0, 1, 1, 1, 1]
    timed = AVLinkFusionAdapter.from_preset("tiny").rope_positions(audio_s, video_s)
    torch.testing.assert_close(timed, torch.cat([audio_s, video_s]) * 6.0)


def test_time_pooling_averages_intervals_and_holds_frames():
    audio_s = torch.tensor([0.0, 0.25, 0.5, 0.75])
    video_s = torch.tensor([0.0, 0.0, 0.5, 0.5])  # 2 frames of 2 tokens at 2 fps
    audio = torch.tensor([[[1.0], [3.0], [5.0], [7.0]]])
    video = torch.tensor([[[1.0], [3.0], [10.0], [20.0]]])
    # audio -> video: each frame gets the mean of the audio in its half second
    assert align(audio, audio_s, video_s).flatten().tolist() == [2.0, 2.0, 6.0, 6.0]
    # video -> audio: each audio token gets the mean of the frame it falls in (held)
    assert align(video, video_s, audio_s).flatten().tolist() == [2.0, 2.0, 15.0, 15.0]
    weights, index = time_pooling(audio_s, video_s)
    assert weights.shape == (2, 4) and index.tolist() == [0, 0, 1, 1]


def test_cross_attention_attends_only_to_the_other_modality():
    adapter = randomize_(AVLinkFusionAdapter.from_preset("tiny", fusion_type="cross_attention"), 0.2).eval()
    g = torch.Generator().manual_seed(0)
    audio, video = torch.randn(1, 6, 64, generator=g), torch.randn(1, 8, 64, generator=g)
    audio_s, video_s = torch.arange(6).double() / 6, (torch.arange(8) // 4).double() / 2
    mods = adapter.modulation(torch.tensor([0.2]), torch.tensor([0.96]))
    rope = adapter.time_rope(audio_s, video_s)

    def fused_audio(a, v):
        with torch.no_grad():
            return adapter.fuse(0, a, v, *mods, rope, return_video=False)[0]

    base = fused_audio(audio, video)
    nudged = audio.clone()
    nudged[0, 3] += 1.0
    moved = fused_audio(nudged, video)
    others = [i for i in range(6) if i != 3]
    torch.testing.assert_close(moved[0, others], base[0, others], atol=1e-6, rtol=0)  # no audio-to-audio attention
    video_nudged = video.clone()
    video_nudged[0, 5] += 1.0
    assert not torch.allclose(fused_audio(audio, video_nudged), base, atol=1e-4)  # but audio-to-video


@pytest.mark.parametrize("direction", ["v2a", "a2v"])
@pytest.mark.parametrize("name", ["static", "direct", "concat_text", "static_text_tokens", "text_tokens", "static_global",
                                  "global"])
def test_static_features_fast_path_equals_the_step_by_step_path(direction, name):
    """The conditioning backbone run once per input (its states at every fusion point reused at every step) gives
    the samples of the full joint model run at every step (test_windows.sequential), windows and CFG included."""
    generated = "audio" if direction == "v2a" else "video"
    config = {k: (generated if k in ("reinject", "text_tokens_into", "global_into") else v) for k, v in VARIANTS[name].items()}
    cls = AVLinkV2APipeline if direction == "v2a" else AVLinkA2VPipeline
    pipe = tiny_pipeline(cls)
    pipe.set_progress_bar_config(disable=True)
    pipe.register_modules(fusion_adapter=randomize_(AVLinkFusionAdapter.from_preset("tiny", **config), 0.05).eval())
    kwargs = conditioning(direction, 3.0, 1)  # 2 windows
    item = pipe.prepare_conditioning(*kwargs.values())[0]
    frames = item.num_audio_frames if generated == "audio" else item.num_video_frames
    latents = torch.randn((1, frames, 80) if generated == "audio" else (1, 3, frames, 16, 16),
                          generator=torch.Generator().manual_seed(0))
    expected = sequential(pipe, kwargs, latents, 10, 5.0)
    out = pipe(**kwargs, prompt="a knock", guidance_scale=5.0, latents=latents, output_type="latent",
               generator=torch.Generator().manual_seed(10))
    torch.testing.assert_close(out.audios if generated == "audio" else out.frames, expected, atol=1e-5, rtol=0)


def test_conditioning_states_run_the_conditioning_backbone_once(tiny_models):
    audio, video, _ = tiny_models
    adapter = randomize_(AVLinkFusionAdapter.from_preset("tiny", reinject="audio"), 0.1).eval()
    x = inputs(2)
    with torch.no_grad():
        states = conditioning_states(video, adapter, "video", x["video"], 0.96, x["text"])
        assert isinstance(states, ConditioningStates) and [s.next_block for s in states.states] == [1, 3]
        cached = joint_forward(audio, video, adapter, x["audio"], states, 0.3, 0.96, x["text"], None, return_video=False)
        torch.testing.assert_close(cached.audio, run((audio, video, None), adapter, x).audio, atol=1e-6, rtol=0)
        with pytest.raises(ValueError, match="reinjects into the audio"):
            conditioning_states(audio, adapter, "audio", x["audio"], 0.3, x["text"])
        with pytest.raises(ValueError, match="cannot condition the video output of a2v"):
            batch = dict(index=torch.arange(2), mel=x["audio"], video=x["video"], audio_caption=["", ""], video_caption=["", ""])
            fusion_loss(audio, video, adapter, lambda c: (torch.zeros(len(c), 3, 32), None), batch, "a2v", ObjectiveConfig(), 0)


def test_a_pipeline_refuses_an_adapter_that_cannot_condition_its_output():
    components = tiny_pipeline(AVLinkV2APipeline).components
    components["fusion_adapter"] = AVLinkFusionAdapter.from_preset("tiny", reinject="video")
    with pytest.raises(ValueError, match="cannot condition the audio"):
        AVLinkV2APipeline(**components)


def test_with_static_features_v2a_runs_the_video_backbone_once_per_input():
    """The fast path's point: the video blocks up to the last fusion point run at the first step only (one pass
    here), not at every step as with symmetric reinjection."""
    calls = {}
    for name in ("fusion_blocks", "static"):
        pipe = tiny_pipeline(AVLinkV2APipeline)
        pipe.set_progress_bar_config(disable=True)
        pipe.register_modules(fusion_adapter=randomize_(AVLinkFusionAdapter.from_preset("tiny", **VARIANTS[name]), 0.05))
        last = pipe.fusion_adapter.config.video_layers[-1]
        counter = []
        pipe.video_transformer.blocks[last].register_forward_hook(lambda *_: counter.append(1))
        pipe(**conditioning("v2a", 1.5, 0), prompt="a knock", num_inference_steps=4, output_type="latent")
        calls[name] = len(counter)
    assert calls == {"fusion_blocks": 4, "static": 1}


def test_text_tokens_come_from_the_conditioning_prefix(tiny_models):
    """text_tokens_into="audio": the video's features after its first fusion point (before any fusion) become extra
    text tokens of the audio; the audio changes with the video's prefix, and the setting is checked."""
    audio, video, _ = tiny_models
    adapter = randomize_(AVLinkFusionAdapter.from_preset("tiny", text_tokens_into="audio", reinject="audio"), 0.05).eval()
    plain = randomize_(AVLinkFusionAdapter.from_preset("tiny", reinject="audio"), 0.05).eval()
    x = inputs(4)
    with torch.no_grad():
        with_tokens, without = run(tiny_models, adapter, x).audio, run(tiny_models, plain, x).audio
        assert not torch.allclose(with_tokens, without, atol=1e-5)
        states = conditioning_states(video, adapter, "video", x["video"], 0.96, x["text"])
        cached = joint_forward(audio, video, adapter, x["audio"], states, 0.3, 0.96, x["text"], None, return_video=False)
        torch.testing.assert_close(cached.audio, with_tokens, atol=1e-6, rtol=0)
    for bad in (dict(text_tokens_into="video", reinject="audio"), dict(text_tokens_into="audio", fusion_type="concat_text",
                                                                       reinject="audio")):
        with pytest.raises(ValueError, match="text"):
            AVLinkFusionAdapter.from_preset("tiny", **bad)


def test_global_conditioning_is_the_pooled_prefix_added_to_the_time_embedding(tiny_models):
    """global_into="audio": the video's features after its first fusion point, averaged over its tokens and through
    the MLP, shift the audio backbone's time embedding, the same for every token, reaching every block and the output
    layer: with the links closed, the audio equals the backbone run with that offset hooked onto its time embedding."""
    audio, video, _ = tiny_models
    adapter = AVLinkFusionAdapter.from_preset("tiny", global_into="audio", reinject="audio").eval()
    randomize_(adapter.global_conditioning, 0.2)  # the Fusion Blocks stay closed (gate2 zero)
    x = inputs(5)
    with torch.no_grad():
        prefix = video.run_blocks(video.embed(x["video"], 0.96, x["text"]), adapter.config.video_layers[0] + 1)
        offset = adapter.global_conditioning.mlp(prefix.hidden.mean(1))
        assert offset.abs().min() > 0
        hook = audio.time_embedder.register_forward_hook(lambda module, args, out: out + offset)
        try:
            expected = audio(x["audio"], 0.3, x["text"]).sample
        finally:
            hook.remove()
        torch.testing.assert_close(run(tiny_models, adapter, x).audio, expected, atol=1e-5, rtol=0)
        # the unfused rows (CFG's unconditional branch) keep the plain time embedding
        both = dict(x, audio=torch.cat([x["audio"], x["audio"]]), text=torch.cat([x["text"], x["text"]]))
        states = conditioning_states(video, adapter, "video", x["video"], 0.96, x["text"])
        out = joint_forward(audio, video, adapter, both["audio"], states, 0.3, 0.96, both["text"], None,
                            return_video=False, unfused_rows=2).audio
        torch.testing.assert_close(out[:2], expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(out[2:], audio(x["audio"], 0.3, x["text"]).sample, atol=1e-5, rtol=0)
    for bad in (dict(global_into="video", reinject="audio"), dict(global_into="sound")):
        with pytest.raises(ValueError, match="global_into must be a modality the adapter reinjects into"):
            AVLinkFusionAdapter.from_preset("tiny", **bad)


def test_trained_blocks_take_added_modules(tmp_path, tiny_models):
    """from_trained: the trained weights kept, an added module fresh; an override that reshapes a weight fails."""
    trained = randomize_(AVLinkFusionAdapter.from_preset("tiny"), 0.1)
    trained.save_pretrained(tmp_path)
    extended = AVLinkFusionAdapter.from_trained(tmp_path, text_tokens_into="audio")
    assert extended.config.text_tokens_into == "audio" and extended.concat is not None
    kept = extended.state_dict()
    assert all(torch.equal(kept[k], v) for k, v in trained.state_dict().items())
    assert AVLinkFusionAdapter.from_trained(tmp_path).config.text_tokens_into is None
    extended = AVLinkFusionAdapter.from_trained(tmp_path, global_into="audio")
    assert extended.global_conditioning is not None and not any(p.any() for p in extended.global_conditioning.mlp[-1].parameters())
    with pytest.raises(RuntimeError, match="size mismatch"):
        AVLinkFusionAdapter.from_trained(tmp_path, hidden_size=32)
