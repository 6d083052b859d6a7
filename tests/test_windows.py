"""Long inputs: batched windows equal the sequential loop, every window's audio lines up with its video, and
the blended signal has no seam at window edges."""

import math

import numpy as np
import pytest
import torch
from diffusers.utils.torch_utils import randn_tensor

from av_link import AVLinkA2VPipeline, AVLinkV2APipeline
from av_link.models.joint import joint_forward
from av_link.pipelines.pipeline_av_link_base import AXIS, set_scheduler_timesteps, take
from av_link.pipelines.windows import batch_rows, extent, window_weights
from av_link.schedulers import noisy_sample, scheduler_output, time_from_timestep

from conftest import tiny_pipeline

PIPES = {}


def pipe_for(direction: str, **config):
    """A tiny pipeline per direction and config (2 s windows overlapping by 0.5 s, 4 steps)."""
    key = (direction, tuple(sorted(config.items())))
    if key not in PIPES:
        pipe = tiny_pipeline(AVLinkV2APipeline if direction == "v2a" else AVLinkA2VPipeline, **config)
        pipe.set_progress_bar_config(disable=True)
        PIPES[key] = pipe
    return PIPES[key]


def conditioning(direction: str, seconds: float, seed: int):
    """A conditioning input of `seconds` (video at 25 fps, 22.05 kHz audio) -> pipeline kwargs."""
    rng = np.random.default_rng(seed)
    if direction == "v2a":
        return dict(video=rng.integers(0, 256, (round(seconds * 25), 20, 24, 3), dtype=np.uint8), video_fps=25)
    return dict(audio=(rng.standard_normal(round(seconds * 22050)) * 0.1).astype(np.float32), sample_rate=22050)


def sequential(pipe, kwargs, latents, seed, guidance_scale):
    """The windows one at a time, each with the full joint model (nothing cached or skipped) and the guidance
    branches as separate calls: what the batched passes must reproduce, for one sample."""
    gen, cond = pipe.generated, pipe.conditioning
    t_c = pipe.config.conditioning_timestep
    item = pipe.prepare_conditioning(*kwargs.values())[0]
    windows = pipe.windows_for(item.num_video_frames, item.num_audio_frames)
    padded = extent(windows)
    pipe._guidance_scale = guidance_scale
    text, mask, negative, negative_mask = pipe.encode_prompt("a knock", None, guidance_scale > 1)
    cond_text, cond_mask = pipe.encode_prompt("", do_classifier_free_guidance=False)[:2]
    generator = torch.Generator().manual_seed(seed)
    signal = pipe.pad_frames(item.signal, cond, getattr(padded, cond).stop, pipe.conditioning_padding)
    noisy = noisy_sample(signal, randn_tensor(signal.shape, generator=generator), t_c)
    x = pipe.pad_frames(latents, gen, getattr(padded, gen).stop, pipe.noise_filler(generator))
    weights = window_weights([getattr(w, gen) for w in windows], x.shape[AXIS[gen]], round(
        pipe.config.window_overlap_seconds * (pipe.audio_fps if gen == "audio" else pipe.video_fps)))
    shape = [1] * x.ndim
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    for timestep in set_scheduler_timesteps(scheduler, pipe.config.num_inference_steps, None, "cpu"):
        t = time_from_timestep(timestep).expand(1)
        v, norm = torch.zeros_like(x), torch.zeros_like(x)
        for window, w in zip(windows, weights):
            inputs = {gen: take(x, gen, window), cond: take(noisy, cond, window)}
            texts = {gen: (text, mask), cond: (cond_text, cond_mask)}
            out = joint_forward(pipe.audio_transformer, pipe.video_transformer, pipe.fusion_adapter,
                                audio=inputs["audio"], video=inputs["video"],
                                audio_timestep=t if gen == "audio" else t_c, video_timestep=t if gen == "video" else t_c,
                                audio_text=texts["audio"][0], video_text=texts["video"][0],
                                audio_text_mask=texts["audio"][1], video_text_mask=texts["video"][1],
                                return_audio=gen == "audio", return_video=gen == "video")
            v_window = getattr(out, gen)
            if guidance_scale > 1:
                v_uncond = pipe.transformer_for(gen)(inputs[gen], t, negative, negative_mask).sample
                v_window = v_uncond + guidance_scale * (v_window - v_uncond)
            shape[AXIS[gen]] = len(w)
            take(v, gen, window).add_(w.reshape(shape) * v_window)
            take(norm, gen, window).add_(w.reshape(shape))
        x = scheduler.step(scheduler_output(v / norm), timestep, x).prev_sample
    return x.narrow(AXIS[gen], 0, latents.shape[AXIS[gen]])


