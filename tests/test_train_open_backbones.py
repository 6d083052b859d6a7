"""Fusion training between diffusers' Wan and LongCat-AudioDiT (examples/train_fusion.py with WanPipeline /
LongCatAudioDiTPipeline folders, examples/cache_latents.py), on tiny random configs of the exact diffusers classes,
saved as the diffusers pipelines save them (no download, CPU)."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch.distributed.checkpoint as dcp
import pytest
import torch
from diffusers import WanPipeline
from safetensors.torch import load_file
from test_training import ENV, ROOT, free_port, run

from av_link import AVLinkFusionAdapter, AVLinkV2APipeline
from av_link.data.synthetic import SynthHitsConfig, make_synthetic_dataset
from av_link.testing import tiny_longcat_pipeline, tiny_umt5_encoder, tiny_wan_pipeline
from av_link.training.fusion_latent import clip_dataset, load_linked, uses_own_backbones
from av_link.training.latent_cache import (
    CachedInputs,
    LatentCache,
    LatentCacheDataset,
    cache_identity,
    check_identity,
)
from av_link.training.modality_inputs import FamilyInputs
from av_link.training.objectives import FusionObjective, ObjectiveConfig

SIZE = dict(video_fps=8.0, height=32, width=32, max_sequence_length=16)
FLAGS = ["--video_fps", "8", "--height", "32", "--width", "32", "--max_sequence_length", "16"]
COMMON = ["--task", "v2a", "--preset", "tiny", "--train_batch_size", "2", "--learning_rate", "1e-3", "--lr_warmup_steps", "0",
          "--report_to", "none", "--logging_steps", "1", "--clip_seconds", "1.0", *FLAGS]
CFG = ObjectiveConfig(seed=0, logit_mean=-1.0, logit_std=1.0, generated_text_dropout=0.5, conditioning_text_dropout=0.2)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A LongCatAudioDiTPipeline and a WanPipeline folder holding the same tiny UMT5, and 4 one-second clips."""
    root = tmp_path_factory.mktemp("open")
    text_encoder, tokenizer = tiny_umt5_encoder()
    tiny_wan_pipeline(text_encoder=text_encoder, tokenizer=tokenizer).save_pretrained(root / "wan")
    tiny_longcat_pipeline(text_encoder=text_encoder, tokenizer=tokenizer).save_pretrained(root / "longcat")
    make_synthetic_dataset(root / "data", 4, SynthHitsConfig(duration=1.0, sample_rate=4000), seed=0, progress=False)
    return root


@pytest.fixture(scope="module")
def cache(folders):
    run("cache_latents.py", "--audio_model", folders / "longcat", "--video_model", folders / "wan", "--data_dir", folders / "data",
        "--output_dir", folders / "cache", "--clip_seconds", "1.0", "--shard_size", "3", *FLAGS)
    return folders / "cache"


def train(folders, out, *extra, check=True, env=None, launcher=None):
    return run("train_fusion.py", "--audio_model", folders / "longcat", "--video_model", folders / "wan", "--output_dir", out,
               *COMMON, *extra, check=check, env=env, launcher=launcher, timeout=150)


@pytest.fixture(scope="module")
def raw_run(folders):
    out = folders / "raw"
    train(folders, out, "--data_dir", folders / "data", "--max_train_steps", "4")
    return out


@pytest.fixture(scope="module")
def cached_run(folders, cache):
    out = folders / "cached"
    train(folders, out, "--latent_cache", cache, "--max_train_steps", "4", "--checkpointing_steps", "2")
    return out


def adapter_of(out) -> AVLinkFusionAdapter:
    return AVLinkFusionAdapter.from_pretrained(Path(out) / "fusion_adapter")


def weights(out) -> dict:
    return load_file(str(Path(out) / "fusion_adapter" / "diffusion_pytorch_model.safetensors"))


def linked(folders):
    return load_linked(str(folders / "longcat"), str(folders / "wan"), torch.float32, **SIZE)


def objective(folders, adapter, inputs, task="v2a"):
    audio_pipe, video_pipe, _, families = linked(folders)
    views = tuple(families[m].backbone for m in ("audio", "video"))
    return FusionObjective(adapter, audio_pipe.transformer, video_pipe.transformer, inputs(families), task, CFG, views=views)


