import pytest
import torch

from av_link import AVLinkAudioTransformer, AVLinkFusionAdapter, AVLinkVideoTransformer


# A model loaded from safetensors computes with the same weights at another memory alignment, and on some CPUs (seen
# on an AVX2 AMD EPYC) the matrix kernels' summation order depends on it: a loaded pipeline's outputs then match the
# original's to ~3e-6, not bitwise (the same weights cloned into fresh memory match bitwise).
LOADED_ATOL = 1e-5


def randomize_(module: torch.nn.Module, std: float = 0.2, seed: int = 0) -> torch.nn.Module:
    """Overwrite every parameter (zero-initialised gates included) so no path is trivially zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return module


def tiny_pipeline(cls, seed: int = 0, **config):
    """A tiny cross-modal pipeline whose adapter gates are random (not zero), so the fusion path really changes the
    result; text-to-audio/video pipelines get their backbone's components."""
    from av_link import AVLinkTextToAudioPipeline, AVLinkTextToVideoPipeline
    from av_link.testing import TINY_PIPELINE_CONFIG, tiny_components

    components = tiny_components(seed)
    randomize_(components["fusion_adapter"], 0.05, seed)
    if cls is AVLinkTextToAudioPipeline:
        keep = ("audio_transformer", "scheduler", "text_encoder", "tokenizer", "audio_frontend", "vocoder")
        return cls(**{k: components[k] for k in keep}, num_inference_steps=4, clip_seconds=2.0, **config)
    if cls is AVLinkTextToVideoPipeline:
        keep = ("video_transformer", "scheduler", "text_encoder", "tokenizer")
        return cls(**{k: components[k] for k in keep}, num_inference_steps=4, height=16, width=16, clip_seconds=2.0, **config)
    return cls(**components, **{**TINY_PIPELINE_CONFIG, **config})


@pytest.fixture
def tiny_models():
    torch.manual_seed(0)
    audio = AVLinkAudioTransformer.from_preset("tiny", in_channels=8, patch_size=2, frame_rate=12.0)
    video = AVLinkVideoTransformer.from_preset("tiny", patch_size=(1, 2, 2), frame_rate=6.0)
    adapter = AVLinkFusionAdapter.from_preset("tiny")
    return audio.eval(), video.eval(), adapter.eval()


def overfit_losses(pipe, adapter, task: str, steps: int = 8, lr: float = 3e-3) -> list:
    """`fusion_loss` of the tiny pipeline's backbones and `adapter` on one fixed batch of four 2 s clips, over `steps`
    AdamW steps on the adapter: what a variant's "it trains" test checks falls."""
    from av_link.training.objectives import ObjectiveConfig, fusion_loss

    encode = lambda captions: pipe.encode_prompt(captions, do_classifier_free_guidance=False)[:2]  # noqa: E731
    g = torch.Generator().manual_seed(0)
    batch = dict(index=torch.arange(4), mel=torch.randn(4, 172, 80, generator=g),
                 video=torch.rand(4, 3, 12, 16, 16, generator=g) * 2 - 1,
                 audio_caption=["a knock"] * 4, video_caption=["a ball"] * 4)
    cfg = ObjectiveConfig(generated_text_dropout=0.0, conditioning_text_dropout=0.0)
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = fusion_loss(pipe.audio_transformer, pipe.video_transformer, adapter, encode, batch, task, cfg, epoch=0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
