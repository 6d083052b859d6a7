"""Seconds and peak RSS for long 720p inputs: does cost follow the model's work, and memory stay flat in length?

Method
------
* Inputs: 1280x720, 24 fps H.264 (yuv420p, CRF 23) of a moving test pattern (ffmpeg's ``testsrc2``) with a
  48 kHz stereo AAC tone, 10 s, 55 s (trailer-sized) and 5 min by default; made once with the ffmpeg shipped
  with imageio-ffmpeg and cached in ``--work-dir``.
* Cases, each in a fresh Python process (so one case's memory cannot hide in another's):
  - ``decode``: :func:`av_link.utils.media_stream.decode_video` of the file to the shipped tiny V2A model's
    rate and size (its ``video_transformer`` frame rate, pipeline height/width), the streaming path the
    pipelines take for a file;
  - ``decode_in_memory`` (baseline, 10 s input only by default): ``read_video`` of every full-resolution
    frame, then ``resample_video``: the pre-streaming path;
  - ``cli``: ``av-link v2a`` with the shipped tiny model (``av_link.evaluation.shipped_models_dir()``),
    ``--steps 64``, seed 0, writing an mp4 (the input's video stream copied).
* Seconds: wall time of the child process, from start to exit (imports and model loading included for ``cli``).
* Peak RSS: ``ru_maxrss`` from ``os.wait4`` of the child (the largest single process in its tree), plus the
  Python process's own peak and that of its waited-for children (ffmpeg) as the child reports them. The two run
  at the same time, so their sum is an upper bound of the whole job's peak; all three are in the JSON.
* Threads: ``OMP_NUM_THREADS`` / torch threads are left as the caller sets them (``--threads`` sets both).

Run: ``python benchmarks/long_inputs.py [--lengths 10 55 300] [--cases decode cli] [--work-dir DIR]``
-> ``benchmarks/results/long_inputs.json`` and ``.md`` (``--name`` changes the file stem).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def make_input(seconds: int, work_dir: Path) -> Path:
    """A cached 720p / 24 fps test video with a stereo tone, `seconds` long."""
    from av_link.utils.media_probe import ffmpeg_exe

    path = work_dir / f"testsrc2_720p24_{seconds}s.mp4"
    if path.exists():
        return path
    tmp = path.with_suffix(".partial.mp4")
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
           "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=24:duration={seconds}",
           "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
           "-map", "0:v", "-map", "1:a", "-ac", "2", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", str(tmp)]
    subprocess.run(cmd, check=True)
    tmp.rename(path)
    return path


def _model_geometry(model_dir: str) -> tuple:
    from av_link.pipelines.folders import component_dir  # an adapter-only folder (a student) names where its backbone is

    with open(os.path.join(model_dir, "model_index.json")) as f:
        index = json.load(f)
    with open(os.path.join(component_dir(model_dir, index, "video_transformer"), "config.json")) as f:
        fps = json.load(f)["frame_rate"]
    return float(fps), int(index["height"]), int(index["width"])


def child(case: str, path: str, model_dir: str, out_dir: str, steps: str = "64") -> None:
    """Runs inside the measured process; prints one JSON line."""
    import resource

    fps, height, width = _model_geometry(model_dir)
    info = {}
    if case == "decode":
        from av_link.utils.media_stream import decode_video

        frames, seconds = decode_video(path, fps, height, width)
        info = dict(model_frames=int(frames.shape[0]), input_seconds=seconds)
    elif case == "decode_in_memory":
        import torch

        from av_link.utils.media_io import read_video
        from av_link.utils.video_ops import resample_video

        raw, file_fps = read_video(path)
        frames = resample_video(torch.from_numpy(raw).permute(0, 3, 1, 2), file_fps, fps, height, width)
        info = dict(model_frames=int(frames.shape[0]), input_seconds=len(raw) / file_fps)
    elif case == "cli":
        from av_link.cli import main

        out = os.path.join(out_dir, "out.mp4")
        code = main(["v2a", "--model", model_dir, "--video", path, "--out", out, "--seed", "0", "--quiet"]
                    + (["--steps", steps] if steps != "config" else []))
        if code != 0:
            raise SystemExit(code)
    else:
        raise SystemExit(f"unknown case {case}")
    info["python_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    info["children_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(info))


def _run_with_rusage(argv, env):
    """Popen + os.wait4, so the child's own ru_maxrss is read (communicate() would reap it without rusage)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        out.seek(0), err.seek(0)
        return proc.returncode, out.read(), err.read(), seconds, usage.ru_maxrss / 1024