@torch.no_grad()
def cached_loss(folders, cache, adapter, task="v2a") -> float:
    """The objective's loss over the whole cached set, at epoch 0 (the draws of the first epoch's samples)."""
    data = LatentCacheDataset(LatentCache(str(cache)))
    run_ = objective(folders, adapter, lambda families: {m: CachedInputs(data.cache, m) for m in ("audio", "video")}, task)
    return run_(data.collate_fn([data[i] for i in range(len(data))]), 0, 0).item()


def test_training_lowers_the_loss(folders, cache, raw_run):
    fresh = AVLinkFusionAdapter.from_preset("tiny", audio_dim=16, video_dim=24, num_audio_layers=2, num_video_layers=3, time_rate=2.0)
    before, after = cached_loss(folders, cache, fresh), cached_loss(folders, cache, adapter_of(raw_run))
    assert np.isfinite(before) and after < 0.9 * before, (before, after)  # 1.91 -> 1.63 in 4 steps
    assert {p.name for p in (raw_run / "checkpoint-4").iterdir()} >= {"model.safetensors", "frozen_modules.json"}
    assert all(v.dtype == torch.float32 for v in weights(raw_run).values())


def test_a2v_training_lowers_its_loss(folders, cache, tmp_path):
    """The other direction between the same diffusers backbones: Wan generated, LongCat conditioning (8 steps: the
    loss falls about 5% in 4)."""
    train(folders, tmp_path / "a2v", "--latent_cache", cache, "--max_train_steps", "8", "--task", "a2v")
    fresh = AVLinkFusionAdapter.from_preset("tiny", audio_dim=16, video_dim=24, num_audio_layers=2, num_video_layers=3, time_rate=2.0)
    before, after = cached_loss(folders, cache, fresh, "a2v"), cached_loss(folders, cache, adapter_of(tmp_path / "a2v"), "a2v")
    assert np.isfinite(before) and after < 0.9 * before, (before, after)


def test_cache_gives_the_raw_clips_tensors_and_losses(folders, cache, raw_run, cached_run):
    _, _, config, families = linked(folders)
    dataset = clip_dataset(str(folders / "data"), config, families, 1.0, random_crop=True, seed=0)
    raw = dataset.collate_fn([dataset[i] for i in range(len(dataset))])
    cached_set = LatentCacheDataset(LatentCache(str(cache)))
    cached = cached_set.collate_fn([cached_set[i] for i in range(len(cached_set))])
    assert torch.equal(raw["index"], cached["index"])
    family_inputs = {m: FamilyInputs(families[m], 16) for m in ("audio", "video")}
    cached_inputs = {m: CachedInputs(cached_set.cache, m) for m in ("audio", "video")}
    for m in ("audio", "video"):
        torch.testing.assert_close(cached_inputs[m].signal(cached), family_inputs[m].signal(raw), atol=1e-6, rtol=0)
        captions = [*raw[f"{m}_caption"], ""]
        for a, b in zip(cached_inputs[m].encode_text(captions), family_inputs[m].encode_text(captions)):
            assert (a is None) == (b is None) and (a is None or torch.allclose(a.float(), b.float(), atol=1e-6))
    assert family_inputs["video"].encode_text(["a"])[0].shape[1] == 16  # Wan: zero-padded to max_sequence_length, no mask
    adapter = adapter_of(raw_run)
    with torch.no_grad():
        for epoch, step in ((0, 0), (1, 1)):
            from_raw = objective(folders, adapter, lambda _: family_inputs)(raw, epoch, step)
            from_cache = objective(folders, adapter, lambda _: cached_inputs)(cached, epoch, step)
            assert abs(from_raw.item() - from_cache.item()) < 1e-5 and from_raw.item() > 0
    a, b = weights(raw_run), weights(cached_run)  # the same 4 steps, from the clips and from the cache
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5


