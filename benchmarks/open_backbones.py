"""Wan 2.1 T2V 1.3B + LongCat-AudioDiT 1B linked by a paper-sized adapter: parameters, FLOPs per sampling step and
training memory per GPU, all **computed on the meta device, not measured on a GPU**.

Method
------
* The real configs (`REAL_CONFIGS`: Wan 2.1 T2V 1.3B's transformer / VAE / UMT5-XXL encoder, LongCat-AudioDiT 1B's
  transformer / VAE / UMT5-base encoder) are built with diffusers' and transformers' own classes on the meta device:
  parameter counts are exact, nothing is allocated. The adapter is `AVLinkFusionAdapter.from_preset("paper")` (8
  Fusion Blocks, D = 1024, 16 heads, MLP 4096) sized to these backbones' widths and depths, its RoPE at Wan's token
  rate (16 fps / 4 = 4 latent frames per second).
* The clip: `Scale.clip` (Wan 2.1's default 81 frames of 480x832 at 16 fps = 5.06 s). Wan's VAE is causal with 4x in time
  and 8x in space: 21 x 60 x 104 latents, 2x2 patches -> 32,760 video tokens. LongCat's VAE makes one latent per 2048
  samples at 24 kHz: the same 5.06 s -> 60 latents = 60 audio tokens. Text as each pipeline makes it: Wan pads UMT5
  states to 512 tokens (its empty negative prompt too); LongCat keeps the prompt's length (`Scale.text_tokens`) and its
  unconditional branch is zeros of the same shape.
* FLOPs: `pipeline_flops.py`'s counter (matmul-type ops, 2 per multiply-add; meta SDPA decomposes into its math path,
  so attention is counted). "pipeline": the real `AVLinkV2APipeline` / `AVLinkA2VPipeline.__call__` (output_type
  "latent"), per step from two runs with different step counts, so once-per-run work (the cached conditioning prefix)
  cancels; its conditioning input is handed over already encoded (the VAE encode is once per run and not the question).
  "paper-faithful": per step, the full joint model (both backbones, every block, every Fusion Block, both output
  layers, the conditioning input re-embedded) for the conditional branch plus the generated backbone alone on the
  unconditional text, no caching, no pruning.
* Training: `av_link.training.memory.estimate_training_memory` (bf16 frozen weights, fp32 adapter + grads + AdamW,
  optional EMA, activations summed from autograd's saved tensors with and without gradient checkpointing); one
  training step's FLOPs (forward + backward, with the recompute when checkpointing) are counted the same way.
* Time: FLOPs / (MFU x H100 SXM dense bf16 peak, 989 TFLOP/s), MFU assumed (`--mfu`, default 0.4): an estimate,
  not a measurement.

Run: `python benchmarks/open_backbones.py` (a few minutes on 2 loaded CPU cores) -> results/open_backbones.{json,md}.
"""

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import pipeline_flops as pf  # noqa: E402  (its counter, meta-device scheduler and helpers)
from open_backbones_report import markdown  # noqa: E402

from av_link import AVLinkA2VPipeline, AVLinkFusionAdapter, AVLinkV2APipeline  # noqa: E402
from av_link.models.joint import joint_forward  # noqa: E402
from av_link.pipelines.pipeline_av_link_cross_modal import ConditioningItem  # noqa: E402
from av_link.training.memory import (  # noqa: E402
    estimate_training_memory,
    fusion_training_loss,
    parameter_count,
)

META = pf.META
H100_BF16_PEAK = 989.4e12  # FLOP/s, dense (no sparsity), H100 SXM

