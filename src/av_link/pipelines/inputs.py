"""User inputs -> model-space tensors: any video to `(B, 3, F, H, W)` in [-1, 1] at the model's frame
rate and resolution; any audio to mono `(B, samples)` at the model's sample rate."""

import os

import numpy as np
import PIL.Image
import torch

from ..utils.media_io import MediaError, as_waveform, resample_audio
from ..utils.media_stream import PrefetchedVideo, decode_audio, decode_video
from ..utils.video_ops import resample_video


def _video_batch(video) -> torch.Tensor:
    """In-memory video -> uint8 or float (B, C, F, H, W) (floats in [0, 1])."""
    if isinstance(video, (list, tuple)) and video and all(isinstance(f, PIL.Image.Image) for f in video):
        video = np.stack([np.asarray(f.convert("RGB")) for f in video])
    if isinstance(video, np.ndarray):
        if video.ndim != 4 or video.shape[-1] not in (1, 3, 4):
            raise ValueError(f"a video array must be (frames, height, width, channels), got shape {video.shape}")
        if video.shape[-1] == 4:
            video = video[..., :3]
        tensor = torch.from_numpy(np.ascontiguousarray(video)).permute(3, 0, 1, 2)[None]
    elif isinstance(video, torch.Tensor):
        if video.ndim != 5:
            raise ValueError(f"a video tensor must be (batch, channels, frames, height, width), got shape {tuple(video.shape)}")
        tensor = video
    else:
        raise ValueError(f"video must be a path, a list of PIL images, an (F, H, W, C) array or a (B, C, F, H, W) tensor, got {type(video).__name__}")
    if tensor.dtype != torch.uint8 and not tensor.is_floating_point():
        raise ValueError(f"video values must be uint8 or float in [0, 1], got dtype {tensor.dtype}")
    if tensor.shape[1] == 1:
        tensor = tensor.expand(-1, 3, -1, -1, -1)
    if tensor.shape[1] != 3:
        raise ValueError(f"video must have 1, 3 or 4 channels, got {tensor.shape[1]}")
    if tensor.is_floating_point():
        if not torch.isfinite(tensor).all():
            raise ValueError("video contains NaN or infinite values")
        if tensor.numel() and (tensor.min() < -1e-3 or tensor.max() > 1 + 1e-3):
            raise ValueError(f"float video values must lie in [0, 1], got [{tensor.min():.3g}, {tensor.max():.3g}]")
    return tensor


def prepare_video(video, fps: float | None, target_fps: float, height: int, width: int) -> tuple[torch.Tensor, float]:
    """Convert to `target_fps` with the exposure-weighted box filter of :mod:`av_link.utils.video_ops` (every
    input instant lands in one model frame, whatever the input's rate), resize to cover and centre-crop to
    (height, width). Returns the video in [-1, 1] and its duration in seconds.

    `fps` is the input's frame rate: a file brings its own (`fps` overrides it); frames in memory need it.
    A file is decoded as a stream (:func:`~av_link.utils.media_stream.decode_video`, the same conversion), so
    its full-resolution frames are never all held.
    """
    if isinstance(video, (str, os.PathLike)):
        decoded = video.result(target_fps, height, width, fps) if isinstance(video, PrefetchedVideo) else None
        frames, seconds = decoded or decode_video(video, target_fps, height, width, fps=fps)
        return frames.transpose(0, 1)[None] * 2 - 1, seconds
    tensor = _video_batch(video)
    if fps is None:
        raise ValueError("pass video_fps= with video frames (an array, tensor or list of images); only a file brings its own rate")
    fps = float(fps)
    if fps <= 0:
        raise ValueError(f"video fps must be positive, got {fps}")
    num_frames = tensor.shape[2]
    if num_frames == 0 or 0 in tensor.shape[3:]:
        raise MediaError("video has no frames (zero-length clip)")
    tensor = torch.stack([resample_video(item.transpose(0, 1), fps, target_fps, height, width).transpose(0, 1)
                          for item in tensor])
    return tensor * 2 - 1, num_frames / fps


def split_inputs(inputs, rates, kind: str) -> list[tuple]:
    """A list of videos (paths, arrays, tensors or lists of images) or audios -> `[(input, rate), ...]`, one per
    entry (a stacked tensor stays one entry); `rates` is one rate for all or one per entry. A list of images
    is one video."""
    if isinstance(inputs, (list, tuple)) and not inputs:
        raise ValueError(f"got an empty list of {kind}s")
    images = kind == "video" and isinstance(inputs, (list, tuple)) and all(isinstance(f, PIL.Image.Image) for f in inputs)
    entries = list(inputs) if isinstance(inputs, (list, tuple)) and not images else [inputs]
    if isinstance(rates, (list, tuple)):
        if len(rates) != len(entries):
            raise ValueError(f"got {len(rates)} rates for {len(entries)} {kind}s: pass one rate, or one per {kind}")
        return list(zip(entries, rates))
    return [(entry, rates) for entry in entries]


def prepare_audio(audio, sample_rate: int | None, target_sr: int, min_samples: int) -> torch.Tensor:
    """Mono `(B, samples)` float32 at `target_sr`. Arrays are `(samples,)`, `(channels, samples)` or
    `(batch, channels, samples)` and need `sample_rate`; a path (wav or any file with an audio track)
    brings its own."""
    if isinstance(audio, (str, os.PathLike)):  # decoded as a stream, mixed and resampled as below
        mono, seconds = decode_audio(audio, target_sr)
        return torch.from_numpy(_long_enough(mono[None], seconds, min_samples, target_sr))
    else:
        if sample_rate is None:
            raise ValueError("pass sample_rate= with an audio array or tensor")
        if isinstance(audio, torch.Tensor):
            audio = audio.detach().cpu().numpy()
        if not isinstance(audio, np.ndarray):
            raise ValueError(f"audio must be a path, an array or a tensor, got {type(audio).__name__}")
        if audio.ndim not in (1, 2, 3):
            raise ValueError(f"audio must be (samples,), (channels, samples) or (batch, channels, samples), got shape {audio.shape}")
        batch = audio.reshape((1,) * (3 - audio.ndim) + audio.shape)
        if batch.shape[-1] == 0:
            raise MediaError("audio has zero samples (zero-length clip)")
        batch = np.stack([as_waveform(item, "audio") for item in batch])  # PCM of any integer type -> float
    if batch.shape[-1] == 0:
        raise MediaError("audio has zero samples (zero-length clip)")
    if not np.isfinite(batch).all():
        raise ValueError("audio contains NaN or infinite values")
    if int(sample_rate) <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    mono = resample_audio(batch.mean(axis=1), int(sample_rate), target_sr)
    return torch.from_numpy(_long_enough(mono, batch.shape[-1] / int(sample_rate), min_samples, target_sr))


def _long_enough(mono: np.ndarray, seconds: float, min_samples: int, target_sr: int) -> np.ndarray:
    if mono.shape[-1] < min_samples:
        raise ValueError(f"audio is {seconds:.4f} s long, shorter than one model frame ({min_samples / target_sr:.4f} s)")
    return np.ascontiguousarray(mono)
