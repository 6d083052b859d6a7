"""How long `av-link --help` (and each subcommand's `--help`) takes, and which heavy libraries it imports.

Method
------
* Each case is a fresh `python -m av_link.cli <args> --help` process (what a user's shell pays; the console script
  `av-link` adds only its own few-line shim), run `--repeats` times after one warm-up run (so the OS file cache is
  warm); the figure is the median wall time. `python -c pass` is measured the same way as the floor.
* `--src DIR` runs another checkout's `src/` (e.g. the commit before the change, from
  `git archive <rev> src | tar -x -C /tmp/before`) for a before/after on the same machine.
* One more run per case under `-X importtime` lists which of torch, diffusers, transformers, scipy and numpy
  were imported.

Run: `python benchmarks/cli_startup.py [--src DIR] [--repeats 5] [--out benchmarks/results/cli_startup.json]`.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ["", "v2a", "a2v", "t2a", "t2v", "make-synthetic", "evaluate", "demo"]
HEAVY = ("torch", "diffusers", "transformers", "scipy", "numpy")


def _env(src: Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(src))
    env.pop("PYTHONWARNINGS", None)
    return env


def _time(argv, env, repeats: int) -> float:
    subprocess.run(argv, env=env, capture_output=True, check=True)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _heavy_imports(argv, env) -> list:
    proc = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], env=env, capture_output=True, text=True, check=True)
    # lines look like "import time:   123 |   4567 | torch"; a top-level package has no dot in its name
    names = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return [name for name in HEAVY if name in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the src/ folder to run (default: this checkout)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()

    env = _env(args.src.resolve())
    floor = _time([sys.executable, "-c", "pass"], env, args.repeats)
    rows = {}
    for case in CASES:
        argv = [sys.executable, "-m", "av_link.cli", *([case] if case else []), "--help"]
        label = f"av-link {case} --help".replace("  ", " ")
        rows[label] = dict(seconds=_time(argv, env, args.repeats), heavy_imports=_heavy_imports(argv, env))
        print(f"{label:32s} {rows[label]['seconds']:.3f} s  imports {', '.join(rows[label]['heavy_imports']) or 'none of ' + '/'.join(HEAVY)}",
              flush=True)
    print(f"{'python -c pass':32s} {floor:.3f} s")
    result = dict(src=str(args.src), repeats=args.repeats, python=platform.python_version(), floor_seconds=floor,
                  cases=rows, load_average=os.getloadavg()[0] if hasattr(os, "getloadavg") else None)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
