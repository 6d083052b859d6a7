"""The benchmark scripts' code paths on tiny configs (CPU): they are run rarely, on other machines (a GPU for
`gpu_timing.py`), so a broken path must show up here first."""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))


@pytest.fixture
def small_paper_clip(monkeypatch):
    import gpu_timing
    import pipeline_flops as pf

    monkeypatch.setattr(pf, "PAPER", dict(pf.PAPER, height=16, width=16))
    monkeypatch.setitem(gpu_timing.TEACHER, "num_inference_steps", 2)
    monkeypatch.setitem(gpu_timing.STUDENT, "num_inference_steps", 1)
    return gpu_timing


def test_paper_pipeline_counts_flops_per_step(small_paper_clip):
    """pipeline_flops' paper pipeline runs on the meta device; the student (guidance 1) skips the unconditional pass."""
    counts = small_paper_clip.count_paper("tiny")
    for direction in ("v2a", "a2v"):
        teacher, student = counts[direction]["teacher"], counts[direction]["student"]
        assert 0 < student["per_step"] < teacher["per_step"]
        assert teacher["per_sample"] == teacher["once"] + 2 * teacher["per_step"]


def test_gpu_timing_parts_run_on_cpu(small_paper_clip, tmp_path):
    """The timed parts on tiny configs: every part ends without an error and training leaves the backbones frozen."""
    results = small_paper_clip.main(["--tiny", "--device", "cpu", "--dtype", "float32", "--out", str(tmp_path),
                                     "--parts", "open_vae", "open_sample", "open_train", "--train-configs", "1:1"])
    saved = json.loads((tmp_path / "gpu_timing.json").read_text())
    assert saved["parts"].keys() == results["parts"].keys() == {"open_vae", "open_sample", "open_train"}
    assert not any("error" in part for part in saved["parts"].values())
    train = saved["parts"]["open_train"]["batch1_checkpointing"]
    assert train["frozen_grads"] == 0 and train["samples_per_second"] > 0
    # The A2V figures are derived from its two timed step counts (their values are timings: not asserted here).
    a2v = saved["parts"]["open_sample"]["a2v"]
    (n1, t1), (n2, t2) = ((int(n), t) for n, t in a2v["steps_timed"].items())
    assert (n1, n2) == (2, 6) and t1 > 0 and t2 > 0 and saved["parts"]["open_sample"]["v2a"]["seconds_per_sample"] > 0
    assert a2v["seconds_per_step"] == pytest.approx((t2 - t1) / 4)
    assert a2v["once"] + 2 * a2v["seconds_per_step"] == pytest.approx(t1)
    steps = saved["parts"]["open_sample"]["v2a"]["steps"]  # the teacher's step count (--tiny: 4)
    assert a2v["seconds_per_sample_extrapolated"] == pytest.approx(t1 + (steps - 2) * a2v["seconds_per_step"])


def test_memory_counter_runs_under_autocast():
    """SDPA under autocast gets inputs of one dtype, as autocast itself would cast them (q and k leave an fp32 RMSNorm
    as float32, v a bf16 linear)."""
    from av_link import as_backbone
    from av_link.testing import tiny_longcat_transformer, tiny_longcat_vae, tiny_wan_longcat_adapter, tiny_wan_transformer, tiny_wan_vae, TINY_WAN_FPS
    from av_link.training.memory import activation_bytes, fusion_training_loss

    wan = as_backbone(tiny_wan_transformer().to(torch.bfloat16).requires_grad_(False), vae=tiny_wan_vae(), fps=TINY_WAN_FPS)
    longcat = as_backbone(tiny_longcat_transformer().to(torch.bfloat16).requires_grad_(False), vae=tiny_longcat_vae())
    adapter = tiny_wan_longcat_adapter()
    inputs = dict(audio=torch.randn(1, 9, 8), video=torch.randn(1, 4, 3, 4, 6), audio_text=torch.randn(1, 5, 32),
                  video_text=torch.randn(1, 5, 32))

    def forward():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fusion_training_loss(longcat, wan, adapter, **inputs)

    kept, _ = activation_bytes(forward, exclude=[wan.model, longcat.model, adapter])
    assert kept > 0


