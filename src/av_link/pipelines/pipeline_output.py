"""Output dataclasses of the av-link pipelines."""

from dataclasses import dataclass

import numpy as np
import torch
from diffusers.utils import BaseOutput


@dataclass
class AVLinkAudioPipelineOutput(BaseOutput):
    """`audios`: `(B, samples)` waveforms at `sample_rate` (np or pt), or the `(B, frames, mels)` latents; a list
    of one per output when a batch mixed lengths."""

    audios: np.ndarray | torch.Tensor | list
    sample_rate: int


@dataclass
class AVLinkVideoPipelineOutput(BaseOutput):
    """`frames`: np `(B, F, H, W, 3)` in [0, 1], pt `(B, F, 3, H, W)`, a list of PIL frame lists, or latents; a
    list of one per output when a batch mixed lengths."""

    frames: np.ndarray | torch.Tensor | list
    fps: float


@dataclass
class AVLinkAudioVideoPipelineOutput(BaseOutput):
    """Joint generation: `audios` and `frames` as in the audio and video outputs, with their `sample_rate` and `fps`."""

    audios: np.ndarray | torch.Tensor | list
    sample_rate: int
    frames: np.ndarray | torch.Tensor | list
    fps: float
