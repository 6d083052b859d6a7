"""Frame-rate and resolution conversion shared by the pipelines' input handling and the training dataset.

Time: an exposure-weighted box filter. Frame ``j`` of a video at ``fps`` is taken to cover one frame period,
``frame_interval(j, fps)``, centred on where its picture sits in time, and a model frame ``k`` at ``target_fps``
(covering ``frame_interval(k, target_fps)``) is the average of the input frames weighted by how much of its
interval each covers. Every instant of the input lands in exactly one model frame, so no event is lost whatever
the two rates: nearest-frame picking at a lower rate drops the frames in between, and with them a short event
(v1's one-frame flash). Going down, the filter is the motion blur of a camera whose shutter stays open for the
whole model frame; the pictures then look alike from any source rate (a sharp 8 fps source differs from a
blurred 30 fps one by a blur of at most one source frame). Going up, each model frame blends the at most two
input frames it overlaps.

Where a frame's picture sits: a frame stamped ``j / fps`` shows the light of an exposure that starts at the
stamp and lasts a fraction of the frame period (half of it for the common 180-degree shutter). Its picture is
centred ``FRAME_CENTRE = 0.25`` of a period after the stamp, and the interval a frame covers is the period
centred there, ``[j - 0.25, j + 0.75) / fps``. Taking ``[j, j + 1) / fps`` instead (the convention before) put
every picture half a period late, an error that grows as the source rate falls: 62 ms at 8 fps against 17 ms at
30 fps. A model trained on clips of every rate cannot learn that away, and the SynthHits v2 V2A model timed
its sounds 74 ms late from 8 fps sources (docs/synthhits.md). With the centre at a quarter period, the error is
``(0.25 - shutter / 2) / fps``: zero for a 180-degree shutter, at most a quarter period for any other.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from .media_io import MediaError


def model_frame_count(num_frames: int, fps: float, target_fps: float) -> int:
    """round(duration * target_fps): the model frames that cover the same seconds as the input."""
    duration = num_frames / fps
    out_frames = round(duration * target_fps)
    if out_frames < 1:
        raise ValueError(f"video is {duration:.3f} s long, shorter than one model frame (1/{target_fps:g} s)")
    return out_frames


FRAME_CENTRE = 0.25  # where frame j's picture sits, in frame periods after its stamp j / fps (see above)


def frame_time(j, fps: float):
    """The instant frame ``j``'s picture shows: ``(j + FRAME_CENTRE) / fps`` seconds."""
    return (j + FRAME_CENTRE) / fps


def frame_interval(j, fps: float):
    """``(start, end)`` seconds of the frame period frame ``j`` stands for, centred on :func:`frame_time`."""
    return (j + FRAME_CENTRE - 0.5) / fps, (j + FRAME_CENTRE + 0.5) / fps


def frame_at(seconds, fps: float):
    """Index of the frame whose interval holds ``seconds`` (the inverse of :func:`frame_interval`)."""
    return np.floor(np.asarray(seconds) * fps - FRAME_CENTRE + 0.5).astype(np.int64)


def exposure_overlap(start, end, j, fps: float):
    """Seconds of input frame ``j`` (covering ``frame_interval(j, fps)``) inside ``[start, end)``; never negative."""
    lo, hi = frame_interval(j, fps)
    return np.clip(np.minimum(end, hi) - np.maximum(start, lo), 0.0, None)


