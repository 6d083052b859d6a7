"""Tiny, randomly initialised components built in code: tests, smoke demos and docs run offline with them."""

import torch
from transformers import ByT5Tokenizer, T5Config, T5EncoderModel

from ..models.audio_frontend import AVLinkMelSpectrogram
from ..models.fusion import AVLinkFusionAdapter
from ..models.transformer_audio import AVLinkAudioTransformer
from ..models.transformer_video import AVLinkVideoTransformer
from ..models.vocoder_griffin_lim import GriffinLimVocoder
from ..schedulers import FlowMatchEulerScheduler

TINY_PIPELINE_CONFIG = dict(height=16, width=16, clip_seconds=2.0, window_overlap_seconds=0.5, num_inference_steps=4)


def tiny_text_encoder(text_dim: int = 32, seed: int = 0):
    """A 2-layer random T5 encoder with the byte-level ByT5 tokenizer (which needs no vocabulary file)."""
    torch.manual_seed(seed)
    tokenizer = ByT5Tokenizer()
    config = T5Config(vocab_size=len(tokenizer), d_model=text_dim, d_kv=8, d_ff=2 * text_dim, num_layers=2, num_heads=4)
    return T5EncoderModel(config).eval(), tokenizer


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
