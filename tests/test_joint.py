"""Joint text-to-audio+video (AV-Link t_a = t_v, SyncFlow's adaptor, Ishii et al.'s timestep adjustment and CMC-PE)
and zero-shot V2A by latent replacement."""

import numpy as np
import pytest
import torch

from av_link import (
    AVLinkFusionAdapter,
    AVLinkTextToAudioPipeline,
    AVLinkTextToAudioVideoPipeline,
    AVLinkTextToVideoPipeline,
    joint_forward,
)
from av_link.schedulers import noisy_sample
from av_link.schedulers.flow_time import adjusted_times
from av_link.testing import TINY_PIPELINE_CONFIG, tiny_components
from av_link.training.objectives import ObjectiveConfig, fusion_loss

from conftest import LOADED_ATOL, overfit_losses, randomize_

ADAPTERS = {  # joint systems: adapter config beside the tiny preset (docs/joint.md)
    "avlink": {},
    "ishii": dict(fusion_type="cmc_pe", timestep_gamma=1.5),
    "syncflow": dict(fusion_type="syncflow", reinject="audio"),
}
STEPS = 3


def joint_pipe(config=None, seed=0, random_adapter=True):
    components = tiny_components(seed)
    if config is not None:
        components["fusion_adapter"] = AVLinkFusionAdapter.from_preset("tiny", **config)
    if random_adapter:
        randomize_(components["fusion_adapter"], 0.05, seed)
    pipe = AVLinkTextToAudioVideoPipeline(**components, **{**TINY_PIPELINE_CONFIG, "num_inference_steps": STEPS})
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample(pipe, **kw):
    kw = dict(audio_prompt="a knock", video_prompt="a red ball", generator=torch.Generator().manual_seed(0),
              output_type="latent") | kw
    return pipe(**kw)


def test_gamma_zero_gives_equal_times_and_the_end_points_stay():
    t = torch.arange(11, dtype=torch.float64) / 10  # exact 0 and 1 at the ends
    t_a, t_v = adjusted_times(t, 0.0)
    assert torch.equal(t_a, t) and torch.equal(t_v, t)
    t_a, t_v = adjusted_times(t, 1.5)
    assert t_a[0] == t_v[0] == 0 and t_a[-1] == t_v[-1] == 1
    assert torch.all(t_a[1:-1] > t[1:-1]) and torch.all(t_v[1:-1] < t[1:-1])  # audio ahead (less noisy)
    assert torch.all(t_a.diff() > 0) and torch.all(t_v.diff() > 0)
    torch.testing.assert_close(torch.logit(t_a[1:-1]) - torch.logit(t_v[1:-1]), torch.full((9,), 1.5, dtype=torch.float64))


def test_training_times_follow_gamma(monkeypatch, tiny_models):
    from av_link.training import objectives

    seen = []
    real = objectives.joint_forward
    monkeypatch.setattr(objectives, "joint_forward", lambda *a, **k: seen.append((a[5], a[6])) or real(*a, **k))
    audio, video, _ = tiny_models
    batch = dict(index=torch.arange(8), mel=torch.randn(8, 24, 8), video=torch.randn(8, 3, 4, 4, 4),
                 audio_caption=[""] * 8, video_caption=[""] * 8)
    encode = lambda c: (torch.zeros(len(c), 3, 32), None)  # noqa: E731
    for gamma in (0.0, 1.5):
        adapter = AVLinkFusionAdapter.from_preset("tiny", timestep_gamma=gamma)
        fusion_loss(audio, video, adapter, encode, batch, "joint_generation", ObjectiveConfig(), epoch=0)
    (a0, v0), (a1, v1) = seen
    assert torch.equal(a0, v0)  # gamma 0: one time for both
    torch.testing.assert_close(torch.logit(a1.double()) - torch.logit(v1.double()), torch.full((8,), 1.5, dtype=torch.float64),
                               atol=1e-5, rtol=0)


def test_an_identity_adapter_gives_the_two_backbones_own_pipelines():
    """Zero-gated Fusion Blocks: joint generation is the text-to-audio and text-to-video pipelines on the same noise
    (the audio noise drawn first; guidance on text in both)."""
    pipe = joint_pipe(random_adapter=False)
    out = sample(pipe)
    c = pipe.components
    shared = dict(scheduler=c["scheduler"], text_encoder=c["text_encoder"], tokenizer=c["tokenizer"],
                  clip_seconds=pipe.config.clip_seconds, num_inference_steps=STEPS)
    t2a = AVLinkTextToAudioPipeline(audio_transformer=c["audio_transformer"], audio_frontend=c["audio_frontend"],
                                    vocoder=c["vocoder"], **shared)
    t2v = AVLinkTextToVideoPipeline(video_transformer=c["video_transformer"], height=16, width=16, **shared)
    generator = torch.Generator().manual_seed(0)
    seconds = pipe.config.clip_seconds
    audio = t2a(prompt="a knock", audio_length_in_s=seconds, generator=generator, output_type="latent").audios
    video = t2v(prompt="a red ball", duration_in_s=seconds, generator=generator, output_type="latent").frames
    torch.testing.assert_close(out.audios, audio, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.frames, video, atol=1e-5, rtol=0)


