import numpy as np
import pytest
import torch

from av_link import AVLinkA2VPipeline, AVLinkTextToAudioPipeline, AVLinkTextToVideoPipeline, AVLinkV2APipeline
from av_link.pipelines.windows import plan_windows, window_weights
from av_link.utils.media_io import write_video, write_wav
from av_link.testing import tiny_components

from conftest import tiny_pipeline


_pipe = tiny_pipeline


@pytest.fixture(scope="module")
def v2a():
    return _pipe(AVLinkV2APipeline)


@pytest.fixture(scope="module")
def a2v():
    return _pipe(AVLinkA2VPipeline)


def _video(frames=12, h=20, w=24, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (frames, h, w, 3), dtype=np.uint8)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_v2a_on_an_array_covers_the_same_seconds(v2a):
    out = v2a(video=_video(16), video_fps=8, prompt="a knock", generator=_gen())
    assert out.sample_rate == 22050
    assert out.audios.shape == (1, 2 * 22050) and np.isfinite(out.audios).all()
    assert v2a.config.conditioning_timestep == 0.96 and v2a.config.guidance_scale == 5.0


def test_a2v_on_an_array_covers_the_same_seconds(a2v):
    out = a2v(audio=np.random.default_rng(0).normal(0, 0.1, (2, 44100)).astype(np.float32), sample_rate=44100, generator=_gen())
    assert out.fps == 6.0 and out.frames.shape == (1, 6, 16, 16, 3)
    assert out.frames.min() >= 0 and out.frames.max() <= 1
    assert a2v.config.conditioning_timestep == 0.8
    pil = a2v(audio=np.zeros(22050, np.float32) + 0.01, sample_rate=22050, output_type="pil", generator=_gen()).frames
    assert len(pil) == 1 and len(pil[0]) == 6 and pil[0][0].size == (16, 16)


