"""The contracts diffusers' pipelines keep, checked on av-link's pipelines (tiny random components, offline).

Save/load (class and generic `DiffusionPipeline.from_pretrained`, old folders, adapter-only folders, the Hub card),
determinism, batches against single runs, callbacks (tensor inputs, diffusers' CFG cutoff), `encode_prompt` on its
own, swapping in diffusers' scheduler, dtype reporting and CPU offload hooks.
"""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline, FlowMatchEulerDiscreteScheduler, FlowMatchHeunDiscreteScheduler
from diffusers.callbacks import SDCFGCutoffCallback

from av_link import AVLinkA2VPipeline, AVLinkTextToAudioPipeline, AVLinkTextToVideoPipeline, AVLinkV2APipeline
from av_link.evaluation import shipped_models_dir
from conftest import tiny_pipeline

make = tiny_pipeline


def video(frames=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (frames, 16, 16, 3), dtype=np.uint8)


def audio(samples=22050, seed=0):
    return (np.random.default_rng(seed).normal(0, 0.1, samples)).astype(np.float32)


def inputs(pipe, seed=0, **kwargs):
    """Keyword arguments of a short call of `pipe`, with a fixed generator."""
    common = dict(prompt="a knock", generator=torch.Generator().manual_seed(seed), output_type="latent")
    if isinstance(pipe, AVLinkV2APipeline):
        common.update(video=video(), video_fps=6)
    elif isinstance(pipe, AVLinkA2VPipeline):
        common.update(audio=audio(), sample_rate=22050)
    elif isinstance(pipe, AVLinkTextToAudioPipeline):
        common.update(audio_length_in_s=1.0)
    else:
        common.update(duration_in_s=1.0)
    return {**common, **kwargs}


def result(out):
    return out[0]


@pytest.fixture(scope="module")
def v2a():
    return make(AVLinkV2APipeline)


@pytest.fixture(scope="module")
def a2v():
    return make(AVLinkA2VPipeline)


ALL = [AVLinkV2APipeline, AVLinkA2VPipeline, AVLinkTextToAudioPipeline, AVLinkTextToVideoPipeline]


# -- saving and loading ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ALL)
def test_save_load_round_trip_and_generic_loading(tmp_path, cls):
    pipe = make(cls)
    pipe.save_pretrained(tmp_path)
    for name in ["model_index.json"] + [f"{c}/config.json" for c in ("audio_transformer", "video_transformer", "fusion_adapter")]:
        if (tmp_path / name).exists():  # no path of the machine it was saved on
            assert "_name_or_path" not in json.loads((tmp_path / name).read_text()), name
    expected = result(pipe(**inputs(pipe)))
    for loader in (cls, DiffusionPipeline):
        loaded = loader.from_pretrained(tmp_path)
        assert type(loaded) is cls
        torch.testing.assert_close(result(loaded(**inputs(loaded))), expected, atol=1e-5, rtol=0)


def test_shipped_folders_load_both_ways(tmp_path):
    """The shipped A2V folder is adapter-only: the class, the CLI's check and `load_pipelines` all accept it."""
    from av_link.cli import check_pipeline_dir

    root = shipped_models_dir()
    v2a = DiffusionPipeline.from_pretrained(os.path.join(root, "v2a"))
    a2v = AVLinkA2VPipeline.from_pretrained(os.path.join(root, "a2v"))
    assert isinstance(v2a, AVLinkV2APipeline) and isinstance(a2v, AVLinkA2VPipeline)
    assert check_pipeline_dir(AVLinkA2VPipeline, os.path.join(root, "a2v"))["_components_from"] == "../v2a"
    # its shared components are V2A's, weight for weight
    torch.testing.assert_close(a2v.video_transformer.state_dict(), v2a.video_transformer.state_dict())
    own, shared = a2v.fusion_adapter.state_dict(), v2a.fusion_adapter.state_dict()
    assert any(not torch.equal(own[k], shared[k]) for k in own)  # while its Fusion Blocks are its own


