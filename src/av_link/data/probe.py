"""Cheap facts about a media file for the dataset scan, as a dict: a view of :func:`av_link.utils.media_probe.probe`
(one ffmpeg process per file, no decoding; wav headers without ffmpeg)."""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Union

from ..utils.media_probe import probe

__all__ = ["probe_media", "video_seconds", "audio_seconds"]

PathLike = Union[str, os.PathLike]


def probe_media(path: PathLike, verify: str = "packets") -> Dict[str, Any]:
    """Cheap facts about a media file, never raising for a bad file.

    Returns a dict with ``error`` (``None`` or one line), ``video`` / ``audio`` (stream present), ``fps``,
    ``video_frames`` (packet count; ``verify="packets"`` only), ``duration`` (container), ``audio_duration``
    (wav header) and ``sample_rate``. ``verify="decode"`` probes like ``"packets"``; decoding is the dataset's job.
    """
    packets = verify != "header"
    info = probe(path, count_packets=packets)
    error = info.error or (info.packet_error if packets else None)
    out: Dict[str, Any] = dict(error=error, video=info.has_video, audio=info.has_audio)
    if info.audio_samples is not None:  # a wav answered from its header
        out.update(audio_duration=info.duration, sample_rate=info.sample_rate)
        return out
    if not info.has_video and not info.has_audio:
        return out
    if info.duration is not None:
        out["duration"] = info.duration
    if info.has_video:
        out["fps"] = info.fps
    if info.has_audio:
        out["sample_rate"] = info.sample_rate
    if packets and info.video_frames is not None:  # a header probe judges the header alone
        out["video_frames"] = info.video_frames
    return out


def video_seconds(info: Dict[str, Any]) -> Optional[float]:
    if info.get("video_frames") and info.get("fps"):
        return info["video_frames"] / info["fps"]  # what read_video's frames / fps will give
    return info.get("duration")


def audio_seconds(info: Dict[str, Any]) -> Optional[float]:
    return info.get("audio_duration") or info.get("duration")
