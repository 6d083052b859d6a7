"""examples/synthhits_v2_train.sh with a stub Python: which commands its stages run, and what they skip."""

import json
import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "synthhits_v2_train.sh"
# Records its arguments, one JSON list per call, and writes the output folder's model_index.json as a run would.
STUB = """#!/usr/bin/env python3
import json, os, sys
if sys.argv[1:2] == ["-c"]:
    sys.exit(0)
with open(os.environ["STUB_CALLS"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
out = sys.argv[sys.argv.index("--output_dir") + 1]
os.makedirs(out, exist_ok=True)
open(os.path.join(out, "model_index.json"), "w").write("{}")
"""


def run_stages(tmp_path, *stages, **env):
    work = tmp_path / "work"
    (work / "train").mkdir(parents=True, exist_ok=True)
    (work / "train" / "metadata.jsonl").write_text("")
    stub = tmp_path / "python_stub"
    stub.write_text(STUB)
    stub.chmod(0o755)
    calls = tmp_path / "calls.jsonl"
    result = subprocess.run(["bash", str(SCRIPT), str(work), *stages], cwd=SCRIPT.parents[1], capture_output=True, text=True,
                            env={**os.environ, "PYTHON": str(stub), "STUB_CALLS": str(calls), **env})
    lines = calls.read_text().splitlines() if calls.exists() else []
    return result, [json.loads(line) for line in lines]


def adapter_config(call):
    return json.loads(call[call.index("--adapter_config") + 1])


@pytest.mark.parametrize("reinject,expected", [(None, ("both", "both")), ("static", ("audio", "video"))])
def test_fusion_stages_reinject_as_told(tmp_path, reinject, expected):
    env = {"REINJECT": reinject} if reinject else {}
    result, calls = run_stages(tmp_path, "v2a", "a2v", **env)
    assert result.returncode == 0, result.stderr
    assert [c[c.index("--task") + 1] for c in calls] == ["v2a", "a2v"]
    assert tuple(adapter_config(c)["reinject"] for c in calls) == expected
    assert all(adapter_config(c)["time_bias"] is True for c in calls)
    # A finished stage is skipped when the command is run again.
    result, calls_again = run_stages(tmp_path, "v2a", "a2v", **env)
    assert result.returncode == 0 and calls_again == calls and "v2a: done" in result.stdout


def test_an_unknown_reinject_is_refused_before_any_stage(tmp_path):
    result, calls = run_stages(tmp_path, "v2a", REINJECT="audio")
    assert result.returncode == 2 and "REINJECT must be both or static" in result.stderr and calls == []