def old_format_copy(tmp_path):
    """The shipped models as the previous release wrote them: build paths, training samplers in the scheduler
    config, an adapter-only a2v/ that does not say where its components are."""
    root = tmp_path / "old"
    shutil.copytree(shipped_models_dir(), root)
    for name in ("v2a", "a2v"):
        index = json.loads((root / name / "model_index.json").read_text())
        index.pop("_components_from", None)
        index["_name_or_path"] = f"/work/exp/{name}"
        (root / name / "model_index.json").write_text(json.dumps(index))
    scheduler = root / "v2a" / "scheduler" / "scheduler_config.json"
    scheduler.write_text(json.dumps({"_class_name": "FlowMatchEulerScheduler", "_diffusers_version": "0.42.1", "fixed_time": 1.0,
                                     "logit_mean": 0.0, "logit_std": 1.0, "shift": 1.0, "time_sampling": "logit_normal"}))
    return root


def test_folders_saved_before_load_or_say_how_to_convert(tmp_path):
    from av_link.evaluation import load_pipelines

    old = old_format_copy(tmp_path)
    new_v2a = AVLinkV2APipeline.from_pretrained(os.path.join(shipped_models_dir(), "v2a"))
    old_v2a = AVLinkV2APipeline.from_pretrained(old / "v2a")
    call = dict(video=video(), video_fps=6, num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="latent")
    torch.testing.assert_close(old_v2a(**call).audios, new_v2a(**{**call, "generator": torch.Generator().manual_seed(0)}).audios)
    with pytest.raises(ValueError, match=r'add "_components_from": "../v2a"'):
        AVLinkA2VPipeline.from_pretrained(old / "a2v")
    v2a, a2v = load_pipelines(str(old))  # the evaluation/demo loader passes V2A's components explicitly
    assert a2v.video_transformer is v2a.video_transformer
    old_v2a.save_pretrained(tmp_path / "resaved")  # a re-save is in the current format
    assert "_name_or_path" not in json.loads((tmp_path / "resaved" / "model_index.json").read_text())
    assert "time_sampling" not in json.loads((tmp_path / "resaved" / "scheduler" / "scheduler_config.json").read_text())


def test_model_card_survives_push_to_hub(tmp_path, monkeypatch):
    import diffusers.utils.hub_utils as hub_utils
    from huggingface_hub import ModelCard

    uploaded = {}

    def upload_folder(repo_id, folder_path, **kwargs):  # the temporary folder is gone after the call: read it now
        uploaded.update(repo_id=repo_id, card=open(os.path.join(folder_path, "README.md")).read(),
                        files=sorted(os.listdir(folder_path)))

    monkeypatch.setattr(hub_utils, "create_repo", lambda repo_id, **kwargs: type("Repo", (), {"repo_id": repo_id})())
    monkeypatch.setattr(hub_utils, "load_or_create_model_card", lambda *a, **k: ModelCard("generic diffusers card"))
    monkeypatch.setattr(hub_utils, "upload_folder", upload_folder)
    pipe = make(AVLinkV2APipeline)
    pipe.save_pretrained(tmp_path / "trained", training_info={"steps": "123"})
    AVLinkV2APipeline.from_pretrained(tmp_path / "trained").push_to_hub("me/av-link-v2a")
    assert uploaded["repo_id"] == "me/av-link-v2a" and "model_index.json" in uploaded["files"]
    card = uploaded["card"]
    assert "library_name: av-link" in card and "video-to-audio" in card and "generic diffusers card" not in card
    assert "- **steps**: 123" in card  # the training facts of the folder it was loaded from are kept