def test_resume_is_exact(folders, cache, cached_run, tmp_path):
    steps = ["--latent_cache", cache, "--max_train_steps", "4", "--checkpointing_steps", "2"]
    killed = train(folders, tmp_path / "run", *steps, env={"AVLINK_FAULT_KILL_AFTER_STEP": "3"}, check=False)
    assert killed.returncode == -9 and not (tmp_path / "run" / "fusion_adapter").exists()
    train(folders, tmp_path / "run", *steps, "--resume_from_checkpoint", "latest")
    a, b = weights(cached_run), weights(tmp_path / "run")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_saved_adapter_links_through_from_backbones_and_changes_the_output(folders, raw_run):
    video = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)

    def sample(adapter):
        pipe = AVLinkV2APipeline.from_backbones(audio=str(folders / "longcat"), video=str(folders / "wan"), fusion_adapter=adapter,
                                                height=32, width=32, video_fps=8.0)
        with torch.no_grad():
            return pipe(video=video, video_fps=8, prompt="a clang", num_inference_steps=3, generator=torch.Generator().manual_seed(0),
                        output_type="latent").audios

    fresh = AVLinkFusionAdapter.from_preset("tiny", audio_dim=16, video_dim=24, num_audio_layers=2, num_video_layers=3, time_rate=2.0)
    trained, plain = sample(str(raw_run)), sample(fresh)
    assert torch.isfinite(trained).all() and (trained - plain).abs().max() > 1e-3


def test_gradient_checkpointing_covers_the_frozen_blocks(folders, cache):
    data = LatentCacheDataset(LatentCache(str(cache)))
    batch = data.collate_fn([data[0], data[1]])
    torch.manual_seed(0)
    adapter = AVLinkFusionAdapter.from_preset("tiny", audio_dim=16, video_dim=24, num_audio_layers=2, num_video_layers=3, time_rate=2.0)
    for p in adapter.parameters():  # open the zero gates, so every block's gradient path is live
        torch.nn.init.normal_(p, std=0.05) if p.ndim > 1 else None
    grads = []
    for checkpoint in (False, True):
        run_ = objective(folders, adapter, lambda _: {m: CachedInputs(data.cache, m) for m in ("audio", "video")})
        calls = []
        if checkpoint:
            for view in run_.views:
                view.enable_gradient_checkpointing(lambda f, *a, calls=calls: calls.append(type(f).__name__) or torch.utils.checkpoint.checkpoint(
                    f, *a, use_reentrant=False))
        adapter.zero_grad(set_to_none=True)
        run_(batch, 0, 0).backward()
        grads.append([p.grad for p in adapter.parameters()])  # None: parts V2A never reads (the last video MLP)
    # V2A runs both audio blocks and the video blocks up to the last fusion point (tiny adapter: video blocks 0..2)
    assert sorted(set(calls)) == ["AudioDiTBlock", "WanTransformerBlock"] and calls.count("AudioDiTBlock") == 2
    assert sum(g is not None and g.abs().sum() > 0 for g in grads[0]) > len(grads[0]) // 2
    for a, b in zip(*grads):
        assert (a is None) == (b is None) and (a is None or torch.allclose(a, b, atol=1e-6, rtol=1e-5))


def test_mismatched_or_missing_components_give_one_clear_error(folders, cache, tmp_path):
    own = tmp_path / "t2v"
    own.mkdir()
    (own / "model_index.json").write_text('{"_class_name": "AVLinkTextToVideoPipeline"}')
    with pytest.raises(ValueError, match="must both be av-link pipelines or both diffusers"):
        uses_own_backbones(type("A", (), dict(audio_model=str(folders / "longcat"), video_model=str(own)))())
    with pytest.raises(ValueError, match="not a pipeline folder"):
        uses_own_backbones(type("A", (), dict(audio_model=str(folders / "longcat"), video_model=str(tmp_path)))())
    with pytest.raises(ValueError, match="--audio_model .*WanTransformer3DModel \\(a video family\\)"):
        load_linked(str(folders / "wan"), str(folders / "longcat"), torch.float32, **SIZE)
    wan = WanPipeline.from_pretrained(folders / "wan")
    narrow = tiny_umt5_encoder(text_dim=16)
    WanPipeline(tokenizer=narrow[1], text_encoder=narrow[0], vae=wan.vae, scheduler=wan.scheduler,
                transformer=wan.transformer).save_pretrained(tmp_path / "wan_narrow")
    with pytest.raises(ValueError, match="the backbones do not fit together: .*takes text of width 32, but its text encoder"):
        load_linked(str(folders / "longcat"), str(tmp_path / "wan_narrow"), torch.float32, **SIZE)
    with pytest.raises(ValueError, match="needs height and width in multiples of 16"):
        load_linked(str(folders / "longcat"), str(folders / "wan"), torch.float32, **{**SIZE, "height": 24})
    _, _, config, families = linked(folders)
    with pytest.raises(ValueError, match=r"made with other settings or models \(clip_seconds: cache 1.0, now 2.0\)"):
        check_identity(str(cache), cache_identity(config, families, 2.0, 16))
    with pytest.raises(ValueError, match="not a complete latent cache"):
        LatentCache(str(tmp_path))
    result = train(folders, tmp_path / "o", "--latent_cache", cache, "--max_train_steps", "1", "--video_fps", "16", check=False)
    assert result.returncode != 0 and "train_fusion: error: the latent cache" in result.stderr and "video_fps: cache 8.0, now 16.0" in result.stderr


