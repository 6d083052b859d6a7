"""The `av-link` command line on tiny random pipelines (offline, CPU, a few seconds per generation)."""

import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from scipy.io import wavfile

from av_link import AVLinkA2VPipeline, AVLinkTextToAudioPipeline, AVLinkTextToVideoPipeline, AVLinkV2APipeline
from av_link import cli
from av_link.utils.media_io import read_audio, read_video, write_video, write_wav
from av_link.testing import TINY_PIPELINE_CONFIG, tiny_components

FAST = ["--steps", "2", "--seed", "0"]
VIDEO_FRAMES, VIDEO_FPS = 12, 8.0  # 1.5 s, deliberately not the model's 6 fps
AUDIO_RATE, AUDIO_SECONDS = 44100, 1.25  # deliberately not the model's 22.05 kHz


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    c = tiny_components()
    audio_only = ("audio_transformer", "scheduler", "text_encoder", "tokenizer", "audio_frontend", "vocoder")
    video_only = ("video_transformer", "scheduler", "text_encoder", "tokenizer")
    sampling = {k: TINY_PIPELINE_CONFIG[k] for k in ("clip_seconds", "window_overlap_seconds", "num_inference_steps")}
    pipes = {
        "v2a": AVLinkV2APipeline(**c, **TINY_PIPELINE_CONFIG),
        "a2v": AVLinkA2VPipeline(**c, **TINY_PIPELINE_CONFIG),
        "t2a": AVLinkTextToAudioPipeline(**{k: c[k] for k in audio_only}, **sampling),
        "t2v": AVLinkTextToVideoPipeline(**{k: c[k] for k in video_only}, height=16, width=16, **sampling),
    }
    dirs = {}
    for name, pipe in pipes.items():
        pipe.save_pretrained(root / name)
        dirs[name] = str(root / name)
    # broken copies of the V2A directory
    no_fusion = root / "no_fusion"
    shutil.copytree(dirs["v2a"], no_fusion)
    shutil.rmtree(no_fusion / "fusion_adapter")
    no_weights = root / "no_weights"
    shutil.copytree(dirs["v2a"], no_weights)
    for f in os.listdir(no_weights / "audio_transformer"):
        if f.endswith(".safetensors"):
            os.remove(no_weights / "audio_transformer" / f)
    (root / "empty").mkdir()
    dirs.update(no_fusion=str(no_fusion), no_weights=str(no_weights), empty=str(root / "empty"), missing=str(root / "missing"))
    return dirs


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (VIDEO_FRAMES, 36, 64, 3), dtype=np.uint8)
    seconds = VIDEO_FRAMES / VIDEO_FPS
    paths = {k: str(root / v) for k, v in dict(
        clip="clip.mp4", silent="silent.mp4", wav="sound.wav", zero="zero.wav", short="short.mp4", junk="junk.mp4",
        empty="empty.mp4",
    ).items()}
    write_video(paths["clip"], frames, VIDEO_FPS, audio=rng.normal(0, 0.1, (1, round(seconds * 22050))).astype(np.float32), sample_rate=22050)
    write_video(paths["silent"], frames, VIDEO_FPS)
    write_wav(paths["wav"], rng.normal(0, 0.1, (2, round(AUDIO_SECONDS * AUDIO_RATE))).astype(np.float32), AUDIO_RATE)
    wavfile.write(paths["zero"], 22050, np.zeros(0, np.int16))
    write_video(paths["short"], frames[:1], 30.0)  # 1/30 s: shorter than one model frame
    with open(paths["junk"], "wb") as f:
        f.write(b"this is not a video file" * 10)
    open(paths["empty"], "wb").close()
    return paths


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------------------------------------------
# Successful runs
# ---------------------------------------------------------------------------------------------------------------


