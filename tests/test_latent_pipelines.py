"""V2A and A2V between diffusers' Wan and LongCat-AudioDiT, in their latent spaces (pipelines/families.py,
pipelines/from_backbones.py), on tiny random configs of the exact diffusers classes, built in code (no download, CPU).

With an untrained (zero-gated) adapter the linked pipelines must reproduce the generated backbone's own diffusers
pipeline for the same prompt, negative prompt, seed, steps and guidance on an equivalent Euler schedule."""

import json

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline, LongCatAudioDiTPipeline, WanPipeline
from transformers import UMT5EncoderModel

from av_link import AVLinkA2VPipeline, AVLinkFusionAdapter, AVLinkV2APipeline
from av_link.schedulers import FlowMatchEulerScheduler
from av_link.testing import (
    tiny_longcat_pipeline,
    tiny_longcat_vae,
    tiny_umt5_encoder,
    tiny_wan_longcat_adapter,
    tiny_wan_pipeline,
)
from av_link.utils.media_io import write_video, write_wav

from conftest import LOADED_ATOL, randomize_

STEPS = 4
CONFIG = dict(height=32, width=32, video_fps=8.0)  # the tiny Wan VAE: 8x in space, so 4 x 4 latents of 2 x 2 patches
SECONDS = 9 / 8  # 9 frames at 8 fps (3 Wan latents), 72 samples at 64 Hz (9 LongCat latents)


@pytest.fixture(scope="module")
def bases():
    """A WanPipeline (Euler, shift 3) and a LongCatAudioDiTPipeline sharing one tiny UMT5."""
    text_encoder, tokenizer = tiny_umt5_encoder()
    return tiny_wan_pipeline(text_encoder=text_encoder, tokenizer=tokenizer), tiny_longcat_pipeline(text_encoder=text_encoder,
                                                                                                     tokenizer=tokenizer)


def link(cls, bases, adapter=None, **config):
    wan, longcat = bases
    return cls.from_backbones(audio=longcat, video=wan, fusion_adapter=adapter or tiny_wan_longcat_adapter(), **{**CONFIG, **config})


def video(frames=9, seed=0, size=32):
    return np.random.default_rng(seed).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)


def audio(samples=72, seed=0):
    return np.random.default_rng(seed).normal(0, 0.1, samples).astype(np.float32)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def wan_sigmas(wan):
    """Sigmas that av-link's shifted Euler scheduler turns into the grid `WanPipeline` steps on: the scheduler's own
    unshifted grid (diffusers spaces it from its shifted sigma_max to sigma_min, then shifts)."""
    return np.linspace(wan.scheduler.sigma_max, wan.scheduler.sigma_min, STEPS)


def a2v_call(pipe, wan, **kwargs):
    return pipe(audio=audio(), sample_rate=64, prompt="a dog barks", negative_prompt="blurry", num_inference_steps=STEPS,
                guidance_scale=5.0, generator=gen(), sigmas=wan_sigmas(wan), **kwargs)


def v2a_call(pipe, **kwargs):
    return pipe(video=video(), video_fps=8, prompt="a dog barks", num_inference_steps=STEPS, guidance_scale=4.0, generator=gen(),
                **kwargs)


# -- identity with the diffusers pipelines -------------------------------------------------------------------------

@torch.no_grad()
def test_a2v_with_an_untrained_adapter_is_wan_pipeline(bases):
    wan, _ = bases
    pipe = link(AVLinkA2VPipeline, bases)
    assert isinstance(pipe.scheduler, FlowMatchEulerScheduler) and pipe.scheduler.config.shift == 3.0  # Wan's shift
    expected = wan(prompt="a dog barks", negative_prompt="blurry", height=32, width=32, num_frames=9, num_inference_steps=STEPS,
                   guidance_scale=5.0, generator=gen(), output_type="np").frames
    out = a2v_call(pipe, wan)
    assert out.fps == 8.0 and out.frames.shape == expected.shape == (1, 9, 32, 32, 3)
    np.testing.assert_allclose(out.frames, expected, atol=1e-5, rtol=0)
    latents = wan(prompt="a dog barks", negative_prompt="blurry", height=32, width=32, num_frames=9, num_inference_steps=STEPS,
                  guidance_scale=5.0, generator=gen(), output_type="latent").frames
    torch.testing.assert_close(a2v_call(pipe, wan, output_type="latent").frames, latents, atol=1e-5, rtol=0)