# Published configs. Wan: the diffusers folder Wan-AI/Wan2.1-T2V-1.3B-Diffusers (transformer as in diffusers'
# convert script; its VAE is AutoencoderKLWan's defaults; UMT5-XXL encoder). LongCat: the reference AudioDiTConfig
# of meituan-longcat/LongCat-AudioDiT-1B (dit 1536 x 24, 24 heads, UMT5-base text, 64-channel VAE latents at
# 24 kHz / 2048), which diffusers' classes take under these names.
REAL_CONFIGS = {
    "wan_transformer": dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16,
                            out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
                            qk_norm="rms_norm_across_heads", eps=1e-6),
    "wan_vae": dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, temperal_downsample=[False, True, True]),
    "wan_text_encoder": dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                             feed_forward_proj="gated-gelu", relative_attention_num_buckets=32),
    "longcat_transformer": dict(dit_dim=1536, dit_depth=24, dit_heads=24, dit_text_dim=768, latent_dim=64, ff_mult=4.0),
    "longcat_vae": dict(channels=128, c_mults=[1, 2, 4, 8, 16], strides=[2, 4, 4, 8, 8], latent_dim=64,
                        encoder_latent_dim=128, downsampling_ratio=2048, sample_rate=24000),
    "longcat_text_encoder": dict(vocab_size=256384, d_model=768, d_kv=64, d_ff=2048, num_layers=12, num_heads=12,
                                 feed_forward_proj="gated-gelu", relative_attention_num_buckets=32),
}




@dataclass
class Scale:
    """What is counted: the component configs, the clip, the text lengths and the adapter's preset."""

    configs: dict = field(default_factory=lambda: REAL_CONFIGS)
    # Wan 2.1's default clip: 81 frames of 480x832 at 16 fps (5.06 s); LongCat's audio rate
    clip: dict = field(default_factory=lambda: dict(frames=81, height=480, width=832, fps=16.0, sample_rate=24000))
    text_tokens: int = 32  # LongCat's prompt length (Wan pads to wan_text_tokens whatever the prompt)
    wan_text_tokens: int = 512
    adapter_preset: str = "paper"

    @property
    def temporal(self) -> int:  # Wan VAE: 2x in time per downsampling stage that has it
        return 2 ** sum(self.configs["wan_vae"]["temperal_downsample"])

    @property
    def spatial(self) -> int:  # Wan VAE: 2x in space per stage after the first
        return 2 ** (len(self.configs["wan_vae"]["dim_mult"]) - 1)

    @property
    def latent_frames(self) -> int:
        return (self.clip["frames"] - 2) // self.temporal + 2  # causal: 1 + ceil((F - 1) / 4)

    @property
    def seconds(self) -> float:
        return self.clip["frames"] / self.clip["fps"]

    def text_width(self, modality: str) -> int:
        c = self.configs
        return c["wan_transformer"]["text_dim"] if modality == "video" else c["longcat_transformer"]["dit_text_dim"]


REAL = Scale()


def tiny_scale() -> Scale:
    """Tiny random configs of the same classes and a 9-frame clip: the benchmarks' code paths in seconds on a CPU."""
    configs = dict(REAL_CONFIGS)
    configs.update(
        wan_transformer=dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4, out_channels=4,
                             text_dim=32, freq_dim=32, ffn_dim=32, num_layers=3),
        wan_vae=dict(base_dim=3, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]),
        wan_text_encoder=dict(vocab_size=384, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4),
        longcat_transformer=dict(dit_dim=16, dit_depth=2, dit_heads=2, dit_text_dim=24, latent_dim=8, ff_mult=2.0),
        longcat_vae=dict(channels=8, c_mults=[1, 2], strides=[2, 4], latent_dim=8, encoder_latent_dim=16, downsampling_ratio=8,
                         sample_rate=64),
        longcat_text_encoder=dict(vocab_size=384, d_model=24, d_kv=8, d_ff=48, num_layers=2, num_heads=3),
    )
    return Scale(configs=configs, clip=dict(frames=9, height=32, width=48, fps=8.0, sample_rate=64), text_tokens=5,
                 wan_text_tokens=7, adapter_preset="tiny")


