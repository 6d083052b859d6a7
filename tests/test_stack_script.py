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
    (work / "val").mkdir(exist_ok=True)  # the validation split the V2A fine-tune's seeds are chosen on
    (work / "val" / "metadata.jsonl").write_text("")
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


@pytest.mark.parametrize("env,expected", [
    ({}, ("both", "video")),  # the defaults: V2A symmetric, A2V static features
    ({"REINJECT": "static"}, ("audio", "video")),
    ({"REINJECT": "both"}, ("both", "both")),
    ({"REINJECT": "static", "V2A_REINJECT": "both"}, ("both", "video")),  # a direction's own setting wins
])
def test_fusion_stages_reinject_as_told(tmp_path, env, expected):
    result, calls = run_stages(tmp_path, "v2a", "a2v", **env)
    assert result.returncode == 0, result.stderr
    assert [c[c.index("--task") + 1] for c in calls] == ["v2a", "a2v"]
    assert tuple(adapter_config(c)["reinject"] for c in calls) == expected
    assert all(adapter_config(c)["time_bias"] is True for c in calls)
    # A finished stage is skipped when the command is run again.
    result, calls_again = run_stages(tmp_path, "v2a", "a2v", **env)
    assert result.returncode == 0 and calls_again == calls and "v2a: done" in result.stdout


def test_an_unknown_reinject_is_refused_before_any_stage(tmp_path):
    for env, name in (({"REINJECT": "audio"}, "V2A_REINJECT"), ({"A2V_REINJECT": "video"}, "A2V_REINJECT")):
        result, calls = run_stages(tmp_path, "v2a", **env)
        assert result.returncode == 2 and f"{name} (or REINJECT) must be both or static" in result.stderr and calls == []
    result, calls = run_stages(tmp_path, "t2a", AUDIO_EMA="yes")
    assert result.returncode == 2 and "AUDIO_EMA must be 0 or 1" in result.stderr and calls == []
    result, calls = run_stages(tmp_path, "v2a", FUSION_EMA="2")
    assert result.returncode == 2 and "FUSION_EMA must be 0 or 1" in result.stderr and calls == []


def test_fusion_ema_reaches_every_fusion_stage_and_no_backbone(tmp_path):
    stages = ("t2a", "t2v", "v2a", "a2v", "v2a_ft", "a2v_ft")
    result, calls = run_stages(tmp_path / "ema", *stages, FUSION_EMA="1", AUDIO_EMA="0")
    assert result.returncode == 0, result.stderr
    # the V2A fine-tune: four seeds, then the selection (which trains nothing)
    assert ["--use_ema" in c for c in calls] == [False, False, True, True, True, True, True, True, False, True]
    result, calls = run_stages(tmp_path / "default", "v2a", "v2a_ft")
    assert result.returncode == 0 and not any("--use_ema" in c for c in calls)


def test_ft_seed_reaches_the_fine_tunes_only(tmp_path):
    result, calls = run_stages(tmp_path / "seeded", "v2a", "v2a_ft", "a2v_ft", FT_SEED="2")
    assert result.returncode == 0, result.stderr
    assert ["--seed" in c for c in calls] == [False, True, True]
    assert [c[c.index("--seed") + 1] for c in calls[1:]] == ["2", "2"]
    assert calls[1][calls[1].index("--output_dir") + 1].endswith("/v2a_ft")  # one seed: no selection
    result, calls = run_stages(tmp_path / "default", "a2v_ft")
    assert calls[0][calls[0].index("--seed") + 1] == "0"
    for env in ({"FT_SEED": "two"}, {"V2A_FT_SEEDS": "0 x"}, {"VAL_SEED": "-1"}):
        result, calls = run_stages(tmp_path / "bad", "v2a_ft", **env)
        assert result.returncode == 2 and "take non-negative integers" in result.stderr and calls == []