def test_guidance_runs_both_branches_in_one_batch(monkeypatch):
    """Under guidance one joint forward per step carries the conditional and unconditional rows; the same samples as
    one forward per branch (what runs when a modality's texts cannot share a batch)."""
    from av_link.pipelines import pipeline_av_link_text_to_audio_video as module

    pipe = joint_pipe(ADAPTERS["avlink"])
    calls = []
    real = module.joint_forward
    monkeypatch.setattr(module, "joint_forward", lambda *a, **k: calls.append(a[3].shape[0]) or real(*a, **k))
    batched = sample(pipe, audio_prompt=["a knock", "a clang"], video_prompt="a red ball")
    assert calls == [4] * STEPS  # 2 outputs x 2 branches, one pass per step
    calls.clear()
    monkeypatch.setattr(module, "shared_text_batch", lambda pairs, neutral: None)
    apart = sample(pipe, audio_prompt=["a knock", "a clang"], video_prompt="a red ball")
    assert calls == [2] * (2 * STEPS)
    torch.testing.assert_close(batched.audios, apart.audios, atol=1e-5, rtol=0)
    torch.testing.assert_close(batched.frames, apart.frames, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_each_joint_system_samples_and_round_trips(name, tmp_path):
    pipe = joint_pipe(ADAPTERS[name])
    out = sample(pipe)
    assert out.audios.shape == (1, 172, 80) and out.frames.shape == (1, 3, 12, 16, 16)
    assert torch.isfinite(out.audios).all() and torch.isfinite(out.frames).all()
    pipe.save_pretrained(tmp_path)
    loaded = AVLinkTextToAudioVideoPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    again = sample(loaded)
    torch.testing.assert_close(again.audios, out.audios, atol=LOADED_ATOL, rtol=0)
    torch.testing.assert_close(again.frames, out.frames, atol=LOADED_ATOL, rtol=0)
    np_out = sample(pipe, output_type="np")
    assert np_out.audios.shape == (1, 44100) and np_out.frames.shape == (1, 12, 16, 16, 3) and np_out.fps == 6.0


def test_the_link_changes_the_other_modality():
    """Through the adapter the audio depends on the video's text (and for SyncFlow only that way round)."""
    for name, both in (("avlink", True), ("syncflow", False)):
        pipe = joint_pipe(ADAPTERS[name])
        a, b = sample(pipe), sample(pipe, video_prompt="a blue cube")
        assert not torch.allclose(a.audios, b.audios, atol=1e-5)
        c = sample(pipe, audio_prompt="a clang")
        assert torch.allclose(a.frames, c.frames, atol=1e-6) != both


@pytest.mark.parametrize("name", ["avlink", "ishii"])
def test_latent_replacement_holds_the_noised_video_at_every_step(name):
    """Zero-shot V2A: at every step the video latents are the given video noised to the current video time with the
    initial video noise (Ishii's gamma included), and only the audio is generated."""
    pipe = joint_pipe(ADAPTERS[name])
    frames = np.random.default_rng(0).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    signal = pipe.family("video").prepare(frames, 6.0)[0][0]
    noise = torch.randn(1, 3, 12, 16, 16, generator=torch.Generator().manual_seed(3))
    seen = []

    def record(p, i, timestep, tensors):
        seen.append(tensors["video_latents"].clone())
        return {}

    out = sample(pipe, replace_video=frames, video_fps=6.0, video_latents=noise, callback_on_step_end=record,
                 guidance_scale=5.0)
    gamma = pipe.fusion_adapter.config.timestep_gamma
    grid = [1 - s for s in pipe.scheduler.sigmas.tolist()]  # the scheduler's grid, ending at t = 1
    assert len(seen) == STEPS
    for i, latents in enumerate(seen):
        t_v = adjusted_times(torch.tensor(grid[i + 1], dtype=torch.float64), gamma)[1]
        torch.testing.assert_close(latents, noisy_sample(signal, noise, t_v.float()), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.frames, signal, atol=1e-6, rtol=0)  # t = 1: the video itself
    # the audio follows the given video: another video gives another sound
    other = sample(pipe, replace_video=255 - frames, video_fps=6.0, video_latents=noise)
    assert not torch.allclose(out.audios, other.audios, atol=1e-5)


@pytest.mark.parametrize("config", [dict(fusion_type="cmc_pe"), dict(fusion_type="direct"), {}])
def test_zero_initialised_joint_links_leave_the_backbones_unchanged(tiny_models, config):
    audio, video, _ = tiny_models
    adapter = AVLinkFusionAdapter.from_preset("tiny", **config).eval()
    g = torch.Generator().manual_seed(0)
    a, v, text = torch.randn(2, 24, 8, generator=g), torch.randn(2, 3, 4, 4, 4, generator=g), torch.randn(2, 5, 32, generator=g)
    with torch.no_grad():
        out = joint_forward(audio, video, adapter, a, v, 0.4, 0.4, text, text)
        torch.testing.assert_close(out.audio, audio(a, 0.4, text).sample, atol=1e-5, rtol=0)
        torch.testing.assert_close(out.video, video(v, 0.4, text).sample, atol=1e-5, rtol=0)


def test_syncflow_links_video_to_audio_only():
    with pytest.raises(ValueError, match='reinject="audio"'):
        AVLinkFusionAdapter.from_preset("tiny", fusion_type="syncflow")
    adapter = AVLinkFusionAdapter.from_preset("tiny", fusion_type="syncflow", reinject="audio")
    assert len(adapter.adaptors) == adapter.config.num_blocks and not adapter.blocks


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_joint_generation_training_lowers_the_loss(name):
    pipe = joint_pipe(ADAPTERS[name], random_adapter=False)
    losses = overfit_losses(pipe, pipe.fusion_adapter, "joint_generation")
    assert losses[-1] < losses[0], losses


def test_pair_scores_reward_only_a_pair_that_agrees():
    """The joint comparison's sync and kind agreement: a ground-truth pair scores 1; periodic clicks, silence and
    another clip's sound score low; the look classifier reads each kind from ground-truth frames."""
    from av_link.data.synthetic import SYNTHHITS_KINDS
    from av_link.data.synthetic_v2 import SynthHitsV2Config, generate_clip_v2
    from av_link.evaluation import fit_kind_classifier, fit_video_kind_classifier, pair_scores, periodic_clicks

    sound, look = fit_kind_classifier(), fit_video_kind_classifier()
    config = SynthHitsV2Config(width=16, height=16, fps_choices=(12.0,), duration_range=(3.0, 4.0))
    clips = [generate_clip_v2(config, 40_000_000 + i, kind=kind) for i, kind in enumerate(SYNTHHITS_KINDS)]
    for i, clip in enumerate(clips):
        assert look.predict(clip["frames"]) == clip["kind"]
        sr, wave, frames, fps = config.sample_rate, clip["audio"], clip["frames"], clip["fps"]
        true = pair_scores(wave, sr, frames, fps, sound, look)
        assert true["sync_f1"] >= 0.9 and true["kind_agreement"] == 1.0, true
        clicks = pair_scores(periodic_clicks(len(wave) / sr, sr), sr, frames, fps)
        assert clicks["audio_to_video"] < 0.5 and clicks["sync_f1"] < 0.6, clicks
        assert pair_scores(np.zeros_like(wave), sr, frames, fps)["sync_f1"] == 0.0
        other = clips[(i + 1) % len(clips)]
        mixed = pair_scores(other["audio"], sr, frames, fps, sound, look)
        assert mixed["sync_f1"] < true["sync_f1"] and mixed["kind_agreement"] == 0.0


def test_the_t2av_command_writes_one_video_with_its_sound(tmp_path):
    from av_link.commands.av_link_cli import main
    from av_link.utils.media_io import has_audio_stream, read_audio, read_video

    model = tmp_path / "joint"
    joint_pipe(ADAPTERS["avlink"]).save_pretrained(model)
    out = tmp_path / "out.mp4"
    code = main(["t2av", "--model", str(model), "--audio-prompt", "a knock", "--video-prompt", "a ball", "--steps", "2",
                 "--seed", "0", "--out", str(out), "--quiet"])
    assert code == 0 and has_audio_stream(out)
    frames, fps = read_video(out)
    audio, rate = read_audio(out)
    assert fps == 6.0 and len(frames) == 12 and abs(audio.shape[-1] / rate - 2.0) < 0.05
    assert main(["t2av", "--model", str(tmp_path), "--out", str(tmp_path / "x.mp4"), "--quiet"]) == 1  # not a model
    assert not (tmp_path / "x.mp4").exists()