def test_ddp_in_bf16_with_checkpointing_and_fsdp_start(folders, cache, tmp_path):
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                "--mixed_precision", "bf16", "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port())]
    out = tmp_path / "ddp"
    # from raw clips: the VAEs and text encoders run inside the bf16 step (the cache above holds float32 text states)
    ddp = train(folders, out, "--data_dir", folders / "data", "--max_train_steps", "2", "--train_batch_size", "1", "--mixed_precision",
                "bf16", "--gradient_checkpointing", launcher=launcher,
                env={"ACCELERATE_USE_CPU": "1", "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1"})
    assert "all 2 ranks hold identical trained weights" in ddp.stdout + ddp.stderr
    assert all(v.dtype == torch.float32 for v in weights(out).values())  # the master weights, not the bf16 backbones'
    assert '"frozen weights": "bfloat16"' in (out / "linking.json").read_text()
    audio_pipe, video_pipe, _, families = load_linked(str(folders / "longcat"), str(folders / "wan"), torch.bfloat16, **SIZE)
    assert audio_pipe.transformer.dtype == video_pipe.transformer.dtype == families["audio"].text_encoder.dtype == torch.bfloat16
    assert audio_pipe.vae.dtype == video_pipe.vae.dtype == torch.float32  # the VAEs make the targets
    assert families["audio"].text_encoder is families["video"].text_encoder  # one UMT5 in both folders: one object
    fsdp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                           "--master_port", str(free_port()), str(ROOT / "tests/fsdp_cpu_worker.py"),
                           str(ROOT / "examples/accelerate_configs/fsdp_wan_longcat.yaml"), str(folders / "longcat"), str(folders / "wan"),
                           str(cache), str(tmp_path / "fsdp_checkpoint")], cwd=ROOT, env={**ENV, "GLOO_SOCKET_IFNAME": "lo"},
                          capture_output=True, text=True, timeout=150, check=False)
    assert fsdp.returncode == 0, fsdp.stderr[-3000:]
    # the two ranks print concurrently: find their lines by pattern, not by line breaks
    # (every rank wraps the Fusion Blocks and both backbones' blocks as FSDP units)
    steps = re.findall(r"rank (\d) step (\d) loss ([-\d.naninf]+) units AVLinkFusionBlock,AudioDiTBlock,WanTransformerBlock", fsdp.stdout)
    assert sorted((r, s) for r, s, _ in steps) == [("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")], fsdp.stdout
    assert all(np.isfinite(float(loss)) for _, _, loss in steps)
    # the FSDP checkpoint holds the adapter and its optimizer state only, and a load restores them exactly
    restored = re.findall(r"rank (\d) checkpoint trained (\d+) of (\d+) changed (True|False) restored (True|False)", fsdp.stdout)
    assert sorted(r for r, *_ in restored) == ["0", "1"] and all(c == r == "True" for *_, c, r in restored), fsdp.stdout
    trained, total = map(int, restored[0][1:3])
    metadata = dcp.FileSystemReader(str(tmp_path / "fsdp_checkpoint" / "checkpoint-2" / "trained_sharded")).read_metadata().state_dict_metadata
    model_keys = {k for k in metadata if k.startswith("model.")}
    assert len(model_keys) == trained < total and all(k.startswith("model.adapter.") for k in model_keys), sorted(model_keys)[:5]
    saved = sorted(p.name for p in (tmp_path / "fsdp_checkpoint" / "checkpoint-2").iterdir())
    assert not any(name.startswith(("model", "optimizer", "pytorch_model")) for name in saved), saved  # nothing whole
