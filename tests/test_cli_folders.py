"""`av-link v2a/a2v` on folders of clips (one process and two), resuming, bad clips, progress and Ctrl-C."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from av_link import AVLinkA2VPipeline, AVLinkV2APipeline, cli
from av_link.commands import progress as progress_module
from av_link.commands.batch import SUMMARY_NAME
from av_link.testing import TINY_PIPELINE_CONFIG, tiny_components
from av_link.utils.media_io import read_audio, write_video, write_wav

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--steps", "2", "--seed", "0", "--quiet"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    components = tiny_components()
    for name, cls in (("v2a", AVLinkV2APipeline), ("a2v", AVLinkA2VPipeline)):
        cls(**components, **TINY_PIPELINE_CONFIG).save_pretrained(root / name)
    return {name: str(root / name) for name in ("v2a", "a2v")}


def videos(folder: Path, count: int, junk=()) -> Path:
    """`count` clips of 1 s (8 frames at 8 fps), named c0.mp4 ...; `junk` names files that are not videos."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        write_video(folder / f"c{i}.mp4", rng.integers(0, 256, (8, 36, 64, 3), dtype=np.uint8), 8.0)
    for name in junk:
        (folder / name).write_bytes(b"not a video at all" * 8)
    return folder


def sounds(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        write_wav(folder / f"s{i}.wav", rng.normal(0, 0.1, (1, 22050)).astype(np.float32), 22050)
    return folder


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def summary(folder: Path) -> dict:
    return json.loads((folder / SUMMARY_NAME).read_text())


def statuses(folder: Path) -> dict:
    return {r["input"]: r["status"] for r in summary(folder)["results"]}


def test_v2a_folder_runs_every_clip_and_reports_a_bad_one(models, tmp_path, capsys):
    source = videos(tmp_path / "in", 2, junk=["broken.mp4", "notes.txt", ".hidden.mp4"])
    (source / "sub.mp4").mkdir()  # a folder is never a clip
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "v2a", "--model", models["v2a"], "--video", source, "--out", out, "--wav", *FAST)
    assert code == 1  # the batch went on, but says that a clip failed
    assert sorted(os.listdir(out)) == [SUMMARY_NAME, "c0.wav", "c1.wav"]
    assert statuses(out) == {"broken.mp4": "failed", "c0.mp4": "done", "c1.mp4": "done"}
    s = summary(out)
    assert (s["clips"], s["done"], s["skipped"], s["failed"], s["processes"]) == (3, 2, 0, 1, 1)
    assert s["seconds_per_clip"] > 0 and "not a readable" in s["results"][0]["error"]
    assert stdout.count("\n") == 1 and "3 clips" in stdout and "2 done, 0 skipped (output exists), 1 failed" in stdout
    assert "failed broken.mp4: " in err and err.splitlines()[-1].startswith("av-link: error: 1 of 3 clips failed")
    # with --seed, each clip is what a single-file run writes
    single = tmp_path / "single.wav"
    code, _, err = run(capsys, "v2a", "--model", models["v2a"], "--video", source / "c1.mp4", "--out", single, "--wav", *FAST)
    assert code == 0, err
    assert np.array_equal(read_audio(single)[0], read_audio(out / "c1.wav")[0])