def test_v2a_muxes_generated_audio_into_the_input_video(models, media, tmp_path, capsys):
    out_path = tmp_path / "out.mp4"
    code, out, err = run(capsys, "v2a", "--model", models["v2a"], "--video", media["clip"], "--out", out_path,
                         "--prompt", "a knock", "--conditioning-prompt", "a hand", *FAST)
    assert code == 0, err
    frames, fps = read_video(out_path)
    source, source_fps = read_video(media["clip"])
    assert frames.shape == source.shape and fps == pytest.approx(source_fps)
    audio, rate = read_audio(out_path)
    assert audio.shape[-1] / rate == pytest.approx(len(source) / source_fps, abs=0.05)
    assert 0 < np.abs(audio).max() < 2  # clipped to [-1, 1] before AAC (which overshoots a little on clipped noise)
    # one summary line naming the file and the vocoder; the sampling progress bar shows on stderr
    assert out.count("\n") == 1 and str(out_path) in out and "GriffinLimVocoder" in out and "seed 0" in out
    assert "input video stream copied" in out  # the input's H.264 packets, not a re-encode
    assert "2/2" in err


def test_v2a_decodes_the_input_once_in_the_background(models, media, tmp_path, capsys, monkeypatch):
    """The CLI starts decoding before the model loads (utils.media_stream.PrefetchedVideo) and the pipeline takes
    those frames: one decode per run, and the same audio as the pipeline decoding the file itself."""
    from av_link.pipelines import inputs
    from av_link.utils import media_stream

    calls = []
    real = media_stream.decode_video

    def counting(*args, **kwargs):
        calls.append(args[1:4])
        return real(*args, **kwargs)

    monkeypatch.setattr(media_stream, "decode_video", counting)
    monkeypatch.setattr(inputs, "decode_video", counting)
    wav = tmp_path / "prefetched.wav"
    code, _, err = run(capsys, "v2a", "--model", models["v2a"], "--video", media["clip"], "--out", wav, "--wav", *FAST)
    assert code == 0, err
    assert calls == [(6.0, 16, 16)]  # the tiny model's rate and size, decoded once
    pipe = AVLinkV2APipeline.from_pretrained(models["v2a"])
    pipe.set_progress_bar_config(disable=True)
    direct = pipe(video=media["clip"], num_inference_steps=2, generator=torch.Generator().manual_seed(0)).audios[0]
    written, rate = read_audio(wav)
    assert len(calls) == 2 and np.abs(written[0] - np.clip(direct, -1, 1)).max() < 1e-3  # 16-bit wav


def test_prefetched_video_hands_over_its_frames_once(media):
    from av_link.utils.media_io import MediaError
    from av_link.utils.media_stream import PrefetchedVideo, decode_video

    video = PrefetchedVideo(media["clip"], 6.0, 16, 16)
    assert os.fspath(video) == str(video) == media["clip"]
    assert video.result(12.0, 16, 16) is None  # decoded for another geometry: the caller decodes itself
    frames, seconds = video.result(6.0, 16, 16)
    expected, expected_seconds = decode_video(media["clip"], 6.0, 16, 16)
    assert torch.equal(frames, expected) and seconds == expected_seconds
    assert video.result(6.0, 16, 16) is None  # handed over once
    with pytest.raises(MediaError):
        PrefetchedVideo(media["junk"], 6.0, 16, 16).result(6.0, 16, 16)


def test_v2a_wav_only(models, media, tmp_path, capsys):
    out_path = tmp_path / "out.wav"
    code, out, err = run(capsys, "v2a", "--model", models["v2a"], "--video", media["clip"], "--out", out_path, "--wav",
                         "--dtype", "bfloat16", "--quiet", *FAST)
    assert code == 0, err
    audio, rate = read_audio(out_path)
    assert rate == 22050 and audio.shape == (1, round(VIDEO_FRAMES / VIDEO_FPS * 22050))
    assert err == ""  # --quiet: no progress bar


def test_a2v_muxes_the_input_audio_into_the_generated_video(models, media, tmp_path, capsys):
    out_path = tmp_path / "out.mp4"
    code, out, err = run(capsys, "a2v", "--model", models["a2v"], "--audio", media["wav"], "--out", out_path, *FAST)
    assert code == 0, err
    frames, fps = read_video(out_path)
    assert fps == 6.0 and frames.shape[0] == round(AUDIO_SECONDS * 6) and frames.shape[1:3] == (16, 16)
    audio, rate = read_audio(out_path)
    assert rate == AUDIO_RATE and audio.shape[0] == 2  # the original audio: native rate and channels
    assert audio.shape[-1] / rate == pytest.approx(AUDIO_SECONDS, abs=0.05)


