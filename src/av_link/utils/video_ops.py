"""Frame-rate and resolution conversion shared by the pipelines' input handling and the training dataset."""

import torch
import torch.nn.functional as F


def frame_indices(num_frames: int, fps: float, target_fps: float) -> torch.Tensor:
    """Nearest-frame resampling in time: output frame k shows the input frame covering (k + 0.5) / target_fps.

    The output has round(duration * target_fps) frames, so it covers the same seconds as the input.
    """
    duration = num_frames / fps
    out_frames = round(duration * target_fps)
    if out_frames < 1:
        raise ValueError(f"video is {duration:.3f} s long, shorter than one model frame (1/{target_fps:g} s)")
    return ((torch.arange(out_frames) + 0.5) * fps / target_fps).floor().long().clamp_(max=num_frames - 1)


def resize_cover_crop(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Float frames (N, C, h, w) in [0, 1] -> (N, C, height, width): antialiased bilinear resize so the
    target is covered, then a centre crop (no stretching, no borders)."""
    h, w = frames.shape[-2:]
    if (h, w) == (height, width):
        return frames
    scale = max(height / h, width / w)
    size = (max(height, round(h * scale)), max(width, round(w * scale)))
    frames = F.interpolate(frames, size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    return frames[:, :, top:top + height, left:left + width].clamp(0, 1)
