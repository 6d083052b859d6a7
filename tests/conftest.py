import pytest
import torch

from av_link import AVLinkAudioTransformer, AVLinkFusionAdapter, AVLinkVideoTransformer


def randomize_(module: torch.nn.Module, std: float = 0.2, seed: int = 0) -> torch.nn.Module:
    """Overwrite every parameter (zero-initialised gates included) so no path is trivially zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return module


@pytest.fixture
def tiny_models():
    torch.manual_seed(0)
    audio = AVLinkAudioTransformer.from_preset("tiny", in_channels=8, patch_size=2, frame_rate=12.0)
    video = AVLinkVideoTransformer.from_preset("tiny", patch_size=(1, 2, 2), frame_rate=6.0)
    adapter = AVLinkFusionAdapter.from_preset("tiny")
    return audio.eval(), video.eval(), adapter.eval()