def test_a2v_reads_the_audio_track_of_a_video(models, media, tmp_path, capsys):
    out_path = tmp_path / "out.mov"
    code, _, err = run(capsys, "a2v", "--model", models["a2v"], "--audio", media["clip"], "--out", out_path, "--quiet", *FAST)
    assert code == 0, err
    audio, rate = read_audio(out_path)
    assert audio.shape[-1] / rate == pytest.approx(VIDEO_FRAMES / VIDEO_FPS, abs=0.05)
    assert read_video(out_path)[0].shape[0] == 9


def test_text_to_audio_and_video(models, tmp_path, capsys):
    wav = tmp_path / "rain.wav"
    code, out, err = run(capsys, "t2a", "--model", models["t2a"], "--prompt", "rain", "--out", wav, "--seconds", "1", *FAST)
    assert code == 0, err
    audio, rate = read_audio(wav)
    assert audio.shape == (1, 22050) and "GriffinLimVocoder" in out
    # same seed, same result; the audio backbone of a V2A checkpoint can be run alone
    again = tmp_path / "again.wav"
    code, _, err = run(capsys, "t2a", "--model", models["v2a"], "--prompt", "rain", "--out", again, "--seconds", "1", "--quiet", *FAST)
    assert code == 0, err
    assert np.array_equal(read_audio(again)[0], audio)

    mp4 = tmp_path / "ball.mp4"
    code, out, err = run(capsys, "t2v", "--model", models["t2v"], "--prompt", "a ball", "--out", mp4, "--seconds", "1", *FAST)
    assert code == 0, err
    frames, fps = read_video(mp4)
    assert frames.shape == (6, 16, 16, 3) and fps == 6.0 and str(mp4) in out


def test_a2v_audio_at_a_rate_aac_cannot_carry(models, tmp_path, capsys):
    # 8 Hz used to end in a success message over an mp4 without an audio stream
    wav, out_path = tmp_path / "slow.wav", tmp_path / "out.mp4"
    wavfile.write(wav, 8, (0.5 * np.sin(np.arange(12))).astype(np.float32))  # 1.5 s
    code, out, err = run(capsys, "a2v", "--model", models["a2v"], "--audio", wav, "--out", out_path, "--quiet", *FAST)
    assert code == 0, err
    audio, rate = read_audio(out_path)
    assert rate == 7350 and audio.shape[-1] / rate == pytest.approx(1.5, abs=0.01)
    assert "1.50 s at 8 Hz, muxed at 7350 Hz" in out


def _captured_a2v_frames(monkeypatch, capsys, models, media, out_path, *size):
    import av_link.utils.media_io as media_io

    written = {}

    def write_video(path, frames, *args, **kwargs):
        written["frames"] = np.asarray(frames)
        return real(path, frames, *args, **kwargs)

    real = media_io.write_video
    monkeypatch.setattr(media_io, "write_video", write_video)
    code, out, err = run(capsys, "a2v", "--model", models["a2v"], "--audio", media["wav"], "--out", out_path, "--quiet",
                         *size, *FAST)
    assert code == 0, err
    return written["frames"], out


def test_a2v_display_size(models, media, tmp_path, capsys, monkeypatch):
    small, _ = _captured_a2v_frames(monkeypatch, capsys, models, media, tmp_path / "small.mp4")
    assert small.shape[1:3] == (16, 16)
    big, out = _captured_a2v_frames(monkeypatch, capsys, models, media, tmp_path / "big.mp4", "--height", "128")
    # the same generated frames (same seed), each pixel repeated 8x8: nearest, and the aspect ratio kept
    assert np.array_equal(big, small.repeat(8, axis=1).repeat(8, axis=2))
    assert "128x128 px upscaled from 16x16" in out
    frames, _ = read_video(tmp_path / "big.mp4")
    assert frames.shape == (small.shape[0], 128, 128, 3)
    wide, _ = _captured_a2v_frames(monkeypatch, capsys, models, media, tmp_path / "wide.mp4", "--height", "24", "--width", "64")
    assert wide.shape[1:3] == (24, 64) and np.array_equal(wide[:, ::3, ::4], small[:, ::2])


def test_demo_prints_no_deprecation_warnings(models, tmp_path, capsys):
    # `av-link demo` used to print diffusers' `torch_dtype` FutureWarning on every run
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = run(capsys, "demo", "--model", os.path.dirname(models["v2a"]), "--out", tmp_path / "demo",
                           "--steps", "2")
    assert code == 0, err
    deprecations = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))]
    assert deprecations == []


