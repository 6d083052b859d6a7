"""The training memory estimate (training/memory.py) and benchmarks/open_backbones.py's counting, on tiny configs."""

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from av_link import as_backbone
from av_link.testing import (
    TINY_WAN_FPS,
    tiny_longcat_transformer,
    tiny_longcat_vae,
    tiny_wan_longcat_adapter,
    tiny_wan_transformer,
    tiny_wan_vae,
)
from av_link.training.memory import (
    activation_bytes,
    estimate_training_memory,
    parameter_count,
)

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))


def adapter_parameters(c) -> int:
    """Closed-form parameter count of an `AVLinkFusionAdapter` from its config (no time bias)."""
    d, m, a, v, e = c.hidden_size, c.mlp_dim, c.audio_dim, c.video_dim, c.time_embed_dim
    block = (
        (a * d + d) + (v * d + d)  # audio_in, video_in
        + 4 * (d * d + d) + 2 * (d // c.num_attention_heads)  # q, k, v, out; per-head RMSNorm weights of q and k
        + (d * m + m + m * a + a) + (d * m + m + m * v + v)  # the two MLPs back to each width
        + (5 * d + a) + (5 * d + v)  # adaLN offsets
    )
    time_mlps = sum(512 * e + e + e * (5 * d + w) + 5 * d + w for w in (a, v))
    return c.num_blocks * block + time_mlps


@pytest.fixture(scope="module")
def tiny():
    wan = as_backbone(tiny_wan_transformer(), vae=tiny_wan_vae(), fps=TINY_WAN_FPS)
    longcat = as_backbone(tiny_longcat_transformer(), vae=tiny_longcat_vae())
    inputs = dict(audio=torch.randn(2, 9, 8), video=torch.randn(2, 4, 3, 4, 6), audio_text=torch.randn(2, 5, 32),
                  video_text=torch.randn(2, 5, 32))
    return longcat, wan, tiny_wan_longcat_adapter(), inputs


@pytest.mark.parametrize("use_ema", [False, True])
def test_memory_estimate_counts_weights_and_optimizer_in_closed_form(tiny, use_ema):
    longcat, wan, adapter, inputs = tiny
    n = adapter_parameters(adapter.config)
    assert parameter_count(adapter) == n
    frozen = sum(p.numel() for p in (*longcat.model.parameters(), *wan.model.parameters()))
    memory = estimate_training_memory(longcat, wan, adapter, **inputs, use_ema=use_ema)
    assert (memory.trained_parameters, memory.frozen_parameters) == (n, frozen)
    assert memory.frozen_weights == 2 * frozen  # bf16
    assert memory.trained_weights == memory.gradients == 4 * n  # fp32 master weights and their gradients
    assert memory.optimizer == 2 * 4 * n  # AdamW: two fp32 moments
    assert memory.ema == (4 * n if use_ema else 0)
    assert memory.total_bytes == 2 * frozen + (16 + 4 * use_ema) * n + memory.activations + memory.recompute_peak
    assert adapter.training is False and all(p.device.type == "cpu" for p in adapter.parameters())  # the inputs untouched


def test_checkpointing_keeps_less_and_adds_one_region_back(tiny):
    longcat, wan, adapter, inputs = tiny
    full = estimate_training_memory(longcat, wan, adapter, **inputs, task="a2v")
    checkpointed = estimate_training_memory(longcat, wan, adapter, **inputs, task="a2v", gradient_checkpointing=True)
    assert full.recompute_peak == 0 and 0 < checkpointed.recompute_peak < full.activations
    assert 0 < checkpointed.activations < full.activations / 2
    assert not getattr(wan.model, "gradient_checkpointing", False)  # only the copies were switched
    assert not getattr(longcat.model, "gradient_checkpointing", False)


def test_activation_bytes_sums_saved_tensors_once():
    """y = W2 relu(W1 x): autograd keeps x (for W1's gradient) and relu's output (for W2's gradient and relu's own
    backward: one storage), never the weights."""
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x = torch.randn(5, 4)
    kept, peak = activation_bytes(lambda: mlp(x).square().sum(), exclude=[mlp])
    y = mlp(x)
    assert kept == 5 * 4 * 4 + 5 * 8 * 4 + y.numel() * 4  # + the output the square's backward keeps
    assert peak == 0


def test_attention_is_counted_as_fused_kernels_keep_it():
    """q, k, v, output and log-sum-exp; not the L x L probabilities that SDPA's math path would keep."""
    q = torch.randn(1, 2, 64, 4, device="meta", requires_grad=True)
    kept, _ = activation_bytes(lambda: F.scaled_dot_product_attention(q, q * 1, q * 2).sum())
    assert kept < 2 * 64 * 64 * 4  # the probabilities alone would be 32 KiB
    assert kept >= 3 * q.numel() * 4


def test_benchmark_counts_tiny_wan_and_longcat():
    """The benchmark's sampling and training counts on tiny configs of the same classes: the paper-faithful step runs
    each backbone whole (the generated one twice), the pipeline's only prunes the conditioning side."""
    import open_backbones as ob

    scale = ob.tiny_scale()
    parts = ob.real_components(scale)
    assert scale.latent_frames == 3 and parts["fusion_adapter"].config.time_rate == 2.0  # 8 fps / 4
    forward = {m: ob.backbone_forward_flops(parts, m, scale) for m in ("video", "audio")}
    with torch.no_grad():
        v2a = ob.measure_sampling("v2a", parts, (1, 2), 5.0, scale)
        a2v = ob.measure_sampling("a2v", parts, (1, 2), 5.0, scale)
    assert (v2a["video_tokens"], v2a["audio_tokens"]) == (3 * 2 * 3, 9)  # 3 latent frames of 4x6 latents; 72 samples / 8
    for r, gen, cond in ((v2a, "audio", "video"), (a2v, "video", "audio")):
        base, real = r["paper_faithful"]["per_step_groups"], r["pipeline"]["per_step_groups"]
        assert base[f"{gen} backbone"] == real[f"{gen} backbone"] == 2 * forward[gen]  # conditional + unconditional
        assert base[f"{cond} backbone"] == forward[cond]  # paper-faithful: the conditioning backbone whole
        assert real[f"{cond} backbone"] < forward[cond]  # pipeline: prefix cached, dead blocks skipped
        assert real["fusion adapter"] < base["fusion adapter"]  # the last Fusion Block's dead side
        assert r["ratio_per_step"] < 1
    training = ob.measure_training(parts, "v2a", batch=2, use_ema=False, scale=scale, more_batches=[4])
    memory = training["memory"]
    assert memory["checkpointing"]["activations"] < memory["no_checkpointing"]["activations"]
    assert training["step_flops"]["checkpointing"] > training["step_flops"]["no_checkpointing"]  # the recompute
    assert training["checkpointed_totals"][4] > memory["checkpointing"]["total_bytes"]  # activations grow with the batch