@pytest.mark.parametrize("direction", ["v2a", "a2v"])
# One window, and three (the last one partial; 2 samples x 3 windows = 6 rows, which 4 rows per pass split
# unevenly); without guidance only for three windows.
@pytest.mark.parametrize("seconds,num_windows,guidance_scale", [(1.5, 1, 5.0), (4.62, 3, 5.0), (4.62, 3, 1.0)])
def test_batched_windows_equal_the_sequential_loop(direction, seconds, num_windows, guidance_scale):
    pipe = pipe_for(direction)
    kwargs = [conditioning(direction, seconds, seed) for seed in (1, 2)]  # two samples of one length
    item = pipe.prepare_conditioning(*kwargs[0].values())[0]
    windows = pipe.windows_for(item.num_video_frames, item.num_audio_frames)
    assert len(windows) == num_windows
    gen, cond = pipe.generated, pipe.conditioning
    row_tokens = (2 if guidance_scale > 1 else 1) * pipe.num_tokens(gen, windows[0].length(gen)) + pipe.num_tokens(
        cond, windows[0].length(cond))
    frames = item.num_audio_frames if gen == "audio" else item.num_video_frames
    shape = (2, frames, 80) if gen == "audio" else (2, 3, frames, 16, 16)
    latents = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    both = {k: [kw[k] for kw in kwargs] for k in kwargs[0]}
    expected = torch.cat([sequential(pipe, kw, latents[b:b + 1], 10 + b, guidance_scale) for b, kw in enumerate(kwargs)])
    # all rows in one pass; one row per pass; 4 rows per pass (an uneven split of 2 samples x 3 windows)
    for rows_per_pass in (None, 1, 4):
        max_tokens = 2**30 if rows_per_pass is None else rows_per_pass * row_tokens
        passes = batch_rows(len(windows), 2, row_tokens, max_tokens)
        assert [len(p) for p in passes][0] == min(rows_per_pass or 2 * num_windows, 2 * num_windows)
        pipe.register_to_config(max_batch_tokens=max_tokens)
        out = pipe(**both, prompt="a knock", guidance_scale=guidance_scale, latents=latents, output_type="latent",
                   generator=[torch.Generator().manual_seed(10 + b) for b in range(2)])
        got = out.audios if gen == "audio" else out.frames
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0, msg=f"{rows_per_pass} rows per pass")


def test_the_default_budget_is_per_device():
    from av_link.pipelines.pipeline_av_link_base import CPU_MAX_BATCH_TOKENS, DEFAULT_MAX_BATCH_TOKENS, batch_token_budget

    assert tiny_pipeline(AVLinkV2APipeline).config.max_batch_tokens is None
    assert batch_token_budget(None, torch.device("cpu")) == CPU_MAX_BATCH_TOKENS < DEFAULT_MAX_BATCH_TOKENS
    assert batch_token_budget(None, torch.device("cuda", 0)) == DEFAULT_MAX_BATCH_TOKENS
    assert batch_token_budget(4096, torch.device("cuda", 0)) == 4096
    with pytest.raises(ValueError, match="max_batch_tokens"):
        pipe_for("v2a").register_sampling_config(64, 5.0, 2.0, None, 64, max_batch_tokens=0)


def test_uneven_passes():
    assert [len(p) for p in batch_rows(3, 2, 10, 40)] == [4, 2]
    assert batch_rows(2, 1, 10, 5) == [((0, 0),), ((1, 0),)]  # a row larger than the budget still runs, alone


# -- alignment ------------------------------------------------------------------------------------