@torch.no_grad()
@pytest.mark.parametrize("negative_prompt", [None, "hum and hiss"])  # LongCat's zeros rule; a text of another length
def test_v2a_with_an_untrained_adapter_is_longcat_pipeline(bases, negative_prompt):
    _, longcat = bases
    pipe = link(AVLinkV2APipeline, bases)
    expected = longcat(prompt="a dog barks", negative_prompt=negative_prompt, audio_duration_s=SECONDS, num_inference_steps=STEPS,
                       guidance_scale=4.0, generator=gen(), output_type="np").audios
    out = v2a_call(pipe, negative_prompt=negative_prompt)
    assert out.sample_rate == 64 and out.audios.shape == (1, 72) and expected.shape == (1, 1, 72)
    np.testing.assert_allclose(out.audios, expected[:, 0], atol=1e-5, rtol=0)


@torch.no_grad()
def test_a_trained_adapter_changes_the_output(bases):
    wan, _ = bases
    trained = randomize_(tiny_wan_longcat_adapter(), 0.1)
    for cls, call, field in ((AVLinkA2VPipeline, lambda p: a2v_call(p, wan), "frames"), (AVLinkV2APipeline, v2a_call, "audios")):
        plain, fused = (getattr(call(link(cls, bases, adapter)), field) for adapter in (None, trained))
        assert np.isfinite(fused).all() and np.abs(fused - plain).max() > 1e-3, cls.__name__


# -- folders ---------------------------------------------------------------------------------------------------------

def test_folders_saved_by_the_diffusers_pipelines_load_through_from_backbones(bases, tmp_path, monkeypatch):
    wan, longcat = bases
    wan.save_pretrained(tmp_path / "Wan-tiny")
    longcat.save_pretrained(tmp_path / "LongCat-tiny")
    assert not (tmp_path / "LongCat-tiny" / "scheduler").exists()  # LongCat's pipeline builds its own
    tiny_wan_longcat_adapter().save_pretrained(tmp_path / "adapter")
    loads = []
    original = UMT5EncoderModel.from_pretrained.__func__
    monkeypatch.setattr(UMT5EncoderModel, "from_pretrained", classmethod(lambda c, *a, **k: loads.append(a) or original(c, *a, **k)))
    pipe = AVLinkV2APipeline.from_backbones(audio=str(tmp_path / "LongCat-tiny"), video=str(tmp_path / "Wan-tiny"),
                                            fusion_adapter=str(tmp_path / "adapter"), **CONFIG)
    assert len(loads) == 1  # the same UMT5 in both folders: loaded once, kept once
    assert pipe.text_encoder is not None and pipe.audio_text_encoder is None and pipe.video_text_encoder is None
    assert pipe.config.base_models == {"audio": "LongCat-tiny", "video": "Wan-tiny"}
    with torch.no_grad():
        np.testing.assert_array_equal(v2a_call(pipe).audios, v2a_call(link(AVLinkV2APipeline, bases)).audios)


