"""Training scripts end to end on tiny SynthHits data (subprocesses, CPU)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from av_link import AVLinkA2VPipeline, AVLinkTextToAudioPipeline, AVLinkV2APipeline
from av_link.data.synthetic import make_synthetic_dataset
from av_link.pipelines.from_backbones import same_model
from av_link.pipelines.model_card import read_training_info
from av_link.training.setup import tiny_text_encoder

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
COMMON = ["--train_batch_size", "2", "--learning_rate", "1e-3", "--lr_warmup_steps", "2", "--report_to", "none",
          "--clip_seconds", "1.0", "--logging_steps", "1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(script, *args, env=None, check=True, launcher=None, timeout=600):
    cmd = (launcher or [sys.executable]) + [str(ROOT / "examples" / script), *map(str, args)]
    # A new session, so that on a timeout the launcher's worker processes are killed with it.
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**ENV, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise AssertionError(f"{script} timed out after {timeout} s:\n{stdout[-2000:]}\n{stderr[-4000:]}")
    result = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise AssertionError(f"{script} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("synth"), num_clips=8, seed=0, progress=False)


@pytest.fixture(scope="module")
def backbones(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("backbones")
    run("train_backbone.py", "--modality", "audio", "--data_dir", data, "--output_dir", root / "t2a", "--max_train_steps", "2",
        "--model_config", '{"patch_size": 4}', *COMMON)
    run("train_backbone.py", "--modality", "video", "--data_dir", data, "--output_dir", root / "t2v", "--max_train_steps", "2",
        "--fps", "8", "--height", "16", "--width", "16", "--model_config", '{"patch_size": [1, 4, 4]}', *COMMON)
    return root / "t2a", root / "t2v"


def fusion(backbones, data, out, *extra, env=None, check=True, launcher=None):
    t2a, t2v = backbones
    return run("train_fusion.py", "--task", "v2a", "--audio_model", t2a, "--video_model", t2v, "--data_dir", data,
               "--output_dir", out, "--preset", "tiny", *COMMON, *extra, env=env, check=check, launcher=launcher, timeout=300)


def adapter_weights(path):
    return load_file(str(Path(path) / "fusion_adapter" / "diffusion_pytorch_model.safetensors"))


def reinjection_gates_moved(path) -> bool:
    """Whether training moved the blocks' reinjection gates (gate2) off their zero start (gate1 starts at 1)."""
    dim = json.loads((Path(path) / "fusion_adapter" / "config.json").read_text())["hidden_size"]
    return any(v[5 * dim:].abs().sum() > 0 for k, v in adapter_weights(path).items() if k.endswith("_modulation"))


