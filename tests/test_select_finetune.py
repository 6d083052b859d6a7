"""examples/select_v2a_finetune.py: score V2A candidates on a validation split, keep the best, resume from saved scores."""

import json
import sys
from pathlib import Path

import pytest
import torch

from av_link import AVLinkV2APipeline
from av_link.data.synthetic_v2 import SynthHitsV2Config, make_synthhits_v2_dataset
from av_link.testing import TINY_PIPELINE_CONFIG, tiny_components

sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))
import select_v2a_finetune as select  # noqa: E402


@pytest.fixture(scope="module")
def candidates(tmp_path_factory):
    root = tmp_path_factory.mktemp("candidates")
    for seed in (0, 1):
        folder = root / f"seed{seed}"
        AVLinkV2APipeline(**tiny_components(seed), **TINY_PIPELINE_CONFIG).save_pretrained(folder)
        (folder / "checkpoint-10").mkdir()  # training state: not part of the kept model
    config = SynthHitsV2Config(fps_choices=(25.0, 8.0), duration_range=(2.0, 2.5))
    make_synthhits_v2_dataset(root / "val", 2, config=config, seed=7, progress=False)
    return root


def test_scores_every_candidate_and_keeps_the_best(candidates, tmp_path, capsys):
    folders = [str(candidates / "seed0"), str(candidates / "seed1")]
    select.main(["--candidates", *folders, "--data", str(candidates / "val"), "--output_dir", str(tmp_path / "kept"),
                 "--steps", "2"])
    saved = {f: json.loads((Path(f) / select.SCORES).read_text())["scores"] for f in folders}
    for scores in saved.values():
        assert len(scores["per_clip_kind"]) == 2 and scores["kind_acc"] == sum(scores["per_clip_kind"]) / 2
    best = max(folders, key=lambda f: (saved[f]["kind_acc"], saved[f]["onset_f1"]))
    selection = json.loads((tmp_path / "kept" / "selection.json").read_text())
    assert selection["chosen"] == best and set(selection["candidates"]) == set(folders)
    assert selection["settings"]["steps"] == 2 and selection["settings"]["guidance_stop"] == 0.3
    # The kept folder is the winner's pipeline, without its checkpoints or scores.
    assert not (tmp_path / "kept" / "checkpoint-10").exists() and not (tmp_path / "kept" / select.SCORES).exists()
    kept = AVLinkV2APipeline.from_pretrained(str(tmp_path / "kept")).fusion_adapter.state_dict()
    winner = AVLinkV2APipeline.from_pretrained(best).fusion_adapter.state_dict()
    assert all(torch.equal(kept[k], winner[k]) for k in winner)
    # Run again into another folder: the saved scores are reused, nothing is sampled.
    capsys.readouterr()
    select.main(["--candidates", *folders, "--data", str(candidates / "val"), "--output_dir", str(tmp_path / "again"),
                 "--steps", "2"])
    assert capsys.readouterr().out.count("scored before") == 2
    assert json.loads((tmp_path / "again" / "selection.json").read_text())["chosen"] == best


def test_ties_go_to_onset_f1_then_to_the_earlier_candidate(candidates, tmp_path, monkeypatch):
    folders = [str(candidates / "seed0"), str(candidates / "seed1")]
    fake = {folders[0]: (0.9, 0.5), folders[1]: (0.9, 0.7)}
    monkeypatch.setattr(select, "score", lambda c, *a: {"kind_acc": fake[c][0], "onset_f1": fake[c][1], "per_clip_kind": []})
    # other settings than the saved scores' (seed 5): every candidate is scored again
    args = ["--candidates", *folders, "--data", str(candidates / "val"), "--steps", "2", "--seed", "5"]
    select.main([*args, "--output_dir", str(tmp_path / "f1")])
    assert json.loads((tmp_path / "f1" / "selection.json").read_text())["chosen"] == folders[1]
    fake[folders[1]] = (0.9, 0.5)
    for f in folders:
        (Path(f) / select.SCORES).unlink()
    select.main([*args, "--output_dir", str(tmp_path / "first")])
    assert json.loads((tmp_path / "first" / "selection.json").read_text())["chosen"] == folders[0]
    for f in folders:
        (Path(f) / select.SCORES).unlink()  # leave the module's candidates as the first test found them


def test_refuses_a_finished_output_and_unfinished_candidates(candidates, tmp_path, capsys):
    (tmp_path / "kept").mkdir()
    with pytest.raises(SystemExit):
        select.parse_args(["--candidates", str(candidates / "seed0"), "--data", str(candidates / "val"),
                           "--output_dir", str(tmp_path / "kept")])
    assert "exists: remove it to select again" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        select.parse_args(["--candidates", str(tmp_path), "--data", str(candidates / "val"), "--output_dir", str(tmp_path / "x")])
    assert "not a finished pipeline folder" in capsys.readouterr().err
