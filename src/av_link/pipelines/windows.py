"""Sliding windows for inputs longer than the clip length the models were trained on.

The generated signal is denoised as one long tensor; at every sampling step each window's velocity
is computed on its slice and the overlapping windows' velocities are averaged with ramped weights,
so neighbouring windows agree on the shared seconds and no seam appears. The windows' slices of one
step run as batched forward passes (see `batch_rows`).
"""

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Window:
    video: slice  # frames of the video axis
    audio: slice  # frames of the audio (mel) axis

    def length(self, modality: str) -> int:
        frames = getattr(self, modality)
        return frames.stop - frames.start


def plan_windows(num_video_frames: int, num_audio_frames: int, video_fps: float, audio_fps: float,
                 clip_seconds: float, overlap_seconds: float) -> list[Window]:
    """Windows of `clip_seconds` (whole video frames) that overlap by about `overlap_seconds`.

    Every window's audio starts at its first video frame's time rounded to the nearest audio frame, the
    last window's too: the models place both modalities' tokens from time 0 at the window's start, so a
    window whose audio started anywhere else would pair sounds with the wrong frames. The last window
    therefore may reach past the end of either signal (by less than one video frame of seconds): the
    caller pads both signals to `extent(windows)` and cuts the result back.
    """
    span = max(1, round(clip_seconds * video_fps))
    if num_video_frames <= span:  # one window; both signals start at 0, so they line up
        return [Window(slice(0, num_video_frames), slice(0, num_audio_frames))]
    hop = max(1, span - round(overlap_seconds * video_fps))
    audio_span = round(span / video_fps * audio_fps)

    def audio_start(frame: int) -> int:
        return round(frame / video_fps * audio_fps)

    end = num_video_frames  # the video frames the windows cover: enough for every audio frame too
    while audio_start(end - span) + audio_span < num_audio_frames:
        end += 1
    starts = [*range(0, end - span, hop), end - span]
    return [Window(slice(s, s + span), slice(audio_start(s), audio_start(s) + audio_span)) for s in starts]


def extent(windows: list[Window]) -> Window:
    """The frames of each signal the windows cover, from 0: the lengths the signals are padded to."""
    return Window(slice(0, max(w.video.stop for w in windows)), slice(0, max(w.audio.stop for w in windows)))


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


def batch_rows(num_windows: int, batch_size: int, tokens_per_row: int, max_batch_tokens: int) -> list[tuple]:
    """Split the step's (window, sample) rows, window by window, into forward passes of at most
    `max_batch_tokens` tokens (at least one row each). Rows of one window are consecutive, so a pass
    holds neighbouring windows."""
    rows = [(k, b) for k in range(num_windows) for b in range(batch_size)]
    per_pass = max(1, max_batch_tokens // max(1, tokens_per_row))
    return [tuple(rows[i:i + per_pass]) for i in range(0, len(rows), per_pass)]