# -- determinism and batches -----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ALL)
def test_same_generator_same_output(cls):
    pipe = make(cls)
    a, b, c = (result(pipe(**inputs(pipe, seed))) for seed in (3, 3, 4))
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_v2a_list_of_videos_of_mixed_lengths_and_rates_matches_single_runs(v2a):
    videos, rates = [video(6, 1), video(20, 2), video(12, 3)], [6, 10, 12]  # 1 s, 2 s, 1 s
    gens = lambda: [torch.Generator().manual_seed(s) for s in (1, 2, 3)]  # noqa: E731
    waveforms = v2a(video=videos, video_fps=rates, prompt=["a", "bb", "c"], generator=gens(), output_type="pt").audios
    assert isinstance(waveforms, list) and [len(a) for a in waveforms] == [22050, 44100, 22050]
    # Compared before the (phase-iterating) vocoder, which amplifies float rounding of batched kernels.
    batch = v2a(video=videos, video_fps=rates, prompt=["a", "bb", "c"], generator=gens(), output_type="latent").audios
    for i, (v, rate, prompt) in enumerate(zip(videos, rates, ["a", "bb", "c"])):
        single = v2a(video=v, video_fps=rate, prompt=prompt, generator=gens()[i], output_type="latent").audios[0]
        torch.testing.assert_close(batch[i], single, atol=1e-5, rtol=1e-5)


def test_a2v_list_of_audios_of_mixed_lengths_and_rates_matches_single_runs(a2v):
    audios, rates = [audio(16000, 1), audio(44100 * 2, 2)], [16000, 44100]
    gens = lambda: [torch.Generator().manual_seed(s) for s in (1, 2)]  # noqa: E731
    batch = a2v(audio=audios, sample_rate=rates, generator=gens(), output_type="latent").frames
    assert [f.shape[1] for f in batch] == [6, 12]
    for i in range(2):
        single = a2v(audio=audios[i], sample_rate=rates[i], generator=gens()[i], output_type="latent").frames[0]
        torch.testing.assert_close(batch[i], single, atol=1e-5, rtol=1e-5)


def test_frames_without_a_rate_are_an_error(v2a):
    for frames in (video(), torch.rand(1, 3, 6, 16, 16), [video(), video()]):
        with pytest.raises(ValueError, match="pass video_fps="):
            v2a(video=frames)
    with pytest.raises(ValueError, match="got 3 rates for 2 videos"):
        v2a(video=[video(), video()], video_fps=[6, 6, 6])


# -- callbacks ---------------------------------------------------------------------------------------------------
def test_callbacks_see_every_declared_tensor(v2a):
    seen = {}

    def callback(pipe, step, timestep, tensors):
        seen[step] = {k: tuple(v.shape) for k, v in tensors.items()}
        assert pipe.num_timesteps == 4 and pipe.guidance_scale == 5.0 and pipe.current_timestep == timestep
        return {}

    v2a(**inputs(v2a), guidance_scale=5.0, callback_on_step_end=callback,
        callback_on_step_end_tensor_inputs=v2a._callback_tensor_inputs)
    assert sorted(seen) == [0, 1, 2, 3] and set(seen[0]) == set(v2a._callback_tensor_inputs)
    assert seen[0]["latents"][0] == 1 and seen[0]["prompt_embeds"][0] == 1 == seen[0]["negative_prompt_embeds"][0]
    assert seen[0]["prompt_attention_mask"] == seen[0]["prompt_embeds"][:2]


def test_callbacks_replace_text_for_the_steps_after(v2a):
    plain = result(v2a(**inputs(v2a)))

    def replace_at(step):
        def callback(pipe, i, timestep, tensors):
            return {"prompt_embeds": torch.zeros_like(tensors["prompt_embeds"])} if i == step else {}
        return result(v2a(**inputs(v2a), callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["prompt_embeds"]))

    assert torch.equal(replace_at(3), plain)  # after the last step: nothing left to change
    assert not torch.allclose(replace_at(0), plain)


def test_diffusers_cfg_cutoff_callback_stops_guidance(v2a):
    calls = []
    # the unconditional branch: rows of the audio backbone's last block past the one conditional row
    hook = v2a.audio_transformer.blocks[-1].register_forward_hook(lambda m, a, o: calls.extend([1] * (a[0].shape[0] - 1)))
    try:
        full = result(v2a(**inputs(v2a), guidance_scale=5.0))
        assert len(calls) == 4
        calls.clear()
        cut = result(v2a(**inputs(v2a), guidance_scale=5.0, callback_on_step_end=SDCFGCutoffCallback(cutoff_step_ratio=None, cutoff_step_index=1)))
        assert len(calls) == 2 and v2a.guidance_scale == 0.0 and not v2a.do_classifier_free_guidance
        calls.clear()
        late = result(v2a(**inputs(v2a), guidance_scale=5.0, callback_on_step_end=SDCFGCutoffCallback(cutoff_step_ratio=None, cutoff_step_index=3)))
        unguided = result(v2a(**inputs(v2a), guidance_scale=1.0))
    finally:
        hook.remove()
    assert torch.equal(late, full)  # a cutoff after the last step changes nothing
    assert not torch.allclose(cut, full) and not torch.allclose(cut, unguided)