# ---------------------------------------------------------------------------------------------------------------
# User errors: one line, non-zero exit, nothing written
# ---------------------------------------------------------------------------------------------------------------

ERROR_CASES = {
    # id: (argv template, expected fragment of the message)
    "missing video": (["v2a", "--model", "{v2a}", "--video", "{tmp}/nope.mp4", "--out", "{out}.mp4"], "no such file"),
    "no video stream": (["v2a", "--model", "{v2a}", "--video", "{wav}", "--out", "{out}.mp4"], "has no video stream"),
    "no audio stream": (["a2v", "--model", "{a2v}", "--audio", "{silent}", "--out", "{out}.mp4"], "has no audio stream"),
    "zero-length audio": (["a2v", "--model", "{a2v}", "--audio", "{zero}", "--out", "{out}.mp4"], "zero samples"),
    "too short video": (["v2a", "--model", "{v2a}", "--video", "{short}", "--out", "{out}.mp4"], "shorter than one model frame"),
    "not a media file": (["v2a", "--model", "{v2a}", "--video", "{junk}", "--out", "{out}.mp4"], "not a readable"),
    "empty file": (["v2a", "--model", "{v2a}", "--video", "{empty}", "--out", "{out}.mp4"], "empty"),
    "model missing": (["v2a", "--model", "{missing}", "--video", "{clip}", "--out", "{out}.mp4"], "no such directory"),
    "model is a file": (["t2a", "--model", "{clip}", "--out", "{out}.wav"], "expected a pipeline directory"),
    "no model_index": (["v2a", "--model", "{empty_dir}", "--video", "{clip}", "--out", "{out}.mp4"],
                       "is not an av-link AVLinkV2APipeline directory: it has no model_index.json"),
    "wrong pipeline": (["v2a", "--model", "{a2v}", "--video", "{clip}", "--out", "{out}.mp4"], "holds an AVLinkA2VPipeline"),
    "t2a on a video-only model": (["t2a", "--model", "{t2v}", "--out", "{out}.wav"], "holds an AVLinkTextToVideoPipeline"),
    "component missing": (["v2a", "--model", "{no_fusion}", "--video", "{clip}", "--out", "{out}.mp4"], "'fusion_adapter' is missing"),
    "weights missing": (["v2a", "--model", "{no_weights}", "--video", "{clip}", "--out", "{out}.mp4"],
                        "is not an av-link AVLinkV2APipeline directory: "),
    "zero steps": (["v2a", "--model", "{v2a}", "--video", "{clip}", "--out", "{out}.mp4", "--steps", "0"], "--steps: must be a positive integer"),
    "negative guidance": (["t2a", "--model", "{t2a}", "--out", "{out}.wav", "--guidance", "-1"], "--guidance"),
    "bad conditioning time": (["a2v", "--model", "{a2v}", "--audio", "{wav}", "--out", "{out}.mp4", "--conditioning-timestep", "1.5"], "[0, 1]"),
    "bad guidance stop": (["v2a", "--model", "{v2a}", "--video", "{clip}", "--out", "{out}.mp4", "--guidance-stop", "2"], "--guidance-stop"),
    "zero seconds": (["t2v", "--model", "{t2v}", "--out", "{out}.mp4", "--seconds", "0"], "--seconds"),
    "bad output extension": (["v2a", "--model", "{v2a}", "--video", "{clip}", "--out", "{out}.avi"], "expected .mp4"),
    "wav flag with mp4": (["v2a", "--model", "{v2a}", "--video", "{clip}", "--out", "{out}.mp4", "--wav"], "expected .wav"),
    "t2a to mp4": (["t2a", "--model", "{t2a}", "--out", "{out}.mp4"], "expected .wav"),
    "overwrite input": (["v2a", "--model", "{v2a}", "--video", "{clip}", "--out", "{clip}"], "refusing to overwrite the input"),
    "output directory missing": (["t2a", "--model", "{t2a}", "--out", "{tmp}/no/such/dir/x.wav"], "does not exist"),
    "required option missing": (["v2a", "--model", "{v2a}", "--out", "{out}.mp4"], "required: --video"),
    "odd display size": (["a2v", "--model", "{a2v}", "--audio", "{wav}", "--out", "{out}.mp4", "--height", "15"],
                         "argument --height: must be even"),
    "zero display size": (["a2v", "--model", "{a2v}", "--audio", "{wav}", "--out", "{out}.mp4", "--width", "0"],
                          "argument --width: must be a positive integer"),
    "unknown command": (["v3a"], "invalid choice"),
    "no command": ([], "choose a command"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES), ids=list(ERROR_CASES))