def test_save_load_round_trip_with_a_model_card(bases, tmp_path):
    wan, longcat = bases
    own_text = tiny_umt5_encoder(seed=1)  # a LongCat with a text encoder of its own: one per modality
    longcat = LongCatAudioDiTPipeline(vae=longcat.vae, text_encoder=own_text[0], tokenizer=own_text[1], transformer=longcat.transformer)
    pipe = AVLinkA2VPipeline.from_backbones(audio=longcat, video=wan, fusion_adapter=randomize_(tiny_wan_longcat_adapter(), 0.1),
                                            **CONFIG)
    assert pipe.text_encoder is None and pipe.audio_text_encoder is own_text[0] and pipe.video_text_encoder is wan.text_encoder
    assert pipe.tokenizer is own_text[1] and pipe.audio_tokenizer is None  # equal (byte-level) tokenizers are kept once
    pipe.save_pretrained(tmp_path / "linked")
    card = (tmp_path / "linked" / "README.md").read_text()
    assert "## Base models" in card and "| audio | LongCatAudioDiTPipeline | `LongCatAudioDiTTransformer` |" in card
    assert "| video | WanPipeline | `WanTransformer3DModel` |" in card  # pipelines built in code are named by class
    index = json.loads((tmp_path / "linked" / "model_index.json").read_text())
    assert index["audio_vae"] == ["diffusers", "LongCatAudioDiTVae"] and index["audio_frontend"] == [None, None]
    with torch.no_grad():
        expected = a2v_call(pipe, wan).frames
        for loader in (AVLinkA2VPipeline, DiffusionPipeline):
            loaded = loader.from_pretrained(tmp_path / "linked")
            assert type(loaded) is AVLinkA2VPipeline and loaded.config.video_fps == 8.0
            np.testing.assert_allclose(a2v_call(loaded, wan).frames, expected, atol=LOADED_ATOL, rtol=0)