def real_components(scale: Scale = REAL, device=META, dtype=None) -> dict:
    """Every component of `scale` on `device` (the meta device for counting; random weights in `dtype` for timing).
    The text encoders and tokenizers (`ByT5Tokenizer()` stand-ins) are never called, so they stay on the meta device."""
    from diffusers import (
        AutoencoderKLWan,
        LongCatAudioDiTTransformer,
        LongCatAudioDiTVae,
        WanTransformer3DModel,
    )
    from transformers import ByT5Tokenizer, UMT5Config, UMT5EncoderModel

    c = scale.configs
    with torch.device(device):
        wan, longcat = WanTransformer3DModel(**c["wan_transformer"]), LongCatAudioDiTTransformer(**c["longcat_transformer"])
        parts = dict(audio_transformer=longcat, video_transformer=wan, video_vae=AutoencoderKLWan(**c["wan_vae"]),
                     audio_vae=LongCatAudioDiTVae(**c["longcat_vae"]), fusion_adapter=paper_adapter(longcat, wan, scale))
    if dtype is not None:
        for name in ("audio_transformer", "video_transformer", "fusion_adapter"):
            parts[name].to(dtype)
    with torch.device(META):
        parts.update(video_text_encoder=UMT5EncoderModel(UMT5Config(**c["wan_text_encoder"])),
                     audio_text_encoder=UMT5EncoderModel(UMT5Config(**c["longcat_text_encoder"])))
    return dict(parts, audio_tokenizer=ByT5Tokenizer(), video_tokenizer=ByT5Tokenizer())


def paper_adapter(longcat, wan, scale: Scale = REAL) -> AVLinkFusionAdapter:
    """The paper's adapter (8 Fusion Blocks at D = 1024) between these widths and depths; RoPE at Wan's token rate."""
    return AVLinkFusionAdapter.from_preset(
        scale.adapter_preset, audio_dim=longcat.config.dit_dim, video_dim=wan.config.num_attention_heads * wan.config.attention_head_dim,
        num_audio_layers=longcat.config.dit_depth, num_video_layers=wan.config.num_layers,
        time_rate=scale.clip["fps"] / scale.temporal)


def real_pipeline(cls, parts: dict, shift: float, scale: Scale = REAL, device=META, dtype=None):
    """The pipeline on `parts`; text-encoder states are stand-ins of each pipeline's shapes (in `dtype`)."""
    device = torch.device(device)
    cls = type(cls.__name__, (cls,), {"_execution_device": property(lambda self: device), "scale": scale})
    clip = scale.clip
    scheduler = (pf.CPUGridScheduler if device.type == "meta" else pf.FlowMatchEulerScheduler)(shift=shift)
    # one window covers the clip: Wan's latent frames at fps / 4 per second
    pipe = cls(**parts, scheduler=scheduler, video_fps=clip["fps"], height=clip["height"],
               width=clip["width"], clip_seconds=scale.latent_frames * scale.temporal / clip["fps"],
               max_sequence_length=scale.wan_text_tokens, max_batch_tokens=2**22)

    def get_prompt_embeds(prompts, device=None, max_sequence_length=None, modality=None):
        modality, device = modality or pipe.generated, device or pipe._execution_device
        if modality == "video":  # WanPipeline: UMT5-XXL states zero-padded to 512 tokens, no mask
            return pf.fake_text(len(prompts), scale.wan_text_tokens, scale.text_width(modality), device, dtype), None
        length = max(scale.text_tokens if p else 1 for p in prompts)  # LongCat: the prompt's tokens ("" -> EOS alone)
        return (pf.fake_text(len(prompts), length, scale.text_width(modality), device, dtype),
                torch.ones(len(prompts), length, dtype=torch.bool, device=device))

    pipe._get_prompt_embeds = get_prompt_embeds
    pipe.set_progress_bar_config(disable=True)
    pf.register_groups(pipe)
    return pipe


def clip_item(pipe) -> ConditioningItem:
    """The clip in model space, as `prepare_conditioning` would give it after the VAE encode."""
    scale = pipe.scale
    video_frames, audio_frames = scale.latent_frames, pipe.family("audio").num_frames(scale.seconds)
    frames = {"video": video_frames, "audio": audio_frames}
    signal = pf.placeholder(pipe.family(pipe.conditioning).latent_shape(1, frames[pipe.conditioning]), pipe._execution_device)
    return ConditioningItem(signal, scale.seconds, video_frames, audio_frames)