def test_interrupt_skips_the_remaining_steps(v2a):
    def stop(pipe, step, timestep, tensors):
        pipe._interrupt = step == 0 or pipe.interrupt
        return {}

    steps = []
    v2a(**inputs(v2a), callback_on_step_end=lambda p, i, t, k: steps.append(i) or stop(p, i, t, k))
    assert steps == [0]


# -- text --------------------------------------------------------------------------------------------------------
def test_encode_prompt_alone_and_embeddings_as_input(v2a):
    embeds, mask, negative, negative_mask = v2a.encode_prompt(["a knock", "b"], num_per_prompt=2)
    assert embeds.shape[0] == 4 and mask.dtype == torch.bool and mask.shape == embeds.shape[:2]
    assert torch.equal(embeds[0], embeds[1]) and negative.shape[0] == 4 and negative_mask.shape == negative.shape[:2]
    assert v2a.encode_prompt("x", do_classifier_free_guidance=False)[2:] == (None, None)
    from_text = result(v2a(**inputs(v2a), negative_prompt="noise"))
    e, m, n, nm = v2a.encode_prompt("a knock", "noise")
    from_embeds = result(v2a(**inputs(v2a, prompt=None), prompt_embeds=e, prompt_attention_mask=m,
                             negative_prompt_embeds=n, negative_prompt_attention_mask=nm))
    torch.testing.assert_close(from_embeds, from_text, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="same batch size"):
        v2a.encode_prompt(prompt_embeds=e, negative_prompt_embeds=torch.cat([n, n]))


# -- schedulers ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [AVLinkV2APipeline, AVLinkTextToAudioPipeline])
def test_diffusers_flow_match_euler_swaps_in(cls):
    pipe = make(cls)
    expected = result(pipe(**inputs(pipe)))
    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config)
    torch.testing.assert_close(result(pipe(**inputs(pipe))), expected, atol=1e-5, rtol=1e-5)
    pipe.scheduler = FlowMatchHeunDiscreteScheduler.from_config(pipe.scheduler.config)  # a second-order one runs too
    out = result(pipe(**inputs(pipe)))
    assert torch.isfinite(out).all() and pipe.num_timesteps == 2 * 4 - 1


# -- devices and dtypes --------------------------------------------------------------------------------------------
def test_component_dtypes_report_truthfully():
    pipe = make(AVLinkV2APipeline)
    pipe.to(torch.float16)
    dtypes = {k: v.dtype for k, v in pipe.components.items() if hasattr(v, "dtype")}
    assert set(dtypes) >= {"audio_frontend", "vocoder", "text_encoder", "audio_transformer"}
    assert set(dtypes.values()) == {torch.float16}, dtypes
    mel = pipe.audio_frontend(torch.zeros(2048))
    assert mel.dtype == torch.float16 and pipe.vocoder(mel.float()).dtype == torch.float16
    pipe.to(torch.float32)
    assert {v.dtype for v in pipe.components.values() if hasattr(v, "dtype")} == {torch.float32}


def test_model_cpu_offload_hooks_keep_the_result():
    """With no accelerator, diffusers refuses `enable_model_cpu_offload()`; the hooks themselves run with device="cpu"."""
    pipe = make(AVLinkV2APipeline)
    expected = result(pipe(**inputs(pipe)))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="requires accelerator"):
            pipe.enable_model_cpu_offload()
    pipe.enable_model_cpu_offload(device="cpu")
    torch.testing.assert_close(result(pipe(**inputs(pipe))), expected)