def test_backbone_script_writes_a_loadable_pipeline(backbones):
    t2a, t2v = backbones
    pipe = AVLinkTextToAudioPipeline.from_pretrained(t2a)
    assert "text-to-audio" in (t2a / "README.md").read_text() and "data" in (t2a / "README.md").read_text()
    out = pipe(prompt="a metallic clang", audio_length_in_s=0.5, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert out.audios.shape == (1, round(0.5 * 22050))
    assert (t2v / "video_transformer" / "config.json").exists()


def test_fusion_script_trains_only_the_adapter_and_saves_a_pipeline(backbones, data, tmp_path):
    out = tmp_path / "v2a"
    result = fusion(backbones, data, out, "--max_train_steps", "3", "--checkpointing_steps", "2", "--checkpoints_total_limit", "1",
                    "--use_ema", "--gradient_checkpointing")
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3"]  # total limit 1
    assert "text encoder" not in result.stderr  # both backbones carry the same encoder, each from its own folder
    # The checkpoint holds the adapter, its EMA and optimizer state, and references to the frozen backbones, no copy of them.
    ckpt = out / "checkpoint-3"
    assert {p.name for p in ckpt.iterdir()} == {"model.safetensors", "ema.safetensors", "ema.json", "optimizer.bin", "scheduler.bin",
                                                 "random_states_0.pkl", "train_state.json", "frozen_modules.json"}
    adapter_file = out / "fusion_adapter" / "diffusion_pytorch_model.safetensors"
    assert set(load_file(str(ckpt / "model.safetensors"))) == {f"adapter.{k}" for k in adapter_weights(out)}
    assert (ckpt / "model.safetensors").stat().st_size < 1.01 * adapter_file.stat().st_size
    assert sum(p.stat().st_size for p in ckpt.iterdir()) < 4.2 * adapter_file.stat().st_size  # weights, EMA, 2 Adam moments
    refs = json.loads((ckpt / "frozen_modules.json").read_text())
    assert {k: v["source"] for k, v in refs.items()} == {"audio_model": str(backbones[0] / "audio_transformer"),
                                                          "video_model": str(backbones[1] / "video_transformer")}
    t2a = load_file(str(backbones[0] / "audio_transformer" / "diffusion_pytorch_model.safetensors"))
    saved = load_file(str(out / "audio_transformer" / "diffusion_pytorch_model.safetensors"))
    assert all(torch.equal(t2a[k], saved[k]) for k in t2a)  # the backbone is frozen
    assert reinjection_gates_moved(out)
    pipe = AVLinkV2APipeline.from_pretrained(out)
    audio = pipe(video=np.random.default_rng(0).integers(0, 255, (8, 16, 16, 3), dtype=np.uint8), video_fps=8,
                 num_inference_steps=2, generator=torch.Generator().manual_seed(0)).audios
    assert audio.shape == (1, 22050) and np.isfinite(audio).all()
    card = (out / "README.md").read_text()
    assert "video-to-audio" in card and "AdamW" in card and "EMA" in card
    assert "freeze time bias" not in card  # a switch left off is no card line
    assert "samples_per_second" in result.stderr + result.stdout or "sps" in result.stderr


def test_text_encoders_differing_only_in_their_source_path_are_the_same():
    a, b = tiny_text_encoder(seed=0)[0], tiny_text_encoder(seed=0)[0]
    a.config._name_or_path, b.config._name_or_path = "t2a/text_encoder", "t2v/text_encoder"
    assert same_model(a, b)
    assert not same_model(a, tiny_text_encoder(seed=1)[0])  # the same config, other weights
    assert not same_model(a, tiny_text_encoder(text_dim=16)[0])


def test_joint_task_saves_both_directions(backbones, data, tmp_path):
    out = tmp_path / "joint"
    t2a, t2v = backbones
    run("train_fusion.py", "--task", "joint", "--audio_model", t2a, "--video_model", t2v, "--data_dir", data, "--output_dir", out,
        "--preset", "tiny", "--max_train_steps", "2", *COMMON)
    assert AVLinkV2APipeline.from_pretrained(out / "v2a").config.conditioning_timestep == 0.96
    assert AVLinkA2VPipeline.from_pretrained(out / "a2v").config.conditioning_timestep == 0.8


@pytest.mark.parametrize("adapter_config,lora", [('{"fusion_type": "syncflow", "reinject": "audio"}', ["--lora_targets", "audio"]),
                                                 ('{"fusion_type": "cmc_pe", "timestep_gamma": 1.5}', [])])
def test_joint_generation_task_saves_a_text_to_audio_video_pipeline(backbones, data, tmp_path, adapter_config, lora):
    """SyncFlow (its adaptor, the audio tower trained through a LoRA) and Ishii et al. (CMC-PE, gamma 1.5) trained
    by train_fusion.py for joint generation; the folder loads and samples both modalities."""
    from av_link import AVLinkTextToAudioVideoPipeline

    out = tmp_path / "joint_generation"
    t2a, t2v = backbones
    run("train_fusion.py", "--task", "joint_generation", "--audio_model", t2a, "--video_model", t2v, "--data_dir", data,
        "--output_dir", out, "--preset", "tiny", "--adapter_config", adapter_config, "--max_train_steps", "2", *lora, *COMMON)
    pipe = AVLinkTextToAudioVideoPipeline.from_pretrained(out)
    if lora:
        pipe.load_lora_weights(out)
    assert pipe.fusion_adapter.config.fusion_type == json.loads(adapter_config)["fusion_type"]
    out = pipe(audio_prompt="a knock", video_prompt="a ball", num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert out.audios.shape[0] == 1 and out.frames.shape[0] == 1 and np.isfinite(out.audios).all()


def test_resume_after_sigkill_is_exact(backbones, data, tmp_path):
    steps = ["--max_train_steps", "6", "--checkpointing_steps", "3", "--use_ema"]  # the saved weights are the EMA's
    fusion(backbones, data, tmp_path / "straight", *steps)
    killed = fusion(backbones, data, tmp_path / "killed", *steps, env={"AVLINK_FAULT_KILL_AFTER_STEP": "4"}, check=False)
    assert killed.returncode == -9 and not (tmp_path / "killed" / "model_index.json").exists()
    fusion(backbones, data, tmp_path / "killed", *steps, "--resume_from_checkpoint", "latest")
    a, b = adapter_weights(tmp_path / "straight"), adapter_weights(tmp_path / "killed")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_save_killed_midway_leaves_the_previous_checkpoint(backbones, data, tmp_path):
    out = tmp_path / "run"
    steps = ["--max_train_steps", "6", "--checkpointing_steps", "3"]
    killed = fusion(backbones, data, out, *steps, env={"AVLINK_FAULT_KILL_DURING_SAVE": "6"}, check=False)
    assert killed.returncode == -9
    assert (out / ".checkpoint-6.tmp").exists() and not (out / "checkpoint-6").exists()
    fusion(backbones, data, out, *steps, "--resume_from_checkpoint", "latest")
    fusion(backbones, data, tmp_path / "straight", *steps)
    a, b = adapter_weights(out), adapter_weights(tmp_path / "straight")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resuming_against_another_frozen_backbone_fails(backbones, data, tmp_path):
    fusion(backbones, data, tmp_path / "run", "--max_train_steps", "1")
    other = tmp_path / "t2v_other"
    shutil.copytree(backbones[1], other)
    weights = other / "video_transformer" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(weights))
    state[next(iter(state))] += 1e-3
    save_file(state, str(weights))
    result = fusion((backbones[0], other), data, tmp_path / "run", "--max_train_steps", "2", "--resume_from_checkpoint", "latest",
                    check=False)
    assert result.returncode != 0 and "was trained against other frozen weights: video_model (checkpoint: " in result.stderr
    assert "audio_model" not in result.stderr.splitlines()[-1]


def test_two_processes_match_one_process(backbones, data, tmp_path):
    steps = ["--max_train_steps", "3", "--checkpointing_steps", "100"]
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1",
                "--main_process_port", str(free_port())]
    # gloo over loopback only: the machine's other interfaces play no part in a single-host test.
    two = fusion(backbones, data, tmp_path / "two", *steps, "--train_batch_size", "1", launcher=launcher,
                 env={"ACCELERATE_USE_CPU": "1", "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1"})
    assert "all 2 ranks hold identical trained weights" in two.stdout + two.stderr
    fusion(backbones, data, tmp_path / "one", *steps, "--train_batch_size", "2")
    a, b = adapter_weights(tmp_path / "two"), adapter_weights(tmp_path / "one")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)