def test_an_interrupted_batch_resumes(models, tmp_path, capsys, monkeypatch):
    source, out = videos(tmp_path / "in", 3), tmp_path / "out"
    real, calls = AVLinkV2APipeline.__call__, []

    def interrupted_on_the_second_clip(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(AVLinkV2APipeline, "__call__", interrupted_on_the_second_clip)
    code, _, err = run(capsys, "v2a", "--model", models["v2a"], "--video", source, "--out", out, *FAST)
    assert code == 130 and err.strip() == "av-link: error: interrupted"
    assert os.listdir(out) == ["c0.mp4"]  # the finished clip, and nothing half-written (no temp file, no summary)
    monkeypatch.setattr(AVLinkV2APipeline, "__call__", real)
    before = (out / "c0.mp4").stat().st_mtime_ns
    code, stdout, err = run(capsys, "v2a", "--model", models["v2a"], "--video", source, "--out", out, *FAST)
    assert code == 0, err
    assert statuses(out) == {"c0.mp4": "skipped", "c1.mp4": "done", "c2.mp4": "done"}
    assert (out / "c0.mp4").stat().st_mtime_ns == before
    assert "1 skipped" in stdout


def test_a2v_folder(models, tmp_path, capsys):
    source, out = sounds(tmp_path / "in", 2), tmp_path / "out"
    code, _, err = run(capsys, "a2v", "--model", models["a2v"], "--audio", source, "--out", out, *FAST)
    assert code == 0, err
    assert sorted(os.listdir(out)) == [SUMMARY_NAME, "s0.mp4", "s1.mp4"]
    assert summary(out)["done"] == 2 and summary(out)["command"] == "a2v"


def test_progress_shows_every_stage(models, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress_module, "STAGE_DELAY", 0)  # quick stages show too
    source = videos(tmp_path / "in", 2)
    argv = ["--model", models["v2a"], "--steps", "2", "--seed", "0"]
    code, _, err = run(capsys, "v2a", "--video", source / "c0.mp4", "--out", tmp_path / "one.mp4", *argv)
    assert code == 0, err
    assert "v2a: decoding c0.mp4" in err and "v2a: sampling 1 window, steps" in err and "2/2" in err
    assert "v2a: encoding one.mp4" in err
    code, _, err = run(capsys, "v2a", "--video", source, "--out", tmp_path / "out", *argv)
    assert code == 0, err
    assert "v2a: clips" in err and "2/2" in err and "v2a: encoding c1.mp4" in err


def test_an_interrupted_single_file_leaves_nothing(models, tmp_path, capsys, monkeypatch):
    source = videos(tmp_path / "in", 1) / "c0.mp4"
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    where = []

    def interrupt(*args, **kwargs):
        where.append(args)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # in the sampler
        patch.setattr(AVLinkV2APipeline, "__call__", interrupt)
        code, _, _ = run(capsys, "v2a", "--model", models["v2a"], "--video", source, "--out", out_dir / "x.mp4", *FAST)
    assert code == 130 and os.listdir(out_dir) == []
    with monkeypatch.context() as patch:  # while the finished file is being moved into place
        patch.setattr(os, "replace", interrupt)
        code, _, _ = run(capsys, "v2a", "--model", models["v2a"], "--video", source, "--out", out_dir / "x.mp4", *FAST)
    assert code == 130 and os.listdir(out_dir) == []
    assert Path(where[-1][1]) == out_dir / "x.mp4"  # the temporary file was written beside --out, then removed


FOLDER_ERRORS = {
    "out is a file name": ("{out}.mp4", "--out must be a folder too"),
    "out is an existing file": ("{clip}", "is a file"),
    "out is the input folder": ("{src}", "is the input folder"),
}


@pytest.mark.parametrize("case", list(FOLDER_ERRORS), ids=list(FOLDER_ERRORS))
def test_folder_errors_are_one_line(case, models, tmp_path, capsys):
    source = videos(tmp_path / "in", 1)
    template, fragment = FOLDER_ERRORS[case]
    out = template.format(out=tmp_path / "out", clip=source / "c0.mp4", src=source)
    before = sorted(os.listdir(tmp_path)), sorted(os.listdir(source))
    code, _, err = run(capsys, "v2a", "--model", models["v2a"], "--video", source, "--out", out, *FAST)
    assert code == 1 and err.count("\n") == 1 and err.startswith("av-link: error: ") and fragment in err, err
    assert (sorted(os.listdir(tmp_path)), sorted(os.listdir(source))) == before


def test_folder_without_clips_or_with_clashing_names(models, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no clips here")
    code, _, err = run(capsys, "v2a", "--model", models["v2a"], "--video", empty, "--out", tmp_path / "o1", *FAST)
    assert code == 1 and "the folder has no clips" in err and not (tmp_path / "o1").exists()
    clash = videos(tmp_path / "clash", 1)
    (clash / "c0.mkv").write_bytes((clash / "c0.mp4").read_bytes())
    code, _, err = run(capsys, "v2a", "--model", models["v2a"], "--video", clash, "--out", tmp_path / "o2", *FAST)
    assert code == 1 and "c0.mkv and c0.mp4 would both write c0.mp4" in err and not (tmp_path / "o2").exists()
    code, _, err = run(capsys, "v2a", "--model", models["a2v"], "--video", videos(tmp_path / "ok", 1), "--out", tmp_path / "o3")
    assert code == 1 and "holds an AVLinkA2VPipeline" in err and not (tmp_path / "o3").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_reporting_threads_at_exit(folder: Path) -> Path:
    """`python -m av_link.cli`, which also prints the process's native threads after every other exit handler (Linux)."""
    script = folder / "cli_reporting_threads.py"
    script.write_text(
        "import atexit, os, runpy, sys\n"
        "def report():\n"
        "    if not os.path.isdir('/proc/self/task'): return\n"
        "    names = sorted(open(f'/proc/self/task/{t}/comm').read().strip() for t in os.listdir('/proc/self/task'))\n"
        "    sys.stderr.write(f'threads at exit: {names}\\n')\n"
        "atexit.register(report)  # registered first, so it runs last\n"
        "runpy.run_module('av_link.cli', run_name='__main__', alter_sys=True)\n"
    )
    return script


def test_two_processes_split_the_clips(models, tmp_path):
    source, out = videos(tmp_path / "in", 4), tmp_path / "out"
    out.mkdir()
    write_wav(out / "c3.wav", np.zeros((1, 100), np.float32), 22050)  # done by an earlier run
    # Two CPU processes over gloo on loopback, as tests/test_training.py launches them (`--cpu` alone starts one
    # process unless MPI is installed).
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port())]
    env = dict(os.environ, ACCELERATE_USE_CPU="1", GLOO_SOCKET_IFNAME="lo", MASTER_ADDR="127.0.0.1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run(
        launcher + [str(cli_reporting_threads_at_exit(tmp_path)), "v2a", "--model", models["v2a"], "--video", str(source),
                    "--out", str(out), "--wav", *FAST],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    # Each process tore its gloo group down itself: group threads left to interpreter shutdown sometimes aborted a
    # process at exit (a failing exit code although every clip was written).
    if sys.platform == "linux":
        left = [line for line in proc.stderr.splitlines() if line.startswith("threads at exit:")]
        assert len(left) == 2 and not any("gloo" in line for line in left), left
    s = summary(out)
    assert (s["processes"], s["clips"], s["done"], s["skipped"], s["failed"]) == (2, 4, 3, 1, 0)
    done = [r for r in s["results"] if r["status"] == "done"]
    assert sorted(r["input"] for r in done) == ["c0.mp4", "c1.mp4", "c2.mp4"]  # each exactly once
    assert {r["process"] for r in done} == {0, 1}  # and both processes worked
    assert sorted(os.listdir(out)) == [SUMMARY_NAME, "c0.wav", "c1.wav", "c2.wav", "c3.wav"]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("av-link v2a:")]
    assert len(lines) == 1 and "on 2 processes" in lines[0]  # merged, printed once


def test_v2a_folder_decodes_the_next_clip_while_sampling(models, tmp_path, capsys, monkeypatch):
    """Each clip is decoded once, in the background (the next one while the current one samples)."""
    from av_link.pipelines import inputs
    from av_link.utils import media_stream

    decoded = []
    real = media_stream.decode_video
    monkeypatch.setattr(media_stream, "decode_video", lambda path, *a, **k: decoded.append(os.path.basename(path)) or real(path, *a, **k))
    monkeypatch.setattr(inputs, "decode_video", lambda *a, **k: pytest.fail("the pipeline decoded a clip again"))
    source = videos(tmp_path / "in", 3)
    code, _, err = run(capsys, "v2a", "--model", models["v2a"], "--video", source, "--out", tmp_path / "out", "--wav", *FAST)
    assert code == 0, err
    assert sorted(decoded) == ["c0.mp4", "c1.mp4", "c2.mp4"]
