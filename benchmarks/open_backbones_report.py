"""Markdown tables of `open_backbones.py`'s results (kept apart from the counting)."""


def _g(flops: float) -> str:
    return f"{flops / 1e9:,.0f}"


def _gib(n: float) -> str:
    return f"{n / 2**30:,.2f}"


def _m(n: int) -> str:
    return f"{n / 1e6:,.1f}M"


def markdown(r: dict) -> str:
    p, clip = r["parameters"], r["clip"]
    lines = [
        "# Wan 2.1 T2V 1.3B + LongCat-AudioDiT 1B, linked by a paper-sized adapter",
        "",
        f"**All numbers are {r['label']}.** Times are FLOPs / ({r['mfu']:.0%} assumed MFU x "
        f"{r['peak_flops'] / 1e12:,.0f} TFLOP/s, H100 SXM dense bf16 peak). Method: `benchmarks/open_backbones.py`.",
        "",
        "## Parameters",
        "",
        "| component | parameters |",
        "|---|---:|",
        f"| Wan 2.1 T2V 1.3B transformer (frozen) | {_m(p['video_transformer'])} |",
        f"| LongCat-AudioDiT 1B transformer (frozen) | {_m(p['audio_transformer'])} |",
        f"| Fusion adapter, 8 Fusion Blocks (trained) | {_m(p['fusion_adapter'])} ({_m(p['fusion_block'])} per block) |",
        f"| Wan VAE (AutoencoderKLWan) | {_m(p['video_vae'])} |",
        f"| LongCat VAE | {_m(p['audio_vae'])} |",
        f"| UMT5-XXL encoder (Wan's text) | {_m(p['video_text_encoder'])} |",
        f"| UMT5-base encoder (LongCat's text) | {_m(p['audio_text_encoder'])} |",
        "",
    ]
    v2a = r["v2a"]
    lines += [
        "## FLOPs per sampling step",
        "",
        f"Clip: {clip['frames']} frames of {clip['height']}x{clip['width']} at {clip['fps']:g} fps ({v2a['seconds']:.2f} s) -> "
        f"{v2a['video_latent_frames']} Wan latent frames -> **{v2a['video_tokens']:,} video tokens**; the same seconds at "
        f"{clip['sample_rate']} Hz -> **{v2a['audio_tokens']} LongCat latents/tokens**. Text: Wan {r['wan_text_tokens']} "
        f"tokens (padded), LongCat {r['text_tokens']}. CFG {v2a['guidance_scale']:g}. One standalone forward: Wan "
        f"{_g(r['backbone_forward']['video'])} GFLOP, LongCat {_g(r['backbone_forward']['audio'])} GFLOP.",
        "",
        "| direction | sampler | GFLOP / step | video backbone | audio backbone | fusion adapter | ratio | s / step | "
        f"s / {r['sample_steps']}-step sample |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for direction in ("v2a", "a2v"):
        d = r[direction]
        for name, key in (("paper-faithful", "paper_faithful"), ("pipeline", "pipeline")):
            row = d[key]
            groups = row["per_step_groups"]
            lines.append(
                f"| {direction.upper()} | {name} | {_g(row['per_step'])} | {_g(groups.get('video backbone', 0))} | "
                f"{_g(groups.get('audio backbone', 0))} | {_g(groups.get('fusion adapter', 0))} | "
                f"{row['per_step'] / d['paper_faithful']['per_step']:.3f} | {d['seconds_per_step'][key]:.2f} | "
                f"{d['seconds_per_sample'][key]:.0f} |")
    for t in r["training"].values():
        lines += _training(t)
    lines += [
        "GiB = 2^30 bytes. Activations: bf16, attention as fused kernels keep it (no L x L matrix). Not included: CUDA "
        "context and allocator slack (~1-3 GiB), text encoders and VAEs (training reads cached latents and text states), "
        "communication buffers.",
        "",
    ]
    return "\n".join(lines)


def _training(t: dict) -> list[str]:
    lines = [
        "",
        f"## Training memory per GPU ({t['task'].upper()}, batch {t['batch']}, EMA {'on' if t['use_ema'] else 'off'})",
        "",
        "| GiB | no checkpointing | gradient checkpointing |",
        "|---|---:|---:|",
    ]
    rows = (("frozen backbones, bf16", "frozen_weights"), ("adapter master weights, fp32", "trained_weights"),
            ("adapter gradients, fp32", "gradients"), ("AdamW states, fp32", "optimizer"), ("EMA, fp32", "ema"),
            ("activations kept for backward", "activations"), ("recompute peak (one region)", "recompute_peak"),
            ("**total**", "total_bytes"))
    for label, key in rows:
        a, b = t["memory"]["no_checkpointing"][key], t["memory"]["checkpointing"][key]
        lines.append(f"| {label} | {_gib(a)} | {_gib(b)} |")
    flops, secs = t["step_flops"], t["seconds_per_step"]
    lines += [
        f"| training step (fwd + bwd), TFLOP | {flops['no_checkpointing'] / 1e12:,.0f} | {flops['checkpointing'] / 1e12:,.0f} |",
        f"| s / step at the assumed MFU | {secs['no_checkpointing']:.2f} | {secs['checkpointing']:.2f} |",
        "",
    ]
    if t["checkpointed_totals"]:
        lines += ["With gradient checkpointing, total per GPU at batch " + ", ".join(
            f"{b}: {_gib(n)} GiB" for b, n in t["checkpointed_totals"].items()) + ".", ""]
    return lines
