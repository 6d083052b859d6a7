"""Incremental versions of the package's two resamplers, for inputs decoded as a stream.

- :class:`BoxFilterStream`: the exposure-weighted box filter of :func:`av_link.utils.video_ops.resample_video`
  (the models were trained on it), fed one resized input frame at a time. Each model frame accumulates the
  frames that overlap it, weighted by the overlap, and is released as soon as its interval is covered; so it
  holds at most the ``ceil(fps / target_fps) + 1`` model frames being built, whatever the input's length.
- :class:`PolyphaseStream`: :func:`av_link.utils.media_io.resample_audio` (scipy's ``resample_poly``) over
  blocks of a longer signal. The polyphase filter is shift-equivariant for input shifts that are whole
  multiples of ``down`` (they move the output by whole multiples of ``up``), so a block that starts on such a
  sample and reaches the filter's half-length past the outputs it releases gives exactly the outputs of one
  call over the whole signal; it holds one block plus that margin.
"""

import math
from typing import List

import numpy as np
import torch

from .media_io import resample_audio
from .video_ops import exposure_overlap, frame_at, frame_interval, model_frame_count


class BoxFilterStream:
    """Push float frames ``(n, C, h, w)`` at ``fps``; get back the finished model frames at ``target_fps``.

    ``finish()`` releases the last ones: ``round(duration * target_fps)`` model frames in all, the last one
    normalised by the part of its interval the input covers, exactly as :func:`exposure_weights` does.
    """

    def __init__(self, fps: float, target_fps: float):
        self.fps, self.target_fps = float(fps), float(target_fps)
        if not (self.fps > 0 and self.target_fps > 0):
            raise ValueError(f"frame rates must be positive, got {fps} -> {target_fps}")
        self.num_input = 0
        self.num_output = 0
        self._open: dict = {}  # model frame k -> [float64 weighted sum, summed overlap]
        self._last = None  # the last input frame: what a model frame past the input's last interval holds

    def _release(self, k: int) -> torch.Tensor:
        total, weight = self._open.pop(k)
        return (total / weight).float().clamp_(0, 1)

    def push(self, frames: torch.Tensor) -> List[torch.Tensor]:
        done = []
        for frame in frames:
            j = self.num_input
            self.num_input += 1
            self._last = frame
            lo, hi = frame_interval(j, self.fps)
            k = max(0, int(frame_at(lo, self.target_fps)))
            while frame_interval(k, self.target_fps)[0] < hi:
                overlap = float(exposure_overlap(*frame_interval(k, self.target_fps), j, self.fps))
                if overlap > 0:
                    entry = self._open.setdefault(k, [torch.zeros(frame.shape, dtype=torch.float64), 0.0])
                    entry[0].add_(frame, alpha=overlap)
                    entry[1] += overlap
                k += 1
            # a model frame is final once the input has passed its end
            while self.num_output in self._open and frame_interval(self.num_output, self.target_fps)[1] <= hi:
                done.append(self._release(self.num_output))
                self.num_output += 1
        return done

    def finish(self) -> List[torch.Tensor]:
        """The remaining model frames (raises ``ValueError`` for an input shorter than one model frame)."""
        total = model_frame_count(self.num_input, self.fps, self.target_fps)
        done = [self._release(k) if k in self._open else self._last.float().clamp(0, 1) for k in range(self.num_output, total)]
        self.num_output = total
        self._open.clear()
        return done


class PolyphaseStream:
    """Push ``(samples,)`` float32 blocks at ``orig_sr``; get back the samples at ``target_sr`` that are final.

    The concatenated outputs equal ``resample_audio(whole_signal, orig_sr, target_sr)``: same length
    (``ceil(n * target_sr / orig_sr)``) and values up to float32 rounding.
    """

    def __init__(self, orig_sr: int, target_sr: int):
        orig_sr, target_sr = int(orig_sr), int(target_sr)
        g = math.gcd(orig_sr, target_sr)
        self.orig_sr, self.target_sr = orig_sr, target_sr
        self.up, self.down = target_sr // g, orig_sr // g
        # resample_poly's filter reaches 10 * max(up, down) upsampled samples either side; twice that (in input
        # samples) keeps us exact should scipy lengthen it
        self.reach = 2 * (10 * max(self.up, self.down) // self.up + 1)
        self._buffer = np.zeros(0, np.float32)
        self._start = 0  # input index of _buffer[0], a multiple of down
        self._done = 0  # output samples released
        self._seen = 0  # input samples pushed

    def _resample_from_start(self) -> np.ndarray:
        return resample_audio(self._buffer, self.orig_sr, self.target_sr)

    def push(self, block: np.ndarray) -> np.ndarray:
        block = np.asarray(block, np.float32)
        self._seen += block.shape[-1]
        if self.up == self.down:
            return block
        self._buffer = np.concatenate([self._buffer, block])
        # outputs whose filter support ends inside what we have
        final = (self._seen - self.reach) * self.up // self.down
        if final <= self._done:
            return np.zeros(0, np.float32)
        offset = self._start * self.up // self.down  # output index of the block's first output
        out = self._resample_from_start()[self._done - offset:final - offset]
        self._done = final
        # keep from the last multiple of `down` at or before the next output's support
        keep = max(0, (self._done * self.down) // self.up - self.reach)
        keep -= keep % self.down
        if keep > self._start:
            self._buffer = self._buffer[keep - self._start:]
            self._start = keep
        return out

    def finish(self) -> np.ndarray:
        if self.up == self.down or self._buffer.shape[0] == 0:
            return np.zeros(0, np.float32)
        offset = self._start * self.up // self.down
        out = self._resample_from_start()[self._done - offset:]
        self._done += out.shape[0]
        self._buffer = np.zeros(0, np.float32)
        return out
