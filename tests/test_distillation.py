"""Few-step distillation (av_link.training.distillation, .trajectories, examples/distill_fusion.py) on tiny models."""

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from av_link import AVLinkA2VPipeline, AVLinkV2APipeline
from av_link.data import AVClipDataset
from av_link.data.synthetic import make_synthetic_dataset
from av_link.schedulers.scheduling_flow_match_euler import paper_sigmas
from av_link.training.distillation import DistillationObjective, segment_targets, student_sigmas
from av_link.training.text import FrozenTextEncoder
from av_link.training.trajectories import (
    TrajectoryConfig,
    TrajectoryDataset,
    generate_trajectories,
    prepare_cache,
    shard_path,
    teacher_sigmas,
    teacher_trajectory,
)

from conftest import tiny_pipeline

ROOT = Path(__file__).resolve().parents[1]
VIDEO = np.random.default_rng(0).integers(0, 255, (12, 16, 16, 3), dtype=np.uint8)  # 2 s at 6 fps: one window


def load_script():
    spec = importlib.util.spec_from_file_location("distill_fusion", ROOT / "examples" / "distill_fusion.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("synth"), num_clips=2, seed=0, progress=False)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    """Tiny V2A and A2V teachers (random, non-zero fusion gates) saved as pipeline folders."""
    root = tmp_path_factory.mktemp("teachers")
    for name, cls in (("v2a", AVLinkV2APipeline), ("a2v", AVLinkA2VPipeline)):
        tiny_pipeline(cls, num_inference_steps=4).save_pretrained(root / name)
    return root


def encoder_of(pipe):
    return FrozenTextEncoder(pipe.text_encoder, pipe.tokenizer, pipe.config.max_sequence_length)


def test_student_grid_is_a_subgrid_of_the_teachers():
    grid = student_sigmas([*paper_sigmas(64), 0.0], 8)
    np.testing.assert_allclose(grid, np.linspace(1, 0, 9))
    with pytest.raises(ValueError, match="must divide"):
        student_sigmas([*paper_sigmas(64), 0.0], 6)


def test_student_grid_and_steps_round_trip_through_the_pipeline_config(tmp_path):
    sigmas = [1.0, 0.7, 0.3]
    tiny_pipeline(AVLinkV2APipeline, num_inference_steps=3, guidance_scale=1.0, sigmas=sigmas).save_pretrained(tmp_path)
    pipe = AVLinkV2APipeline.from_pretrained(tmp_path)
    assert pipe.config.sigmas == sigmas and pipe.config.num_inference_steps == 3 and pipe.config.guidance_scale == 1.0
    seen = []

    def record(p, i, timestep, tensors):
        seen.append(float(timestep))
        return tensors

    pipe(video=VIDEO, video_fps=6, output_type="latent", callback_on_step_end=record)
    assert seen == pytest.approx([1000 * s for s in sigmas]) and not pipe.do_classifier_free_guidance
    seen.clear()
    pipe(video=VIDEO, video_fps=6, output_type="latent", num_inference_steps=4, callback_on_step_end=record)
    assert seen == pytest.approx([1000.0, 750.0, 500.0, 250.0])  # another step count: the paper's grid


def test_teacher_trajectory_is_the_pipelines_guided_sampler():
    # conditioning time 1: the conditioning input enters unnoised, so both see exactly the same input
    pipe = tiny_pipeline(AVLinkV2APipeline, conditioning_timestep=1.0)
    signal = pipe.prepare_conditioning(VIDEO, 6)[0].signal
    noise = torch.randn(1, 172, 80, generator=torch.Generator().manual_seed(0))
    seen = []
    out = pipe(video=VIDEO, video_fps=6, prompt="a clang", latents=noise, num_inference_steps=4, guidance_scale=5.0,
               output_type="latent", callback_on_step_end=lambda p, i, t, tensors: seen.append(tensors["latents"]) or tensors).audios
    encode = encoder_of(pipe)
    states = teacher_trajectory(pipe, noise, signal, 1.0, encode(["a clang"]), encode([""]), encode([""]), 4, 5.0, stride=2)
    assert states.shape == (1, 3, 172, 80)
    torch.testing.assert_close(states[:, 1], seen[1])
    torch.testing.assert_close(states[:, 2], out)
    # A guidance span (the shipped V2A guides the first 30% of its steps): the same steps are guided.
    seen.clear()
    out = pipe(video=VIDEO, video_fps=6, prompt="a clang", latents=noise, num_inference_steps=4, guidance_scale=5.0,
               guidance_stop=0.5, output_type="latent",
               callback_on_step_end=lambda p, i, t, tensors: seen.append(tensors["latents"]) or tensors).audios
    spanned = teacher_trajectory(pipe, noise, signal, 1.0, encode(["a clang"]), encode([""]), encode([""]), 4, 5.0, stride=2,
                                 guidance_span=(0.0, 0.5))
    torch.testing.assert_close(spanned[:, 1], seen[1])
    torch.testing.assert_close(spanned[:, 2], out)
    torch.testing.assert_close(spanned[:, 1], states[:, 1])  # the first two steps are guided in both
    assert not torch.allclose(spanned[:, 2], states[:, 2])


def add_zero_lora(model):
    from types import SimpleNamespace

    from av_link.training.lora import add_lora_adapters

    args = SimpleNamespace(lora_targets=["audio"], lora_rank=4, lora_alpha=None, lora_layers="to_q,to_k,to_v,to_out,linear_1,linear_2")
    add_lora_adapters({"audio": model}, args)


def student_of(pipe, sigmas, seed=0):
    add_zero_lora(pipe.audio_transformer)
    return DistillationObjective(pipe.fusion_adapter, pipe.audio_transformer, pipe.video_transformer, encoder_of(pipe), "audio",
                                 pipe.config.conditioning_timestep, sigmas, seed=seed)


def test_a_fresh_student_is_the_teachers_conditional_branch():
    pipe = tiny_pipeline(AVLinkV2APipeline, conditioning_timestep=1.0)
    noise = torch.randn(1, 172, 80, generator=torch.Generator().manual_seed(1))
    one_step = pipe(video=VIDEO, video_fps=6, prompt="a clang", latents=noise, num_inference_steps=1, guidance_scale=1.0,
                    output_type="latent").audios
    signal = pipe.prepare_conditioning(VIDEO, 6)[0].signal
    student = student_of(pipe, [1.0, 0.0])
    with torch.no_grad():
        v = student.velocity(noise, torch.zeros(1), signal, ["a clang"], [""])
    torch.testing.assert_close(noise + v, one_step)


def fake_batch(k=4, batch=2):
    gen = torch.Generator().manual_seed(0)
    return {"states": torch.randn(batch, k + 1, 172, 80, generator=gen), "conditioning": torch.rand(batch, 3, 12, 16, 16, generator=gen) * 2 - 1,
            "caption": ["a clang", ""], "conditioning_caption": ["", "hits"], "index": torch.tensor([3, 7])}


def test_loss_is_the_segment_regression_and_a_step_lowers_it():
    pipe = tiny_pipeline(AVLinkV2APipeline)
    sigmas = [1.0, 0.75, 0.5, 0.25, 0.0]
    student, batch = student_of(pipe, sigmas), fake_batch()
    loss = student(batch, epoch=0, step=0)
    segment = student.segments(batch["index"], 0)
    assert torch.equal(segment, student.segments(batch["index"], 0)) and 0 <= segment.min() and segment.max() < 4
    rows = torch.arange(2)
    x, x_next = batch["states"][rows, segment], batch["states"][rows, segment + 1]
    t = 1 - torch.tensor(sigmas)[segment]
    target = (x_next - x) / 0.25
    v = student.velocity(x, t, batch["conditioning"], batch["caption"], batch["conditioning_caption"])
    torch.testing.assert_close(loss, ((v - target) ** 2).mean())
    _, _, mean_velocity = segment_targets(batch["states"], torch.tensor(sigmas, dtype=torch.float64), segment)
    torch.testing.assert_close(mean_velocity.float(), target)

    params = [p for p in student.parameters() if p.requires_grad]
    assert any("lora" in n for n, p in student.named_parameters() if p.requires_grad)
    optimizer = torch.optim.Adam(params, lr=1e-3)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        assert student(batch, epoch=0, step=1) < loss


def test_trajectory_cache_is_made_once_and_completed_after_an_interruption(tmp_path, data):
    pipe = tiny_pipeline(AVLinkA2VPipeline)
    dataset = AVClipDataset(data, fps=pipe.video_fps, height=16, width=16, mel_frontend=pipe.audio_frontend, clip_seconds=2.0,
                            random_crop=True, modalities=("audio",))
    cfg = TrajectoryConfig(num_trajectories=3, shard_size=2, num_teacher_steps=4, guidance_scale=3.0, num_student_steps=2,
                           conditioning_time=0.8)
    prepare_cache(tmp_path, cfg, teacher_sigmas(pipe, 4))
    assert generate_trajectories(tmp_path, pipe, dataset, cfg, encoder_of(pipe), progress=False) == 2
    first = load_file(shard_path(tmp_path, 1))
    Path(shard_path(tmp_path, 1)).unlink()  # an interrupted run: shard 1 never finished
    with pytest.raises(ValueError, match="lacks shards"):
        TrajectoryDataset(tmp_path)
    assert generate_trajectories(tmp_path, pipe, dataset, cfg, encoder_of(pipe), progress=False) == 1
    again = load_file(shard_path(tmp_path, 1))
    assert all(torch.equal(first[k], again[k]) for k in first)  # a shard made again is the same shard
    items = TrajectoryDataset(tmp_path)
    assert len(items) == 3 and items.sigmas == [1.0, 0.5, 0.0]
    assert items[2]["states"].shape == (3, 3, 12, 16, 16) and items[2]["conditioning"].shape[-1] == 80
    with pytest.raises(ValueError, match="other settings"):
        prepare_cache(tmp_path, TrajectoryConfig(num_trajectories=3, shard_size=2, num_teacher_steps=4, num_student_steps=4),
                      teacher_sigmas(pipe, 4))
    # A cache made before the guidance span was recorded was made guiding every step: it is still the same cache.
    config = json.loads((tmp_path / "config.json").read_text())
    del config["guidance_start"], config["guidance_stop"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    prepare_cache(tmp_path, cfg, teacher_sigmas(pipe, 4))
    with pytest.raises(ValueError, match=r"other settings \(guidance_stop\)"):
        prepare_cache(tmp_path, dataclasses.replace(cfg, guidance_stop=0.3), teacher_sigmas(pipe, 4))


def run_script(script, teacher, data, out, *extra):
    script.main(["--teacher", str(teacher), "--data_dir", str(data), "--output_dir", str(out), "--num_student_steps", "2",
                 "--teacher_steps", "4", "--num_trajectories", "4", "--trajectory_batch_size", "2", "--train_batch_size", "2",
                 "--learning_rate", "1e-3", "--lr_warmup_steps", "0", "--report_to", "none", "--lora_rank", "2", *extra])


def student_weights(folder):
    return {**load_file(str(folder / "fusion_adapter" / "diffusion_pytorch_model.safetensors")),
            **load_file(str(folder / "pytorch_lora_weights.safetensors"))}


def test_script_distils_resumes_exactly_and_writes_an_adapter_only_student(tmp_path, teachers, data):
    script = load_script()
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run_script(script, teachers / "v2a", data, straight, "--max_train_steps", "3")
    run_script(script, teachers / "v2a", data, resumed, "--max_train_steps", "2", "--checkpointing_steps", "2")
    shard_time = Path(shard_path(resumed / "trajectories", 0)).stat().st_mtime_ns
    run_script(script, teachers / "v2a", data, resumed, "--max_train_steps", "3", "--resume_from_checkpoint", "latest")
    assert Path(shard_path(resumed / "trajectories", 0)).stat().st_mtime_ns == shard_time  # the cache was reused
    a, b = student_weights(straight), student_weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(v.abs().sum() > 0 for k, v in a.items() if "lora_B" in k)  # the LoRA trained
    # The checkpoints hold the student's trained parameters (Fusion Blocks, LoRA), not the frozen backbone weights.
    saved = load_file(str(resumed / "checkpoint-2" / "model.safetensors"))
    assert {k.split(".")[0] for k in saved} == {"adapter", "audio_model"} and all("lora_" in k for k in saved if k.startswith("audio_model."))
    assert set(json.loads((resumed / "checkpoint-2" / "frozen_modules.json").read_text())) == {"audio_model", "video_model"}

    index = json.loads((straight / "model_index.json").read_text())
    assert index["_components_from"] == "../../teachers0/v2a" or (straight / index["_components_from"]).resolve() == (teachers / "v2a").resolve()
    assert index["_fused_lora"] == "pytorch_lora_weights.safetensors"
    assert not (straight / "audio_transformer").exists() and (straight / "fusion_adapter").is_dir()
    student = AVLinkV2APipeline.from_pretrained(straight)
    assert student.config.num_inference_steps == 2 and student.config.guidance_scale == 1.0
    assert student.config.sigmas == pytest.approx([1.0, 0.5])
    assert not getattr(student.audio_transformer, "peft_config", None)  # fused in
    teacher = AVLinkV2APipeline.from_pretrained(teachers / "v2a")
    changed = [k for k, v in student.audio_transformer.state_dict().items() if not torch.equal(v, teacher.audio_transformer.state_dict()[k])]
    assert changed and all(k.endswith(".weight") for k in changed)
    audio = student(video=VIDEO, video_fps=6, generator=torch.Generator().manual_seed(0)).audios
    assert audio.shape == (1, 44100) and np.isfinite(audio).all()


def test_script_distils_a2v(tmp_path, teachers, data):
    run_script(load_script(), teachers / "a2v", data, tmp_path / "a2v", "--max_train_steps", "1", "--teacher_guidance_stop", "0.5")
    assert json.loads((tmp_path / "a2v" / "trajectories" / "config.json").read_text())["guidance_stop"] == 0.5
    assert "guidance 5.0 on the steps from 0 to 0.5 of the way" in (tmp_path / "a2v" / "README.md").read_text()
    student = AVLinkA2VPipeline.from_pretrained(tmp_path / "a2v")
    assert student.config.num_inference_steps == 2 and student.config.conditioning_timestep == 0.8
    frames = student(audio=np.zeros(44100, dtype=np.float32), sample_rate=22050, output_type="latent").frames
    assert frames.shape == (1, 3, 12, 16, 16)


def test_a_student_with_a_lora_on_its_fusion_blocks_ships_without_them(tmp_path, teachers, data):
    """`--lora_targets fusion audio`: the student keeps no fusion_adapter/ of its own (the LoRA covers the Fusion
    Blocks), and scripts/ship_synthhits_models.py ships it beside a copy of its teacher, where it samples as before."""
    out = tmp_path / "student"
    run_script(load_script(), teachers / "v2a", data, out, "--max_train_steps", "2", "--lora_targets", "fusion", "audio")
    assert not (out / "fusion_adapter").exists()
    lora = load_file(str(out / "pytorch_lora_weights.safetensors"))
    assert any(k.startswith("fusion_adapter.") for k in lora) and any(k.startswith("audio_transformer.") for k in lora)
    spec = importlib.util.spec_from_file_location("ship", ROOT / "scripts" / "ship_synthhits_models.py")
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)
    shipped = tmp_path / "shipped"
    teacher = AVLinkV2APipeline.from_pretrained(teachers / "v2a")
    teacher.save_pretrained(shipped / "v2a")
    ship.ship_student(str(out), str(shipped / "students" / "v2a"), "../../v2a")
    assert not (shipped / "students" / "v2a" / "fusion_adapter").exists()
    shipped_lora = load_file(str(shipped / "students" / "v2a" / "pytorch_lora_weights.safetensors"))
    assert shipped_lora.keys() == lora.keys() and all(v.dtype == torch.float16 for v in shipped_lora.values())
    runs = [AVLinkV2APipeline.from_pretrained(folder) for folder in (out, shipped / "students" / "v2a")]
    # The LoRA was fused into the Fusion Blocks on loading, in both folders.
    fusion = teacher.fusion_adapter.state_dict()
    for pipe in runs:
        assert any(not torch.equal(v, fusion[k]) for k, v in pipe.fusion_adapter.state_dict().items())
    audios = [pipe(video=VIDEO, video_fps=6, generator=torch.Generator().manual_seed(0)).audios for pipe in runs]
    np.testing.assert_allclose(audios[1], audios[0], atol=2e-2)
