"""Tiny, randomly initialised components built in code: tests, smoke demos and docs run offline with them.

Test fixtures, not library code: nothing in av-link imports this module.
"""

import torch

from .models.audio_frontend import AVLinkMelSpectrogram
from .models.fusion import AVLinkFusionAdapter
from .models.transformer_audio import AVLinkAudioTransformer
from .models.transformer_video import AVLinkVideoTransformer
from .models.vocoder_griffin_lim import GriffinLimVocoder
from .schedulers import FlowMatchEulerScheduler
from .training.setup import tiny_text_encoder

__all__ = ["TINY_PIPELINE_CONFIG", "tiny_components", "tiny_longcat_pipeline", "tiny_longcat_transformer", "tiny_longcat_vae",
           "tiny_text_encoder", "tiny_umt5_encoder", "tiny_wan_longcat_adapter", "tiny_wan_pipeline", "tiny_wan_transformer",
           "tiny_wan_vae"]

TINY_PIPELINE_CONFIG = dict(height=16, width=16, clip_seconds=2.0, window_overlap_seconds=0.5, num_inference_steps=4)


def tiny_components(seed: int = 0, fusion: bool = True) -> dict:
    """Every component of the cross-modal pipelines at the "tiny" preset (GriffinLim vocoder)."""
    text_encoder, tokenizer = tiny_text_encoder(seed=seed)
    torch.manual_seed(seed)
    frontend = AVLinkMelSpectrogram()
    components = dict(
        audio_transformer=AVLinkAudioTransformer.from_preset("tiny", patch_size=4, frame_rate=frontend.frames_per_second),
        video_transformer=AVLinkVideoTransformer.from_preset("tiny", patch_size=(1, 4, 4), frame_rate=6.0),
        scheduler=FlowMatchEulerScheduler(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        audio_frontend=frontend,
        vocoder=GriffinLimVocoder.from_mel_frontend(frontend, n_iter=4, nnls_iter=0),
    )
    if fusion:
        components["fusion_adapter"] = AVLinkFusionAdapter.from_preset("tiny")
    return components


# Tiny random configs of diffusers' Wan and LongCat-AudioDiT classes (the open backbones of models/backbone_views.py).
# The VAEs' latent widths match the transformers' inputs; the rates put latents at a common 8 per second: Wan at
# 8 fps (4 pixel frames per latent), LongCat at 64 samples/s (8 samples per latent).
TINY_WAN_FPS = 8.0


def tiny_wan_transformer(seed: int = 0, **config):
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    config = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4, out_channels=4,
                  text_dim=32, freq_dim=32, ffn_dim=32, num_layers=3, cross_attn_norm=True, rope_max_seq_len=32) | config
    return WanTransformer3DModel(**config).eval()


def tiny_wan_vae(seed: int = 0):
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    return AutoencoderKLWan(base_dim=3, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True],
                            latents_mean=[0.0] * 4, latents_std=[1.0] * 4).eval()


def tiny_longcat_transformer(seed: int = 0, **config):
    """A random `LongCatAudioDiTTransformer` whose zero-initialised output layers (`proj_out`, `norm_out.linear`,
    `adaln_global_mlp`) get small random values, so its output is not trivially zero."""
    from diffusers import LongCatAudioDiTTransformer

    torch.manual_seed(seed)
    config = dict(dit_dim=16, dit_depth=2, dit_heads=2, dit_text_dim=32, latent_dim=8, ff_mult=2.0) | config
    model = LongCatAudioDiTTransformer(**config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith(("proj_out.", "norm_out.linear.", "adaln_global_mlp.")):
                p.copy_(torch.randn_like(p) * 0.1)
    return model


def tiny_longcat_vae(seed: int = 0, **config):
    from diffusers import LongCatAudioDiTVae

    torch.manual_seed(seed)
    config = dict(channels=8, c_mults=[1, 2], strides=[2, 4], latent_dim=8, encoder_latent_dim=16, downsampling_ratio=8,
                  sample_rate=64) | config
    return LongCatAudioDiTVae(**config).eval()


def tiny_umt5_encoder(seed: int = 0, text_dim: int = 32):
    """A random 2-layer `UMT5EncoderModel` (Wan's and LongCat's text encoder class) with `ByT5Tokenizer()`, its
    vocabulary sized by `len(tokenizer)` (384: the byte ids plus the extra ids), not `vocab_size` (256)."""
    from transformers import ByT5Tokenizer, UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    tokenizer = ByT5Tokenizer()
    config = UMT5Config(vocab_size=len(tokenizer), d_model=text_dim, d_kv=8, d_ff=2 * text_dim, num_layers=2, num_heads=4)
    return UMT5EncoderModel(config).eval(), tokenizer


def tiny_wan_pipeline(seed: int = 0, text_encoder=None, tokenizer=None, shift: float = 3.0):
    """A `WanPipeline` of the tiny Wan transformer and VAE, with a `FlowMatchEulerDiscreteScheduler(shift=shift)` (an
    Euler sampler, so av-link's pipelines can reproduce it) and a tiny UMT5 unless one is given."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline

    if text_encoder is None:
        text_encoder, tokenizer = tiny_umt5_encoder(seed)
    return WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=tiny_wan_vae(seed),
                       scheduler=FlowMatchEulerDiscreteScheduler(shift=shift), transformer=tiny_wan_transformer(seed))


def tiny_longcat_pipeline(seed: int = 0, text_encoder=None, tokenizer=None):
    """A `LongCatAudioDiTPipeline` of the tiny LongCat transformer and VAE (64 samples/s, 8 per latent) and a tiny
    UMT5 unless one is given; it builds its own scheduler, as the released pipeline does."""
    from diffusers import LongCatAudioDiTPipeline

    if text_encoder is None:
        text_encoder, tokenizer = tiny_umt5_encoder(seed)
    return LongCatAudioDiTPipeline(vae=tiny_longcat_vae(seed), text_encoder=text_encoder, tokenizer=tokenizer,
                                   transformer=tiny_longcat_transformer(seed))


def tiny_wan_longcat_adapter(seed: int = 0, **config):
    """An untrained (zero-gated) Fusion adapter between the tiny LongCat (width 16, 2 blocks) and Wan (width 24, 3
    blocks) transformers, its RoPE scaled to seconds x 8."""
    torch.manual_seed(seed)
    config = dict(audio_dim=16, video_dim=24, hidden_size=32, num_attention_heads=2, mlp_dim=64, num_audio_layers=2,
                  num_video_layers=3, num_blocks=2, time_rate=8.0) | config
    return AVLinkFusionAdapter(**config).eval()