def test_bad_arguments_fail_before_training(backbones, data, tmp_path):
    missing = fusion(backbones, tmp_path / "nope", tmp_path / "o1", check=False)
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "metadata.jsonl").write_text("")
    result = fusion(backbones, empty, tmp_path / "o2", check=False)
    assert result.returncode != 0 and "has no entries" in result.stderr
    wrong = fusion(backbones, data, tmp_path / "o3", "--adapter_config", '{"audio_dim": 32}', check=False)
    assert wrong.returncode != 0 and "expects audio_dim=32" in wrong.stderr
    assert not (tmp_path / "o3" / "checkpoint-1").exists()
    bad_repeat = fusion(backbones, data, tmp_path / "o4", "--repeat_fps", "8:3", check=False)
    assert bad_repeat.returncode != 0 and "expected RATE=COUNT" in bad_repeat.stderr
    no_bias = fusion(backbones, data, tmp_path / "o5", "--freeze_time_bias", check=False)
    assert no_bias.returncode != 0 and "no time bias to freeze" in no_bias.stderr


def test_frozen_time_bias_keeps_the_initial_slopes(backbones, data, tmp_path):
    from av_link.models.fusion import time_bias_slopes

    fusion(backbones, data, tmp_path / "v2a", "--adapter_config", '{"time_bias": true}', "--freeze_time_bias",
           "--max_train_steps", "2")
    weights = adapter_weights(tmp_path / "v2a")
    slopes = {k: v for k, v in weights.items() if k.endswith("time_bias_log2_slope")}
    assert slopes and all(torch.equal(v, torch.log2(time_bias_slopes(v.numel()))) for v in slopes.values())
    assert reinjection_gates_moved(tmp_path / "v2a")  # the rest trained


def test_repeat_fps_argument():
    from av_link.training.arguments import parse_repeat_fps

    assert parse_repeat_fps("8=3") == {8.0: 3} and parse_repeat_fps("8=3, 23.976=2") == {8.0: 3, 23.976: 2}
    for bad in ("8", "8=x", "0=2", "8=0", ""):
        with pytest.raises(Exception, match="RATE=COUNT|counts >= 1"):
            parse_repeat_fps(bad)


def backbone_weights(path, side):
    return load_file(str(Path(path) / f"{side}_transformer" / "diffusion_pytorch_model.safetensors"))