def test_real_files(tmp_path, v2a, a2v):
    rng = np.random.default_rng(0)
    mp4, wav = tmp_path / "clip.mp4", tmp_path / "sound.wav"
    write_video(mp4, _video(15, 36, 64), fps=10, audio=rng.normal(0, 0.1, (2, 66150)).astype(np.float32), sample_rate=44100)
    write_wav(wav, rng.normal(0, 0.1, (2, 44100 * 3 // 2)).astype(np.float32), 44100)
    assert v2a(video=str(mp4), generator=_gen()).audios.shape == (1, round(1.5 * 22050))
    assert a2v(audio=str(wav), generator=_gen()).frames.shape[1] == 9  # 1.5 s at 6 fps
    assert a2v(audio=str(mp4), generator=_gen()).frames.shape[1] == 9  # the audio track of a video file


def test_same_generator_same_output(v2a):
    a = v2a(video=_video(), video_fps=6, generator=_gen(3)).audios
    b = v2a(video=_video(), video_fps=6, generator=_gen(3)).audios
    c = v2a(video=_video(), video_fps=6, generator=_gen(4)).audios
    assert np.array_equal(a, b) and not np.allclose(a, c)


@pytest.mark.parametrize("direction", ["v2a", "a2v"])
def test_a_batch_of_two_equals_two_single_runs(direction, v2a, a2v):
    if direction == "v2a":
        pipe, inputs = v2a, torch.rand(2, 3, 12, 16, 16)
        call = lambda x, g, p: pipe(video=x, video_fps=6, prompt=p, generator=g, output_type="latent").audios
    else:
        pipe, inputs = a2v, torch.randn(2, 1, 22050) * 0.1
        call = lambda x, g, p: pipe(audio=x, sample_rate=22050, prompt=p, generator=g, output_type="latent").frames
    batch = call(inputs, [_gen(1), _gen(2)], ["a", "bb"])
    singles = [call(inputs[i:i + 1], _gen(i + 1), p) for i, p in enumerate(["a", "bb"])]
    torch.testing.assert_close(batch, torch.cat(singles), atol=1e-5, rtol=1e-5)


def test_num_per_prompt(v2a):
    out = v2a(video=_video(), video_fps=6, num_audios_per_prompt=3, generator=_gen(), output_type="latent").audios
    assert out.shape[0] == 3 and not torch.allclose(out[0], out[1])


def test_callbacks_read_and_replace_latents(v2a):
    seen = []

    def callback(pipe, step, t, kwargs):
        seen.append((step, float(t), tuple(kwargs["latents"].shape)))
        return {"latents": torch.full_like(kwargs["latents"], 0.25)} if step == pipe._num_timesteps - 1 else {}

    out = v2a(video=_video(), video_fps=6, generator=_gen(), output_type="latent", callback_on_step_end=callback)
    assert [s[0] for s in seen] == [0, 1, 2, 3] and seen[0][1] == 1000.0  # diffusers' timestep: sigma * 1000
    assert torch.equal(out.audios, torch.full_like(out.audios, 0.25))
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs may only name"):
        v2a(video=_video(), video_fps=6, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["timesteps"])


@pytest.mark.parametrize("cls", [AVLinkV2APipeline, AVLinkA2VPipeline])
def test_save_load_round_trip(tmp_path, cls):
    pipe = _pipe(cls)
    pipe.save_pretrained(tmp_path)
    loaded = cls.from_pretrained(tmp_path)
    public = lambda c: {k: v for k, v in c.items() if not k.startswith('_')}
    assert public(loaded.config) == public(pipe.config)
    card = (tmp_path / "README.md").read_text()
    assert "library_name: av-link" in card and ("video-to-audio" if cls is AVLinkV2APipeline else "audio-to-video") in card
    kwargs = dict(video=_video(), video_fps=6) if cls is AVLinkV2APipeline else dict(audio=np.ones(22050, np.float32) * 0.1, sample_rate=22050)
    a = pipe(**kwargs, generator=_gen(), output_type="latent")[0]
    b = loaded(**kwargs, generator=_gen(), output_type="latent")[0]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_unconditional_branch_never_runs_the_conditioning_backbone():
    pipe = _pipe(AVLinkV2APipeline)
    calls = {"video": [0] * 4, "audio": [0] * 4, "fusion": 0}  # rows through each block, summed over calls
    for side in ("video", "audio"):
        for i, block in enumerate(getattr(pipe, f"{side}_transformer").blocks):
            block.register_forward_hook(lambda m, a, o, side=side, i=i: calls[side].__setitem__(i, calls[side][i] + a[0].shape[0]))
    for block in pipe.fusion_adapter.blocks:
        block.register_forward_hook(lambda m, a, o: calls.__setitem__("fusion", calls["fusion"] + a[0].shape[0]))
    pipe(video=_video(), video_fps=6, num_inference_steps=4, guidance_scale=5.0, generator=_gen())
    # Fusion after video blocks 0 and 2: block 0 runs once (its input is fixed), 1-2 once per step,
    # block 3 never; the unconditional branch adds audio rows only (batched with the conditional ones).
    assert calls["video"] == [1, 4, 4, 0]
    assert calls["audio"] == [8, 8, 8, 8]
    assert calls["fusion"] == 4 * 2


def test_long_input_gives_full_length_output(v2a, a2v):
    out = v2a(video=_video(60, seed=2), video_fps=12, generator=_gen())  # 5 s with 2 s windows
    assert out.audios.shape == (1, 5 * 22050) and np.isfinite(out.audios).all()
    frames = a2v(audio=np.random.default_rng(0).normal(0, 0.1, 22050 * 5).astype(np.float32), sample_rate=22050, generator=_gen()).frames
    assert frames.shape[1] == 30


def test_windows_cover_everything_and_blend():
    windows = plan_windows(30, 430, 6.0, 86.13, clip_seconds=2.0, overlap_seconds=0.5)
    assert windows[0].video.start == 0 and windows[-1].video.stop == 30
    assert all(w.video.stop - w.video.start == 12 for w in windows)
    assert all(b.video.start < a.video.stop for a, b in zip(windows, windows[1:]))  # they overlap
    assert windows[-1].audio.stop <= 430 and all(w.audio.stop - w.audio.start == 172 for w in windows)
    weights = window_weights([w.video for w in windows], 30, ramp=3)
    assert weights[0][0] == 1 and weights[-1][-1] == 1 and weights[0][-1] < 1 and weights[1][0] < 1
    assert all((w > 0).all() for w in weights)
    assert len(plan_windows(10, 100, 6.0, 86.0, 2.0, 0.5)) == 1
    covered = torch.zeros(431, dtype=torch.bool)  # 5 s: every audio frame lies in some window
    for w in plan_windows(30, 431, 6.0, 86.13, 2.0, 0.5):
        covered[w.audio] = True
    assert covered.all()


def test_text_to_audio_and_video():
    components = tiny_components()
    t2a = AVLinkTextToAudioPipeline(**{k: components[k] for k in ("audio_transformer", "scheduler", "text_encoder", "tokenizer", "audio_frontend", "vocoder")},
                                    num_inference_steps=3, clip_seconds=2.0)
    assert t2a(prompt="rain", audio_length_in_s=1.0, generator=_gen()).audios.shape == (1, 22050)
    t2v = AVLinkTextToVideoPipeline(**{k: components[k] for k in ("video_transformer", "scheduler", "text_encoder", "tokenizer")},
                                    num_inference_steps=3, height=16, width=16, clip_seconds=2.0)
    assert t2v(prompt=["a ball", "a cup"], duration_in_s=1.0, generator=_gen()).frames.shape == (2, 6, 16, 16, 3)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(num_inference_steps=0), "num_inference_steps must be a positive integer"),
        (dict(output_type="pil"), "output_type must be one of"),
        (dict(guidance_scale=float("nan")), "guidance_scale must be a finite number"),
        (dict(prompt=["a", "b", "c"]), "prompt must be a string or a list of 1 strings"),
        (dict(video=np.full((4, 8, 8, 3), np.nan, np.float32)), "NaN"),
        (dict(video=np.zeros((8, 8, 3), np.uint8)), r"a video array must be \(frames, height, width, channels\)"),
        (dict(video=np.zeros((1, 8, 8, 3), np.uint8), video_fps=30), "shorter than one model frame"),
        (dict(video=np.full((4, 8, 8, 3), 2.0, np.float32)), r"float video values must lie in \[0, 1\]"),
        (dict(latents=torch.zeros(1, 3, 80)), "latents must have shape"),
        (dict(video=None), "pass the conditioning video"),
        (dict(conditioning_timestep=1.5), r"conditioning_timestep must be in \[0, 1\]"),
    ],
)
def test_v2a_bad_input(v2a, kwargs, error):
    with pytest.raises(ValueError, match=error):
        v2a(**{"video": _video(), "video_fps": 6, **kwargs})


def test_a2v_bad_input(a2v, tmp_path):
    with pytest.raises(ValueError, match="pass sample_rate="):
        a2v(audio=np.zeros(100, np.float32))
    with pytest.raises(ValueError, match="zero samples"):
        a2v(audio=np.zeros(0, np.float32), sample_rate=16000)
    with pytest.raises(ValueError, match="shorter than one model frame"):
        a2v(audio=np.zeros(10, np.float32), sample_rate=16000)
    with pytest.raises(ValueError, match="no such file|does not exist|not found"):
        a2v(audio=str(tmp_path / "missing.wav"))
    silent = tmp_path / "silent.mp4"
    write_video(silent, _video(6), fps=6)
    with pytest.raises(ValueError, match="audio"):
        a2v(audio=str(silent))