def test_user_errors_are_one_line(case, models, media, tmp_path, capsys):
    template, fragment = ERROR_CASES[case]
    names = dict(media, **{k: v for k, v in models.items() if k != "empty"}, empty_dir=models["empty"], tmp=str(tmp_path), out=str(tmp_path / "out"))
    argv = [a.format(**names) for a in template]
    before = set(os.listdir(tmp_path))
    media_before = {k: os.path.getsize(v) for k, v in media.items()}
    code, out, err = run(capsys, *argv)
    assert code != 0
    assert "Traceback" not in err + out
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("av-link: error: "), err
    assert fragment in lines[0]
    assert set(os.listdir(tmp_path)) == before  # no output and no temp file left behind
    assert {k: os.path.getsize(v) for k, v in media.items()} == media_before  # inputs untouched


def test_cuda_requested_without_cuda(models, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = run(capsys, "t2a", "--model", models["t2a"], "--out", tmp_path / "x.wav", "--device", "cuda")
    assert code != 0 and err.startswith("av-link: error: --device cuda: CUDA is not available") and err.count("\n") == 1
    assert not (tmp_path / "x.wav").exists()


def test_no_traceback_reaches_the_terminal(models, media, tmp_path):
    # A real process: library logging handlers and warnings that capsys cannot see would show here. This case
    # goes all the way into diffusers' from_pretrained, which logs and raises on the missing weights.
    out_path = tmp_path / "out.mp4"
    proc = subprocess.run(
        [sys.executable, "-m", "av_link.cli", "v2a", "--model", models["no_weights"], "--video", media["clip"], "--out", str(out_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and proc.stderr.startswith("av-link: error: "), proc.stderr
    assert "no_weights is not an av-link AVLinkV2APipeline directory" in proc.stderr
    assert proc.stdout == "" and not out_path.exists()


# ---------------------------------------------------------------------------------------------------------------
# The subcommand registry
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def registry():
    """The subcommand registry, restored in place afterwards (`register_subcommand` writes into that dict)."""
    saved = dict(cli.SUBCOMMANDS)
    yield cli.SUBCOMMANDS
    cli.SUBCOMMANDS.clear()
    cli.SUBCOMMANDS.update(saved)


def test_a_registered_subcommand_runs_and_reports_errors(registry, capsys):

    def arguments(parser):
        parser.add_argument("--count", type=cli.positive_int, required=True)

    def run_echo(args):
        if args.count == 13:
            raise cli.CLIError("13 is unlucky")
        print("count", args.count)
        return 0

    cli.register_subcommand("echo", help="print a count", arguments=arguments, run=run_echo)
    assert {"v2a", "a2v", "t2a", "t2v", "echo"} <= set(cli.SUBCOMMANDS)
    assert run(capsys, "echo", "--count", "3") == (0, "count 3\n", "")
    code, _, err = run(capsys, "echo", "--count", "13")
    assert code == 1 and err == "av-link: error: 13 is unlucky\n"
    code, _, err = run(capsys, "echo", "--count", "-2")
    assert code == 2 and err.startswith("av-link: error: argument --count: must be a positive integer")
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "echo" in out and "v2a" in out


def test_v2a_guidance_stop_reaches_the_pipeline(models, media, tmp_path, capsys):
    outs = {}
    for stop in ("1.0", "0.5", None):
        out_path = tmp_path / f"out_{stop}.wav"
        extra = [] if stop is None else ["--guidance-stop", stop]
        code, out, err = run(capsys, "v2a", "--model", models["v2a"], "--video", media["clip"], "--out", out_path, "--wav",
                             "--quiet", *FAST, *extra)
        assert code == 0, err
        outs[stop] = read_audio(out_path)[0]
    np.testing.assert_array_equal(outs["1.0"], outs[None])  # the config's default: every step guided
    assert not np.array_equal(outs["0.5"], outs[None])  # step 2 of 2 unguided