def measure_case(case: str, path: Path, model_dir: str, threads: int, steps: str = "64") -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory(prefix="av_link_bench_") as out_dir:
        argv = [sys.executable, __file__, "--child", case, str(path), model_dir, out_dir, steps]
        code, stdout, stderr, seconds, tree_peak = _run_with_rusage(argv, env)
    if code != 0:
        raise RuntimeError(f"{case} on {path.name} failed:\n{stderr[-2000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result.update(case=case, input=path.name, seconds=round(seconds, 2), peak_rss_mb=round(tree_peak, 1))
    result["upper_bound_peak_rss_mb"] = round(result["python_peak_rss_mb"] + result["children_peak_rss_mb"], 1)
    return result


def to_markdown(report: dict) -> str:
    lines = [f"# Long inputs ({report['machine']})", "",
             f"Model: {report['model']} ({report['model_geometry']}); threads {report['threads']}; "
             f"load average at start {report['load_average']}.", "",
             "| case | input | seconds | s per input s | peak RSS, MB (largest process) | Python + ffmpeg peaks, MB |",
             "|---|---|---:|---:|---:|---:|"]
    for r in report["results"]:
        per_second = r["seconds"] / r["input_seconds"] if r.get("input_seconds") else r["seconds"] / r["length_s"]
        lines.append(f"| {r['case']} | {r['length_s']} s | {r['seconds']:.1f} | {per_second:.3f} | "
                     f"{r['peak_rss_mb']:.0f} | {r['upper_bound_peak_rss_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(*sys.argv[2:7])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 55, 300], help="input lengths, seconds")
    parser.add_argument("--cases", nargs="+", default=["decode", "cli"], choices=["decode", "decode_in_memory", "cli"])
    parser.add_argument("--baseline-lengths", type=int, nargs="*", default=[10],
                        help="lengths that also run decode_in_memory (it holds every 720p frame: ~2.8 MB each)")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "av_link_long_inputs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--name", default="long_inputs", help="results file stem in benchmarks/results/")
    parser.add_argument("--model", default=None,
                        help="a V2A pipeline folder (default: the shipped one; e.g. the shipped students/v2a with --steps config)")
    parser.add_argument("--steps", default="64", help="sampling steps of the cli case, or 'config' for the model's own")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "src"))
    from av_link.evaluation import shipped_models_dir

    model_dir = args.model or os.path.join(shipped_models_dir(), "v2a")
    args.work_dir.mkdir(parents=True, exist_ok=True)
    report = dict(machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
                  python=platform.python_version(), threads=args.threads, load_average=round(os.getloadavg()[0], 2),
                  model=os.path.relpath(model_dir, ROOT), model_geometry="{:g} fps, {}x{} px".format(*_model_geometry(model_dir)),
                  results=[])
    for seconds in args.lengths:
        path = make_input(seconds, args.work_dir)
        cases = list(args.cases) + (["decode_in_memory"] if seconds in args.baseline_lengths
                                    and "decode_in_memory" not in args.cases else [])
        for case in cases:
            result = measure_case(case, path, model_dir, args.threads, args.steps)
            result["length_s"] = seconds
            report["results"].append(result)
            print(json.dumps(result), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