def test_ablation_variants_build_on_the_synthhits_backbones():
    """Every variant of benchmarks/ablations.py is a valid adapter between the tiny SynthHits backbones (6 audio,
    4 video blocks); the single placements sit at the paper's relative depths."""
    import ablations

    from av_link import AVLinkFusionAdapter

    layers = {"audio": 6, "video": 4}
    for name in ablations.VARIANTS:
        config = ablations.adapter_config(name, layers)
        adapter = AVLinkFusionAdapter.from_preset("tiny", audio_dim=64, video_dim=64, num_audio_layers=6,
                                                  num_video_layers=4, **config)
        assert adapter.config.num_blocks == 4
    placements = {name: ablations.adapter_config(name, layers) for name in ablations.PLACEMENT}
    assert [p["video_layers"][0] for p in placements.values()] == [0, 1, 3]
    assert [p["audio_layers"][0] for p in placements.values()] == [0, 2, 5]
    assert "video_layers" not in ablations.adapter_config("fusion_blocks", layers)  # interleaved by default


def test_ablation_intervals_and_verdicts():
    import ablations

    mean, half = ablations.interval([0.5, 0.6, 0.7])
    assert mean == pytest.approx(0.6) and half == pytest.approx(4.303 * 0.1 / 3 ** 0.5)
    clear = ([0.9, 0.8, 0.9, 1.0], [0.5, 0.4, 0.5, 0.6])  # per-clip scores (seed means), paired by clip
    assert ablations.verdict(([0.9, 0.91, 0.92], [0.5, 0.52, 0.51]), clear)["verdict"] == "reproduced"
    assert ablations.verdict(([0.5, 0.52, 0.51], [0.9, 0.91, 0.92]), clear[::-1])["verdict"] == "reversed"
    assert ablations.verdict(([0.6, 0.9, 0.3], [0.5, 0.52, 0.51]), clear)["verdict"] == "not resolved (same direction)"
    # equal cells across seeds give a zero seed interval; the clips still decide
    same_seeds = ([0.625] * 3, [0.5] * 3)
    assert ablations.verdict(same_seeds, ([1, 0, 1, 0], [0, 1, 1, 0]))["verdict"] == "not resolved (same direction)"
    assert ablations.verdict(same_seeds, clear)["verdict"] == "reproduced"
    assert ablations.verdict(([0.5] * 3, [0.5] * 3), clear)["verdict"] == "no difference"
    assert ablations.verdict(([0.5], [0.4, 0.3]), clear)["verdict"] == "one seed so far"


def test_joint_systems_build_between_the_synthhits_backbones():
    """benchmarks/joint.py's systems are valid adapters between the tiny SynthHits backbones."""
    import joint
    from synthhits_cells import BASE_ADAPTER

    from av_link import AVLinkFusionAdapter

    for name, (task, config, _) in joint.SYSTEMS.items():
        adapter = AVLinkFusionAdapter.from_preset("tiny", audio_dim=64, video_dim=64, num_audio_layers=6,
                                                  num_video_layers=4, **dict(BASE_ADAPTER, **config))
        assert task in ("joint_generation", "v2a") and adapter.config.num_blocks == 4, name
    assert {"avlink_joint", "syncflow", "v2a"} <= set(joint.SYSTEMS)
    assert sorted(c["timestep_gamma"] for n, (_, c, _) in joint.SYSTEMS.items() if n.startswith("ishii")) == [-1.5, 0.0, 1.5]


def test_distillation_summary_averages_a_metric_over_the_clips_that_have_it():
    """A clip without a ring to measure has no `ring_ripple_db`: the summary must not fail on it (it did)."""
    from distillation import summarize_samplers

    rows = {"V2A teacher, 64 steps": [{"onset_acc": 1.0, "ring_ripple_db": 2.0, "seconds": 4.0}, {"onset_acc": 0.5, "seconds": 6.0}],
            "V2A student, 8 steps": [{"onset_acc": 0.5, "seconds": 1.0}, {"onset_acc": 0.5, "ring_ripple_db": 3.0, "seconds": 1.5}],
            "A2V teacher, 64 steps": [{"contact_acc": 1.0, "seconds": 10.0}, {"contact_acc": 0.0, "seconds": 10.0}],
            "A2V student, 8 steps": [{"contact_acc": 1.0, "seconds": 1.0}, {"contact_acc": 1.0, "seconds": 1.0}]}
    summary = summarize_samplers(rows)
    assert summary["V2A teacher, 64 steps"]["onset_acc"] == 0.75 and summary["V2A teacher, 64 steps"]["ring_ripple_db"] == 2.0
    assert summary["V2A student, 8 steps"]["ring_ripple_db"] == 3.0
    # each direction's ratio is to its own teacher at 64 steps
    assert summary["V2A student, 8 steps"]["time_ratio"] == 0.25 and summary["A2V student, 8 steps"]["time_ratio"] == 0.1
    assert summary["A2V teacher, 64 steps"]["time_ratio"] == 1.0 and summary["A2V teacher, 64 steps"]["contact_acc"] == 0.5