def paper_faithful_step(pipe, item, x, guidance: float) -> torch.Tensor:
    """One step of the straightforward sampler: full joint model (conditional) + generated backbone alone."""
    gen, cond = pipe.generated, pipe.conditioning
    backbones = {m: pipe.family(m).backbone for m in ("audio", "video")}
    text = {m: pipe._get_prompt_embeds(["a prompt"], modality=m) for m in ("audio", "video")}
    uncond = pipe._get_prompt_embeds([""], modality=gen)
    if gen == "audio":  # LongCat's rule: zeros of the prompt's shape
        uncond = (torch.zeros_like(text["audio"][0]), text["audio"][1])
    t = torch.full((1,), 0.5, device=META)
    t_c = pipe.config.conditioning_timestep
    inputs, times = {gen: x, cond: item.signal}, {gen: t, cond: t_c}
    out = joint_forward(backbones["audio"], backbones["video"], pipe.fusion_adapter, inputs["audio"], inputs["video"],
                        times["audio"], times["video"], text["audio"][0], text["video"][0], text["audio"][1], text["video"][1])
    v_cond = getattr(out, gen)
    v_uncond = backbones[gen](x, t, *uncond).sample
    return v_uncond + guidance * (v_cond - v_uncond)


def measure_sampling(direction: str, parts: dict, steps, guidance: float, scale: Scale = REAL) -> dict:
    cls = AVLinkV2APipeline if direction == "v2a" else AVLinkA2VPipeline
    pipe = real_pipeline(cls, parts, shift=1.0 if direction == "v2a" else 3.0, scale=scale)  # the generated backbone's own shift
    item = clip_item(pipe)
    pipe.prepare_conditioning = lambda inputs, rates: [item]

    def pipeline_run(n):
        out = pipe(item.signal, prompt="a prompt", conditioning_prompt="a prompt", num_inference_steps=n,
                   guidance_scale=guidance, output_type="latent")
        return out.audios if direction == "v2a" else out.frames

    gen = pipe.family(pipe.generated)
    x = torch.empty(gen.latent_shape(1, item.num_audio_frames if direction == "v2a" else item.num_video_frames), device=META)
    base_total, base_groups, _ = pf.count(lambda: paper_faithful_step(pipe, item, x, guidance))
    real = pf.per_step(pipeline_run, steps)
    video_tokens = pipe.family("video").num_tokens(item.num_video_frames)
    return dict(
        direction=direction, seconds=item.seconds, video_latent_frames=item.num_video_frames, audio_latents=item.num_audio_frames,
        video_tokens=video_tokens, audio_tokens=item.num_audio_frames, guidance_scale=guidance, steps_counted=list(steps),
        conditioning_timestep=pipe.config.conditioning_timestep, fusion_placement=pipe.fusion_adapter.placement,
        pipeline=real, paper_faithful=dict(per_step=base_total, per_step_groups=base_groups),
        ratio_per_step=real["per_step"] / base_total,
    )


def backbone_forward_flops(parts: dict, modality: str, scale: Scale = REAL) -> float:
    """One standalone forward of a backbone on the clip with its conditional text (the cost unit of the ratios)."""
    pipe = real_pipeline(AVLinkV2APipeline, parts, shift=1.0, scale=scale)
    item = clip_item(pipe)
    backbone = pipe.family(modality).backbone
    frames = item.num_video_frames if modality == "video" else item.num_audio_frames
    x = torch.empty(pipe.family(modality).latent_shape(1, frames), device=META)
    text = pipe._get_prompt_embeds(["a prompt"], modality=modality)
    return pf.count(lambda: backbone(x, 0.5, *text))[0]


def training_inputs(pipe, batch: int) -> dict:
    item = clip_item(pipe)
    audio_text, audio_mask = pipe._get_prompt_embeds(["a prompt"] * batch, modality="audio")
    video_text, _ = pipe._get_prompt_embeds(["a prompt"] * batch, modality="video")
    device = pipe._execution_device
    return dict(audio=pf.placeholder(pipe.family("audio").latent_shape(batch, item.num_audio_frames), device),
                video=pf.placeholder(pipe.family("video").latent_shape(batch, item.num_video_frames), device),
                audio_text=audio_text, video_text=video_text, audio_text_mask=audio_mask)


