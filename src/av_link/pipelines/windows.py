"""Sliding windows for inputs longer than the clip length the models were trained on.

The generated signal is denoised as one long tensor; at every sampling step each window's velocity
is computed on its slice and the overlapping windows' velocities are averaged with ramped weights,
so neighbouring windows agree on the shared seconds and no seam appears.
"""

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Window:
    video: slice  # frames of the video axis
    audio: slice  # frames of the audio (mel) axis


def plan_windows(num_video_frames: int, num_audio_frames: int, video_fps: float, audio_fps: float,
                 clip_seconds: float, overlap_seconds: float) -> list[Window]:
    """Windows of `clip_seconds` (aligned to video frames) that overlap by about `overlap_seconds`."""
    span = max(1, round(clip_seconds * video_fps))
    if num_video_frames <= span:
        return [Window(slice(0, num_video_frames), slice(0, num_audio_frames))]
    hop = max(1, span - round(overlap_seconds * video_fps))
    starts = list(range(0, num_video_frames - span, hop)) + [num_video_frames - span]
    audio_span = min(num_audio_frames, round(span / video_fps * audio_fps))
    windows = []
    for start in starts:
        audio_start = min(round(start / video_fps * audio_fps), num_audio_frames - audio_span)
        if start + span == num_video_frames:  # the last window ends where both signals end
            audio_start = num_audio_frames - audio_span
        windows.append(Window(slice(start, start + span), slice(audio_start, audio_start + audio_span)))
    return windows


def window_weights(slices: list[slice], total: int, ramp: int) -> list[torch.Tensor]:
    """One weight vector per window: 1 inside, a linear ramp over `ramp` frames where a window's edge is
    inside the sequence (so it hands over smoothly to its neighbour), never zero."""
    weights = []
    for s in slices:
        length = s.stop - s.start
        position = torch.arange(length, dtype=torch.float32)
        w = torch.ones(length)
        if ramp > 0:
            if s.start > 0:
                w = torch.minimum(w, (position + 1) / (ramp + 1))
            if s.stop < total:
                w = torch.minimum(w, (length - position) / (ramp + 1))
        weights.append(w)
    return weights
