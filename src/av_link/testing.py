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

__all__ = ["TINY_PIPELINE_CONFIG", "tiny_components", "tiny_text_encoder"]

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
