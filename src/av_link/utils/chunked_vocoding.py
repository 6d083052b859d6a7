"""Vocoding a long spectrogram in chunks, so decoding memory does not grow with the output's length.

A vocoder run on a whole 5-minute mel holds several full-length STFT-sized tensors at once (Griffin-Lim
keeps its complex spectrum, angles and rebuilt signal: 1.5 GB at 5 minutes), while the generated mel itself
is a few MB. Chunks of `chunk` frames are vocoded with `context` frames of mel on each side, the context is
cut off, and neighbouring chunks are cross-faded over `fade` frames around their shared edge (the two
ramps sum to one). The chunks split the mel evenly, each about `chunk` frames.

- A convolutional vocoder (HiFi-GAN) sees the same receptive field as on the whole mel wherever the
  context covers it, so its chunked output equals the whole-mel output (tested).
- Griffin-Lim estimates phase, so it carries the previous chunk's final phase into the next chunk's
  overlap (`GriffinLimVocoder`): the two chunks agree in the fade instead of cancelling.

Inputs up to `chunk + 2 * context` frames are vocoded whole, as before.
"""

from typing import Callable

import torch

from .heap import release_free_memory

CHUNK_SECONDS = 10.0
CONTEXT_SECONDS = 0.4
FADE_SECONDS = 0.05


def chunk_sizes(frames_per_second: float) -> tuple[int, int, int]:
    """(chunk, context, fade) in frames of a spectrogram at `frames_per_second`."""
    return tuple(max(1, round(s * frames_per_second)) for s in (CHUNK_SECONDS, CONTEXT_SECONDS, FADE_SECONDS))


def vocode_in_chunks(run: Callable[[int, int], torch.Tensor], total: int, hop_length: int, chunk: int, context: int,
                     fade: int) -> torch.Tensor:
    """Waveform `(B, total * hop_length)` from `run(lo, hi)`, the vocoded frames `[lo, hi)` as `(B, (hi - lo) *
    hop_length)`; `run` is called once per chunk, in order, or once with `(0, total)` for a short input."""
    if not (0 <= fade <= context and 2 * context < chunk):
        raise ValueError(f"need 0 <= fade ({fade}) <= context ({context}) and 2 * context < chunk ({chunk})")
    if total <= chunk + 2 * context:
        return run(0, total)
    half = fade * hop_length // 2
    count = max(1, round(total / chunk))  # chunks of equal length (0.67x to 1.5x `chunk`): no stub at the end
    bounds = [round(i * total / count) for i in range(count + 1)]
    out = None
    for start, stop in zip(bounds[:-1], bounds[1:]):
        lo, hi = max(0, start - context), min(total, stop + context)
        wave = run(lo, hi).float().cpu()
        if out is None:
            out = torch.zeros(wave.shape[0], total * hop_length)
        left, right = (half if start > 0 else 0), (half if stop < total else 0)
        a, b = (start - lo) * hop_length - left, (stop - lo) * hop_length + right
        piece = wave[:, a:b].clone()
        if left:
            piece[:, :2 * left] *= torch.linspace(0, 1, 2 * left + 2)[1:-1]
        if right:
            piece[:, -2 * right:] *= torch.linspace(1, 0, 2 * right + 2)[1:-1]
        out[:, start * hop_length - left:stop * hop_length + right] += piece
        del wave, piece
        release_free_memory()  # each chunk's vocoder buffers: memory flat in the input's length (utils/heap.py)
    return out
