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

__all__ = ["TINY_PIPELINE_CONFIG", "tiny_components", "tiny_longcat_transformer", "tiny_longcat_vae", "tiny_text_encoder",
           "tiny_wan_transformer", "tiny_wan_vae"]

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