def test_v2a_ft_trains_every_seed_and_keeps_the_best_on_the_validation_split(tmp_path):
    result, calls = run_stages(tmp_path, "v2a_ft")
    assert result.returncode == 0, result.stderr
    work = tmp_path / "work"
    *fine_tunes, selection = calls
    assert [(c[0], c[c.index("--seed") + 1], c[c.index("--output_dir") + 1]) for c in fine_tunes] == [
        ("examples/train_fusion.py", str(s), f"{work}/v2a_ft_seed{s}") for s in range(4)]
    assert selection[0] == "examples/select_v2a_finetune.py"
    candidates = selection[selection.index("--candidates") + 1:selection.index("--data")]
    assert candidates == [f"{work}/v2a_ft_seed{s}" for s in range(4)]
    assert selection[selection.index("--data") + 1] == f"{work}/val"
    assert selection[selection.index("--guidance_stop") + 1] == "0.3"  # judged as the shipped V2A samples
    assert selection[selection.index("--output_dir") + 1] == f"{work}/v2a_ft"
    # Interrupted after seed 1 had finished and before the selection: only seeds 2 and 3 and the selection run again.
    for name in ("v2a_ft", "v2a_ft_seed2", "v2a_ft_seed3"):
        (work / name / "model_index.json").unlink()
    result, again = run_stages(tmp_path, "v2a_ft", V2A_FT_SEEDS="0 1 2 3")
    assert result.returncode == 0 and "seed 1: done" in (result.stdout + result.stderr)
    assert again[len(calls):] == calls[2:]
    # Once WORK/v2a_ft is complete, the stage is done.
    result, after = run_stages(tmp_path, "v2a_ft")
    assert after == again and "v2a_ft: done" in result.stdout


def test_backbone_stages_video_patch_and_audio_ema(tmp_path):
    result, calls = run_stages(tmp_path, "t2a", "t2v", VIDEO_PATCH="4")
    assert result.returncode == 0, result.stderr
    t2a, t2v = calls
    assert "--use_ema" in t2a and "--use_ema" not in t2v
    assert json.loads(t2v[t2v.index("--model_config") + 1])["patch_size"] == [1, 4, 4]
    result, calls = run_stages(tmp_path / "default", "t2v")
    assert json.loads(calls[0][calls[0].index("--model_config") + 1])["patch_size"] == [1, 8, 8]
    result, calls = run_stages(tmp_path / "shipped", "t2a", AUDIO_EMA="0")  # the shipped models' recipe
    assert result.returncode == 0 and "--use_ema" not in calls[0]
    audio_config = json.loads(t2a[t2a.index("--model_config") + 1])
    assert (audio_config["hidden_size"], audio_config["mlp_dim"]) == (192, 384)
    result, calls = run_stages(tmp_path / "wide", "t2a", AUDIO_HIDDEN="256")
    audio_config = json.loads(calls[0][calls[0].index("--model_config") + 1])
    assert (audio_config["hidden_size"], audio_config["mlp_dim"]) == (256, 512)
    assert audio_config["mlp_conv_kernel"] == 1 and calls[0][calls[0].index("--energy_smoothness") + 1] == "0"
    result, calls = run_stages(tmp_path / "smooth", "t2a", AUDIO_CONV_KERNEL="3", ENERGY_SMOOTHNESS="4")
    assert json.loads(calls[0][calls[0].index("--model_config") + 1])["mlp_conv_kernel"] == 3
    assert calls[0][calls[0].index("--energy_smoothness") + 1] == "4"


# A stub run that takes a while: resumes from its latest checkpoint and writes one more every 0.3 s until it has
# STUB_SLOW[stage] of them; records its start (thread count, checkpoint resumed from), its pid and its end.
SLOW_STUB = """#!/usr/bin/env python3
import json, os, re, sys, time
if sys.argv[1:2] == ["-c"]:
    sys.exit(0)
out = sys.argv[sys.argv.index("--output_dir") + 1]
stage = os.path.basename(out)
slow = dict(item.split(":") for item in os.environ["STUB_SLOW"].split(","))
os.makedirs(out, exist_ok=True)
done = [int(m.group(1)) for m in map(re.compile(r"^checkpoint-(\\d+)$").match, os.listdir(out)) if m]
start = max(done, default=0)
def record(event):
    with open(os.environ["STUB_CALLS"], "a") as f:
        f.write(json.dumps({"stage": stage, "event": event, "threads": os.environ.get("OMP_NUM_THREADS"),
                            "from": start, "pid": os.getpid()}) + "\\n")
record("start")
for k in range(start + 1, int(slow.get(stage, 0)) + 1):
    time.sleep(0.3)
    os.mkdir(os.path.join(out, f"checkpoint-{k}"))
open(os.path.join(out, "model_index.json"), "w").write("{}")
record("end")
"""