@pytest.mark.parametrize("source_fps,num_frames", [(25, 113), (25, 115), (30, 137), (30, 139), (6, 27), (6, 28)])
def test_every_window_audio_starts_at_its_video_time(source_fps, num_frames):
    """Clip lengths that are not whole model frames (at 25 and 30 fps) and whole ones (the model's 6 fps): each
    window's audio starts at its first video frame's time to within half an audio frame, the last window's
    too, and the windows cover every frame of both signals."""
    pipe = pipe_for("v2a")
    video = np.zeros((num_frames, 16, 16, 3), dtype=np.uint8)
    item = pipe.prepare_conditioning(video, source_fps)[0]
    fv, fa = pipe.video_fps, pipe.audio_fps
    assert item.num_video_frames / fv != pytest.approx(item.num_audio_frames / fa, abs=1e-6)  # a ragged end
    windows = pipe.windows_for(item.num_video_frames, item.num_audio_frames)
    assert len(windows) >= 3
    for w in windows:
        assert abs(w.audio.start / fa - w.video.start / fv) <= 0.5 / fa + 1e-9
        assert w.length("video") == windows[0].length("video") and w.length("audio") == windows[0].length("audio")
    padded = extent(windows)
    assert padded.video.stop - item.num_video_frames <= 1 and padded.audio.stop >= item.num_audio_frames
    for modality, frames in (("video", padded.video.stop), ("audio", padded.audio.stop)):
        covered = torch.zeros(frames, dtype=torch.bool)
        for w in windows:
            covered[getattr(w, modality)] = True
        assert covered.all()


def capture_embeds(model, calls):
    original = model.embed

    def embed(hidden_states, *args, **kwargs):
        calls.append(hidden_states.clone())
        return original(hidden_states, *args, **kwargs)

    model.embed = embed
    return original


@pytest.mark.parametrize("direction", ["v2a", "a2v"])
@pytest.mark.parametrize("source_fps,num_frames", [(25, 113), (30, 139)])
def test_the_sampler_pairs_each_video_window_with_its_audio(direction, source_fps, num_frames):
    """End to end: the audio each window feeds the models (the generated noise in V2A, the clean conditioning mel
    in A2V at conditioning time 1) is the audio at that window's video time."""
    pipe = pipe_for(direction)
    seconds = num_frames / source_fps
    if direction == "v2a":
        kwargs = dict(video=np.zeros((num_frames, 16, 16, 3), dtype=np.uint8), video_fps=source_fps)
    else:
        kwargs = dict(audio=conditioning("a2v", seconds, 0)["audio"], sample_rate=22050)
    item = pipe.prepare_conditioning(*kwargs.values())[0]
    windows = pipe.windows_for(item.num_video_frames, item.num_audio_frames)
    fa, fv = pipe.audio_fps, pipe.video_fps
    if direction == "v2a":
        audio = torch.randn(1, item.num_audio_frames, 80, generator=torch.Generator().manual_seed(0))
        kwargs["latents"] = audio
    else:
        audio = item.signal
    calls = []
    original = capture_embeds(pipe.audio_transformer, calls)
    try:
        pipe(**kwargs, guidance_scale=1.0, conditioning_timestep=1.0, num_inference_steps=1, output_type="latent",
             generator=torch.Generator().manual_seed(0))
    finally:
        pipe.audio_transformer.embed = original
    rows = torch.cat(calls)
    assert rows.shape[0] == len(windows)
    for row, w in zip(rows, windows):
        start = round(w.video.start / fv * fa)  # the audio frame at the window's first video frame
        stop = min(start + w.length("audio"), item.num_audio_frames)  # past the input's end: padding
        torch.testing.assert_close(row[:stop - start], audio[0, start:stop], atol=1e-6, rtol=0)
    if direction == "a2v" and windows[-1].audio.stop > item.num_audio_frames:  # the conditioning is silent past its end
        silence = pipe.audio_frontend.normalize(torch.tensor(pipe.audio_frontend.silence_level))
        torch.testing.assert_close(rows[-1, item.num_audio_frames - windows[-1].audio.start:], torch.full_like(
            rows[-1, item.num_audio_frames - windows[-1].audio.start:], float(silence)))


# -- seams ----------------------------------------------------------------------------------------