def test_card_names_hub_base_models(bases, tmp_path):
    pipe = link(AVLinkV2APipeline, bases)
    pipe.register_to_config(base_models={"audio": "meituan/LongCat-AudioDiT-1B-Diffusers", "video": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"})
    pipe.save_pretrained(tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert "base_model:\n- meituan/LongCat-AudioDiT-1B-Diffusers\n- Wan-AI/Wan2.1-T2V-1.3B-Diffusers" in card
    assert "| video | Wan-AI/Wan2.1-T2V-1.3B-Diffusers | `WanTransformer3DModel` |" in card


# -- errors ----------------------------------------------------------------------------------------------------------

def test_mismatched_or_missing_components_give_one_clear_error(bases):
    wan, longcat = bases
    adapter = tiny_wan_longcat_adapter()
    with pytest.raises(ValueError) as error:  # both VAEs missing, and no pixel rate for Wan: named together
        AVLinkV2APipeline(audio_transformer=longcat.transformer, video_transformer=wan.transformer, fusion_adapter=adapter,
                          scheduler=FlowMatchEulerScheduler(), text_encoder=wan.text_encoder, tokenizer=wan.tokenizer)
    message = str(error.value)
    assert message.startswith("AVLinkV2APipeline: the components do not fit together")
    assert "pass audio_vae" in message and "pass video_vae" in message
    with pytest.raises(ValueError, match="audio_transformer is a WanTransformer3DModel, a video backbone"):
        AVLinkV2APipeline.from_backbones(audio=wan, video=longcat, fusion_adapter=adapter, **CONFIG)
    with pytest.raises(ValueError, match="no text encoder|needs a text encoder"):
        AVLinkA2VPipeline(audio_transformer=longcat.transformer, video_transformer=wan.transformer, fusion_adapter=adapter,
                          scheduler=FlowMatchEulerScheduler(), audio_vae=longcat.vae, video_vae=wan.vae, **CONFIG)
    narrow = tiny_umt5_encoder(text_dim=16)
    with pytest.raises(ValueError, match="takes text of width 32, but its text encoder"):
        link(AVLinkA2VPipeline, (WanPipeline(tokenizer=narrow[1], text_encoder=narrow[0], vae=wan.vae, scheduler=wan.scheduler,
                                             transformer=wan.transformer), longcat))
    with pytest.raises(ValueError, match="set downsampling_ratio=8 in the VAE config"):
        link(AVLinkA2VPipeline, (wan, LongCatAudioDiTPipeline(vae=tiny_longcat_vae(downsampling_ratio=4), text_encoder=longcat.text_encoder,
                                                              tokenizer=longcat.tokenizer, transformer=longcat.transformer)))
    with pytest.raises(ValueError, match="needs height and width in multiples of 16"):
        link(AVLinkA2VPipeline, bases, height=24)
    with pytest.raises(ValueError, match=r"lacks \['vae'\]: from_backbones takes a diffusers pipeline"):
        AVLinkA2VPipeline.from_backbones(audio=longcat, video=WanPipeline(tokenizer=wan.tokenizer, text_encoder=wan.text_encoder, vae=None,
                                                                          scheduler=wan.scheduler, transformer=wan.transformer),
                                         fusion_adapter=adapter, **CONFIG)
    with pytest.raises(ValueError, match="the video backbone has width 24 and 3 blocks, but the fusion adapter expects video_dim=32"):
        link(AVLinkA2VPipeline, bases, AVLinkFusionAdapter(audio_dim=16, video_dim=32, hidden_size=32, num_attention_heads=2, mlp_dim=64,
                                                           num_audio_layers=2, num_video_layers=3, num_blocks=2))


# -- inputs and outputs as for av-link's own backbones ---------------------------------------------------------------

@torch.no_grad()
def test_files_any_rate_and_long_inputs(bases, tmp_path):
    v2a, a2v = (link(cls, bases, clip_seconds=1.0, window_overlap_seconds=0.5) for cls in (AVLinkV2APipeline, AVLinkA2VPipeline))
    rng = np.random.default_rng(0)
    mp4, wav = tmp_path / "clip.mp4", tmp_path / "sound.wav"
    write_video(mp4, video(25, size=48), fps=25, audio=rng.normal(0, 0.1, (2, 44100)).astype(np.float32), sample_rate=44100)
    write_wav(wav, rng.normal(0, 0.1, (2, 4410)).astype(np.float32), 44100)
    kwargs = dict(num_inference_steps=2, generator=gen())
    assert v2a(video=str(mp4), **kwargs).audios.shape == (1, 64)  # 1 s at 25 fps and 48 px -> 64 samples at 64 Hz
    assert a2v(audio=str(wav), **kwargs).frames.shape == (1, 1, 32, 32, 3)  # 0.1 s -> one frame at 8 fps
    assert a2v(audio=str(mp4), **kwargs).frames.shape == (1, 8, 32, 32, 3)  # the audio track of a video file
    assert len(v2a.windows_for(*v2a.prepare_conditioning(video(30), 10)[0].key[1:])) > 1
    long = v2a(video=video(30, seed=2), video_fps=10, **kwargs).audios  # 3 s in 1 s windows over the latents
    assert long.shape == (1, 192) and np.isfinite(long).all()
    long = a2v(audio=audio(192, seed=2), sample_rate=64, **kwargs).frames
    assert long.shape == (1, 24, 32, 32, 3) and np.isfinite(long).all()
    mixed = a2v(audio=[audio(72), audio(160, seed=1)], sample_rate=[64, 32], num_inference_steps=2,
                generator=[gen(0), gen(1)]).frames  # inputs of two lengths and rates: one output each
    assert [len(f) for f in mixed] == [9, 40]


def test_cli_runs_linked_folders(bases, tmp_path, capsys):
    from av_link import cli
    from av_link.utils.media_io import read_audio, read_video

    for cls in (AVLinkV2APipeline, AVLinkA2VPipeline):
        link(cls, bases).save_pretrained(tmp_path / cls.__name__)
    clip = tmp_path / "clip.mp4"
    write_video(clip, video(20, size=48), fps=16, audio=audio(22050, seed=3)[None], sample_rate=22050)
    fast = ["--steps", "2", "--seed", "0"]
    assert cli.main(["v2a", "--model", str(tmp_path / "AVLinkV2APipeline"), "--video", str(clip), "--out", str(tmp_path / "v2a.mp4"),
                     *fast]) == 0
    assert "decoded by LongCatAudioDiTVae" in capsys.readouterr().out
    sound, rate = read_audio(tmp_path / "v2a.mp4")
    assert sound.shape[-1] / rate == pytest.approx(20 / 16, abs=0.05)
    assert cli.main(["a2v", "--model", str(tmp_path / "AVLinkA2VPipeline"), "--audio", str(clip), "--out", str(tmp_path / "a2v.mp4"),
                     *fast]) == 0
    frames, fps = read_video(tmp_path / "a2v.mp4")
    assert fps == 8 and frames.shape == (8, 32, 32, 3)  # the 1 s audio track at Wan's (here 8) fps