def test_a_lane_left_alone_resumes_its_stage_on_both_threads(tmp_path):
    work = tmp_path / "work"
    (work / "train").mkdir(parents=True)
    (work / "train" / "metadata.jsonl").write_text("")
    stub = tmp_path / "python_stub"
    stub.write_text(SLOW_STUB)
    stub.chmod(0o755)
    calls = tmp_path / "calls.jsonl"
    result = subprocess.run(["bash", str(SCRIPT), str(work)], cwd=SCRIPT.parents[1], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHON": str(stub), "STUB_CALLS": str(calls),
                                              "STUB_SLOW": "t2a:10,v2a:10", "POLL_SECONDS": "0.1"})
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in calls.read_text().splitlines()]
    runs = {}
    for r in records:
        runs.setdefault(r["stage"], []).append(r)
    # The short lanes' stages run once each, on one thread while the long lane runs.
    for name in ("t2v", "a2v", "a2v_ft"):
        assert [(r["event"], r["threads"]) for r in runs[name]] == [("start", "1"), ("end", "1")]
    # The long stages start on one thread, are stopped after a checkpoint (no end recorded) once the other lane is
    # done, and resume from that checkpoint on two.
    for name in ("t2a", "v2a"):
        first, second, end = runs[name]
        assert (first["event"], first["threads"], first["from"]) == ("start", "1", 0)
        assert (second["event"], second["threads"], end["event"]) == ("start", "2", "end")
        assert 0 < second["from"] < 10 and second["pid"] == end["pid"] != first["pid"]
        assert f"resuming from checkpoint-{second['from']} on 2 threads" in (work / f"{name}.log").read_text()
        with pytest.raises(ProcessLookupError):  # the stopped run is gone, not orphaned and still training
            os.kill(first["pid"], 0)
    # A stage that starts after the other lane is done takes both threads at once.
    # So do the V2A fine-tune's seeds and the selection among them (the record named v2a_ft).
    for name in ("v2a_ft", "v2a_ft_seed0", "v2a_ft_seed3"):
        assert [(r["event"], r["threads"]) for r in runs[name]] == [("start", "2"), ("end", "2")]


def test_students_stage_distils_both_fine_tunes_with_lora_on_the_fusion_blocks(tmp_path):
    result, calls = run_stages(tmp_path, "students")
    assert result.returncode == 0, result.stderr
    work = tmp_path / "work"
    assert [c[0] for c in calls] == ["examples/distill_fusion.py"] * 2
    v2a, a2v = calls
    for call, d, generated in ((v2a, "v2a", "audio"), (a2v, "a2v", "video")):
        assert call[call.index("--teacher") + 1] == f"{work}/{d}_ft"
        assert call[call.index("--output_dir") + 1] == f"{work}/students/{d}"
        assert call[call.index("--lora_targets") + 1:call.index("--lora_targets") + 3] == ["fusion", generated]
        assert call[call.index("--num_student_steps") + 1] == "8" and "--resume_from_checkpoint" in call
    # the V2A teacher is distilled as it samples: the first 30% of its steps guided
    assert v2a[v2a.index("--teacher_guidance_stop") + 1] == "0.3" and "--teacher_guidance_stop" not in a2v
    result, again = run_stages(tmp_path, "students")
    assert again == calls and "v2a student: done" in result.stdout and "a2v student: done" in result.stdout