def measure_training(parts: dict, task: str, batch: int, use_ema: bool, scale: Scale = REAL, more_batches=()) -> dict:
    """Memory per GPU with and without gradient checkpointing and one step's FLOPs at `batch`; with checkpointing only,
    the total memory at `more_batches`."""
    pipe = real_pipeline(AVLinkV2APipeline, parts, shift=1.0, scale=scale)
    backbones = [pipe.family(m).backbone for m in ("audio", "video")]
    inputs = training_inputs(pipe, batch)
    memory = {}
    for checkpointing in (False, True):
        memory["checkpointing" if checkpointing else "no_checkpointing"] = estimate_training_memory(
            *backbones, pipe.fusion_adapter, **inputs, task=task, gradient_checkpointing=checkpointing, use_ema=use_ema).as_dict()
    checkpointed_totals = {b: estimate_training_memory(*backbones, pipe.fusion_adapter, **training_inputs(pipe, b), task=task,
                                                       gradient_checkpointing=True, use_ema=use_ema).total_bytes
                           for b in more_batches}

    def step(checkpointing: bool):
        models = [*backbones, pipe.fusion_adapter]
        if checkpointing:
            for m in models:
                m.enable_gradient_checkpointing()
        try:
            with torch.enable_grad():
                fusion_training_loss(*backbones, pipe.fusion_adapter, **inputs, task=task).backward()
        finally:
            for m in models:
                m.disable_gradient_checkpointing()
            pipe.fusion_adapter.zero_grad(set_to_none=True)

    flops = {name: pf.count(lambda c=c: step(c))[0] for name, c in (("no_checkpointing", False), ("checkpointing", True))}
    return dict(task=task, batch=batch, use_ema=use_ema, memory=memory, step_flops=flops, checkpointed_totals=checkpointed_totals)


def parameters(parts: dict) -> dict:
    return {name: parameter_count(parts[name]) for name in (
        "video_transformer", "audio_transformer", "fusion_adapter", "video_vae", "audio_vae", "video_text_encoder",
        "audio_text_encoder")} | {"fusion_block": parameter_count(parts["fusion_adapter"].blocks[0])}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, nargs=2, default=[1, 2], metavar=("N1", "N2"))
    parser.add_argument("--guidance-scale", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=1, help="training batch per GPU")
    parser.add_argument("--more-batches", type=int, nargs="*", default=[2, 4, 8],
                        help="further batches per GPU whose memory (with checkpointing) is estimated")
    parser.add_argument("--mfu", type=float, default=0.4, help="assumed model FLOPs utilisation for the time estimates")
    parser.add_argument("--sample-steps", type=int, default=64, help="steps of one sample for the time estimate")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "open_backbones"))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    parts = real_components()
    results = dict(
        label="computed on the meta device, not measured on a GPU", configs=REAL.configs, clip=REAL.clip,
        text_tokens=REAL.text_tokens, wan_text_tokens=REAL.wan_text_tokens, mfu=args.mfu, peak_flops=H100_BF16_PEAK, sample_steps=args.sample_steps,
        torch=torch.__version__, python=platform.python_version(), parameters=parameters(parts),
    )
    with torch.no_grad():
        results["backbone_forward"] = {m: backbone_forward_flops(parts, m) for m in ("video", "audio")}
        for direction in ("v2a", "a2v"):
            results[direction] = measure_sampling(direction, parts, args.steps, args.guidance_scale)
    results["training"] = {task: measure_training(parts, task, args.batch, use_ema=True, more_batches=args.more_batches)
                           for task in ("v2a", "a2v")}
    seconds_per = lambda flops: flops / (args.mfu * H100_BF16_PEAK)  # noqa: E731
    for direction in ("v2a", "a2v"):
        r = results[direction]
        r["seconds_per_step"] = {k: seconds_per(v) for k, v in (("pipeline", r["pipeline"]["per_step"]),
                                                                 ("paper_faithful", r["paper_faithful"]["per_step"]))}
        r["seconds_per_sample"] = {k: v * args.sample_steps for k, v in r["seconds_per_step"].items()}
    for t in results["training"].values():
        t["seconds_per_step"] = {k: seconds_per(v) for k, v in t["step_flops"].items()}
    results["seconds"] = time.perf_counter() - start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    print(f"wrote {out}.json / .md ({results['seconds']:.0f} s)")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