def blended(pipe, windows, total: int):
    """Denoise with a deterministic stand-in model whose windows disagree: window k's velocity is a smooth signal
    shared by all windows (a sine of the absolute frame, period 8 s) plus k. Latents start at 0 and the velocity does not
    depend on them, so the result is the windows' blended velocity."""
    gen = pipe.generated
    shape = (1, total, 80) if gen == "audio" else (1, 3, total, 16, 16)
    rate = pipe.audio_fps if gen == "audio" else pipe.video_fps

    def smooth(frames):
        return torch.sin(2 * math.pi * frames / (8 * rate))

    def velocity(x, t, rows, state):
        out = torch.empty_like(x)
        for j, (k, _) in enumerate(rows):
            s = getattr(windows[k], gen)
            values = smooth(torch.arange(s.start, s.stop, dtype=torch.float32)) + k
            view = [1] * (x.ndim - 1)
            view[AXIS[gen] - 1] = -1
            out[j] = values.reshape(view)
        return out

    pipe.start_call(1.0, 4)
    x = pipe.denoise({"latents": torch.zeros(shape)}, windows, velocity, num_inference_steps=4)
    return x[0, :, 0] if gen == "audio" else x[0, 0, :, 0, 0]


def seam_ratio(pipe, windows, total):
    """Largest frame-to-frame step of the blended signal at window edges / everywhere else (inside windows and
    across their overlaps). A seam puts the windows' whole disagreement into one step at an edge; blending
    spreads it over the overlap."""
    line = blended(pipe, windows, total)
    steps = line.diff().abs()
    edge = torch.zeros(total - 1, dtype=torch.bool)
    for w in windows:
        s = getattr(w, pipe.generated)
        for i in (s.start - 1, s.stop - 1):
            if 0 <= i < total - 1:
                edge[i] = True
    return float(steps[edge].max() / steps[~edge].max())


@pytest.mark.parametrize("direction", ["v2a", "a2v"])
def test_no_seam_at_window_edges(direction):
    ramped = pipe_for(direction)
    item_frames = (30, 431)  # 5 s: 4 windows
    windows = ramped.windows_for(*item_frames)
    total = extent(windows).audio.stop if ramped.generated == "audio" else extent(windows).video.stop
    assert len(windows) >= 3
    assert seam_ratio(ramped, windows, total) < 2.0
    # The same check on a real seam: windows that do not hand over (no overlap ramp) jump by their disagreement.
    hard = pipe_for(direction, window_overlap_seconds=0.0)
    windows = hard.windows_for(*item_frames)
    total = extent(windows).audio.stop if hard.generated == "audio" else extent(windows).video.stop
    assert seam_ratio(hard, windows, total) > 4.0


def test_prefix_cache_budget_changes_work_not_samples(monkeypatch):
    """Conditioning prefixes past PREFIX_CACHE_BYTES are recomputed at every step: the same samples, with the
    cache holding at most the budget (a long input's memory stays flat)."""
    from av_link.pipelines import pipeline_av_link_cross_modal as cross_modal

    pipe = pipe_for("v2a")
    kwargs = conditioning("v2a", 4.62, 3)  # 3 windows, one row each per pass below
    item = pipe.prepare_conditioning(*kwargs.values())[0]
    latents = torch.randn(1, item.num_audio_frames, 80, generator=torch.Generator().manual_seed(0))
    calls, sizes = [], []
    real = cross_modal.embed_prefix

    def counting(*args, **kw):
        state = real(*args, **kw)
        calls.append(1), sizes.append(state.nbytes())
        return state

    monkeypatch.setattr(cross_modal, "embed_prefix", counting)
    pipe.register_to_config(max_batch_tokens=1)  # one row per pass: 3 passes a step
    steps, outputs, counts = pipe.config.num_inference_steps, [], []
    try:
        for budget in (None, 0, "two"):
            if budget is not None:
                monkeypatch.setattr(cross_modal, "PREFIX_CACHE_BYTES", int(sizes[0] * 2.5) if budget == "two" else 0)
            calls.clear()
            out = pipe(**kwargs, prompt="a knock", latents=latents, output_type="latent",
                       generator=torch.Generator().manual_seed(5))
            outputs.append(out.audios)
            counts.append(len(calls))
    finally:
        pipe.register_to_config(max_batch_tokens=None)
    assert counts == [3, 1 + 2 * steps, 2 + steps]  # the first pass's prefix is cached whatever the budget
    assert sizes[0] > 0
    for got in outputs[1:]:
        torch.testing.assert_close(got, outputs[0], atol=0, rtol=0)