def test_lora_on_the_backbones_leaves_their_weights_and_saves_a_loadable_lora(backbones, data, tmp_path):
    out = tmp_path / "wft"
    # No warmup. A fresh adapter's gates open one after the other (step 1 the MLP gate, step 2 the attention gate),
    # so the audio loss reaches the video backbone from step 3 on.
    fusion(backbones, data, out, "--max_train_steps", "3", "--lr_warmup_steps", "0", "--lora_targets", "audio", "video",
           "--lora_rank", "4", "--gradient_checkpointing")
    for side, source in zip(("audio", "video"), backbones):
        base, saved = backbone_weights(source, side), backbone_weights(out, side)
        assert base.keys() == saved.keys() and all(torch.equal(base[k], saved[k]) for k in base)
    lora = load_file(str(out / "pytorch_lora_weights.safetensors"))
    assert {k.split(".")[0] for k in lora} == {"audio_transformer", "video_transformer"}
    # lora_B starts at zero, so non-zero means trained (through the checkpointed blocks too); in V2A the video blocks
    # after the last fusion point (tiny adapter: video blocks 0 and 2) never run, so their LoRA cannot train.
    trained = {k for k in lora if "lora_B" in k and lora[k].abs().sum() > 0}
    assert trained == {k for k in lora if "lora_B" in k and not k.startswith("video_transformer.blocks.3.")}
    assert "LoRA" in (out / "README.md").read_text()
    pipe = AVLinkV2APipeline.from_pretrained(out)
    video = np.random.default_rng(0).integers(0, 255, (8, 16, 16, 3), dtype=np.uint8)
    sample = lambda: pipe(video=video, video_fps=8, num_inference_steps=2, output_type="latent",
                          generator=torch.Generator().manual_seed(0)).audios
    base = sample()
    pipe.load_lora_weights(out)
    assert not torch.equal(sample(), base)


def test_lora_on_trained_fusion_blocks_changes_only_the_lora(backbones, data, tmp_path):
    # Three steps without warmup open every gate of the fresh blocks (see above), so every adapted layer is live.
    fusion(backbones, data, tmp_path / "v2a", "--max_train_steps", "3", "--lr_warmup_steps", "0")
    out = tmp_path / "tuned"
    fusion(backbones, data, out, "--max_train_steps", "1", "--lr_warmup_steps", "0", "--adapter_model", tmp_path / "v2a", "--lora_targets", "fusion",
           "--lora_rank", "4", "--lora_layers", "to_q,to_v,audio_in")
    before, after = adapter_weights(tmp_path / "v2a"), adapter_weights(out)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    lora = load_file(str(out / "pytorch_lora_weights.safetensors"))
    assert lora and all(k.startswith("fusion_adapter.") for k in lora)
    assert {k.split(".")[-3] for k in lora} == {"to_q", "to_v", "audio_in"}
    assert all(lora[k].abs().sum() > 0 for k in lora if "lora_B" in k)
    # The fine-tune's card says how the blocks it started from were trained: what differs from this run.
    facts = read_training_info(out / "README.md")
    assert facts["adapter model"] == str(tmp_path / "v2a")
    assert facts["adapter model training"] == "steps 3"


def test_a_lora_on_fresh_fusion_blocks_is_refused(backbones, data, tmp_path):
    result = fusion(backbones, data, tmp_path / "o", "--lora_targets", "fusion", check=False)
    assert result.returncode != 0 and "--adapter_model" in result.stderr


def test_backbone_init_from_a_pipeline_keeps_its_normalisation_and_text_encoder(backbones, data, tmp_path):
    t2a = backbones[0]
    run("train_backbone.py", "--modality", "audio", "--data_dir", data, "--output_dir", tmp_path / "ft", "--init_from", t2a,
        "--max_train_steps", "3", *COMMON)
    before, after = AVLinkTextToAudioPipeline.from_pretrained(t2a), AVLinkTextToAudioPipeline.from_pretrained(tmp_path / "ft")
    assert before.audio_frontend.config.mel_mean != -5.0  # fitted to the data, not the front end's default
    assert (after.audio_frontend.config.mel_mean, after.audio_frontend.config.mel_std) == \
        (before.audio_frontend.config.mel_mean, before.audio_frontend.config.mel_std)
    assert all(torch.equal(a, b) for a, b in zip(before.text_encoder.state_dict().values(), after.text_encoder.state_dict().values()))
    moved = [(a - b).abs().max().item() for a, b in zip(before.audio_transformer.parameters(), after.audio_transformer.parameters())]
    assert 0 < max(moved) < 0.05  # a few steps from the loaded weights, not a fresh model