def exposure_weights(num_frames: int, fps: float, target_fps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Banded weights of the box filter: ``(index, weight)``, both ``(out_frames, K)``; output frame ``k`` is
    ``sum_i weight[k, i] * input[index[k, i]]`` with rows summing to 1 (padding has weight 0)."""
    out_frames = model_frame_count(num_frames, fps, target_fps)
    start, end = frame_interval(np.arange(out_frames, dtype=np.float64)[:, None], target_fps)
    width = int(math.ceil(fps / target_fps)) + 1  # input frames one output interval can touch
    j = frame_at(start, fps) + np.arange(width)[None, :]
    overlap = exposure_overlap(start, end, j, fps)
    overlap[(j < 0) | (j >= num_frames)] = 0.0
    # Going up by more than 3x, the last output can start after the input's last interval ends: it holds that
    # last frame, the nearest one (the first output always overlaps the first input frame).
    uncovered = overlap.sum(axis=1) == 0
    j[uncovered, 0], overlap[uncovered, 0] = num_frames - 1, 1.0
    weight = overlap / overlap.sum(axis=1, keepdims=True)
    return torch.from_numpy(np.clip(j, 0, num_frames - 1)), torch.from_numpy(weight).float()


def resize_cover_crop(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Float frames (N, C, h, w) in [0, 1] -> (N, C, height, width): antialiased bilinear resize so the
    target is covered, then a centre crop (no stretching, no borders)."""
    h, w = frames.shape[-2:]
    if (h, w) == (height, width):
        return frames
    size, top, left = _cover_geometry(h, w, height, width)
    frames = F.interpolate(frames, size=size, mode="bilinear", antialias=True, align_corners=False)
    return frames[:, :, top:top + height, left:left + width].clamp(0, 1)


def _cover_geometry(h: int, w: int, height: int, width: int):
    scale = max(height / h, width / w)
    size = (max(height, round(h * scale)), max(width, round(w * scale)))
    return size, (size[0] - height) // 2, (size[1] - width) // 2


def cover_crop_weights(h: int, w: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows, cols)``, ``(height, h)`` and ``(width, w)``, with ``resize_cover_crop(x) == rows @ x @ cols.T`` for
    every channel of an ``(h, w)`` image in [0, 1].

    torch's antialiased bilinear resize is separable and linear, so the weights are read off by resizing one-hot
    images. Applied as two matrix products straight from uint8 frames they give the same pixels (to float32
    rounding) several times faster than converting each full-resolution frame to float and resizing it.
    """
    size, top, left = _cover_geometry(h, w, height, width)
    if (h, w) == (height, width):
        return torch.eye(h), torch.eye(w)
    resize = dict(mode="bilinear", antialias=True, align_corners=False)
    # the other axis is 2 wide, not 1: torch (2.13) resizes 1-wide images with different weights
    eye_h = torch.eye(h).reshape(h, 1, h, 1).expand(h, 1, h, 2).contiguous()
    eye_w = torch.eye(w).reshape(w, 1, 1, w).expand(w, 1, 2, w).contiguous()
    rows = F.interpolate(eye_h, size=(size[0], 2), **resize)[:, 0, top:top + height, 0]
    cols = F.interpolate(eye_w, size=(2, size[1]), **resize)[:, 0, 0, left:left + width]
    return rows.T.contiguous(), cols.T.contiguous()


def resample_video(frames: torch.Tensor, fps: float, target_fps: float, height: int, width: int,
                   chunk: int = 32) -> torch.Tensor:
    """Frames ``(F, C, H, W)`` (uint8, or float in [0, 1]) at ``fps`` -> float ``(F', C, height, width)`` in
    [0, 1] at ``target_fps``. Frames are resized first, ``chunk`` at a time (both steps are linear, so the
    order does not change the result, and full-resolution floats are never held for the whole clip), then
    box-filtered in time (see the module docstring)."""
    index, weight = exposure_weights(frames.shape[0], float(fps), float(target_fps))
    small = torch.cat([resize_cover_crop(to_unit_float(frames[i:i + chunk]), height, width)
                       for i in range(0, frames.shape[0], chunk)])
    return torch.einsum("ok,okchw->ochw", weight, small[index]).clamp_(0, 1)


def resample_video_frames(frames: np.ndarray, fps: float, target_fps: float, height: int, width: int) -> np.ndarray:
    """uint8 ``(F, H, W, 3)`` at ``fps`` -> uint8 at ``target_fps`` and ``(height, width)``, with the pipelines'
    conversion (:func:`resample_video`); what the training dataset stores."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (F, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    if 0 in frames.shape:
        raise MediaError("video has no frames (zero-length clip)")
    out = resample_video(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2), float(fps), target_fps,
                         height, width)
    return to_stored_frames(out)


def to_stored_frames(frames: torch.Tensor) -> np.ndarray:
    """Converted frames, float ``(F, C, H, W)`` in [0, 1] -> uint8 ``(F, H, W, C)``: what the training dataset stores."""
    return (frames * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def to_unit_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255 if x.dtype == torch.uint8 else x.float()


def resize_nearest(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Frames ``(F, h, w, C)`` (any dtype) -> ``(F, height, width, C)``, each output pixel the input pixel under its
    centre: a display size for small model frames that adds no colour (an integer factor repeats every pixel)."""
    frames = np.asarray(frames)
    h, w = frames.shape[1:3]
    rows = ((np.arange(height) + 0.5) * h / height).astype(np.int64)
    cols = ((np.arange(width) + 0.5) * w / width).astype(np.int64)
    return frames[:, rows][:, :, cols]
