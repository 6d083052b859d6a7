"""Guidance on a span of the steps (`guidance_start` / `guidance_stop`, diffusers' `ClassifierFreeGuidance(start, stop)`)."""

import numpy as np
import pytest
import torch

from av_link import AVLinkA2VPipeline, AVLinkV2APipeline
from av_link.pipelines import pipeline_av_link_cross_modal

from conftest import tiny_pipeline

VIDEO = np.random.default_rng(0).integers(0, 255, (12, 16, 16, 3), dtype=np.uint8)


def _v2a(pipe, **kw):
    return pipe(video=VIDEO, video_fps=6, prompt="a knock", generator=torch.Generator().manual_seed(0), output_type="pt", **kw).audios


def test_guiding_the_first_half_equals_stopping_guidance_by_callback_then():
    pipe = tiny_pipeline(AVLinkV2APipeline)  # 4 steps

    def stop_after_step_1(p, step, timestep, tensors):
        if step == 1:
            p._guidance_scale = 1.0  # diffusers' convention: a callback may switch guidance off
        return tensors

    half = _v2a(pipe, guidance_stop=0.5)
    torch.testing.assert_close(half, _v2a(pipe, callback_on_step_end=stop_after_step_1), rtol=0, atol=0)
    assert not torch.allclose(half, _v2a(pipe), atol=1e-4)  # guiding every step differs
    torch.testing.assert_close(_v2a(pipe, guidance_start=0.0, guidance_stop=1.0), _v2a(pipe), rtol=0, atol=0)


def test_unguided_steps_do_not_compute_the_unconditional_branch(monkeypatch):
    pipe = tiny_pipeline(AVLinkV2APipeline)
    rows = []
    forward = pipeline_av_link_cross_modal.joint_forward

    def counting(*args, unfused_rows=0, **kw):
        rows.append(unfused_rows)
        return forward(*args, unfused_rows=unfused_rows, **kw)

    monkeypatch.setattr(pipeline_av_link_cross_modal, "joint_forward", counting)
    _v2a(pipe, guidance_start=0.25, guidance_stop=0.75)
    assert rows == [0, 1, 1, 0]  # steps 1 and 2 of 4 carry the unconditional row


def test_the_span_is_a_saved_sampling_default(tmp_path):
    pipe = tiny_pipeline(AVLinkA2VPipeline, guidance_stop=0.5)
    pipe.save_pretrained(tmp_path / "a2v")
    loaded = AVLinkA2VPipeline.from_pretrained(tmp_path / "a2v")
    assert (loaded.config.guidance_start, loaded.config.guidance_stop) == (0.0, 0.5)
    assert "| guidance_stop | 0.5 |" in (tmp_path / "a2v" / "README.md").read_text()  # the card says so
    plain = tiny_pipeline(AVLinkV2APipeline)
    plain.save_pretrained(tmp_path / "v2a")
    assert "guidance_stop" not in (tmp_path / "v2a" / "model_index.json").read_text()  # the paper's default: not recorded
    assert "guidance_stop" not in (tmp_path / "v2a" / "README.md").read_text()
    with pytest.raises(ValueError, match="guidance_start <= guidance_stop"):
        _v2a(plain, guidance_start=0.8, guidance_stop=0.2)
    with pytest.raises(ValueError, match="guidance_start <= guidance_stop"):
        tiny_pipeline(AVLinkV2APipeline, guidance_stop=1.5)
