"""Cheap facts about a media file for the dataset scan: one ffmpeg process per file, no decoding (wav headers
without ffmpeg)."""

from __future__ import annotations

import math
import os
import re
import subprocess
from typing import Any, Dict, Optional, Union

__all__ = ["probe_media", "video_seconds", "audio_seconds"]

PathLike = Union[str, os.PathLike]

_STREAM_RE = re.compile(r"^\s*Stream #\d+:\d+\S*: (Video|Audio): (.*)$", re.MULTILINE)
_DURATION_RE = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_FPS_RE = re.compile(r"(\d+(?:\.\d+)?)(k?) (fps|tbr)\b")
_HZ_RE = re.compile(r"(\d+) Hz")
_FRAME_RE = re.compile(r"frame=\s*(\d+)")
_PACKET_ERROR_RE = re.compile(r"partial file|corrupt|invalid data|error", re.IGNORECASE)


def _ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _clean(line: str) -> str:
    return re.sub(r"^(\[[^\]]*\]\s*)+", "", line.strip())


def _parse_fps(desc: str) -> Optional[float]:
    found = {kind: float(value) * (1000 if k else 1) for value, k, kind in _FPS_RE.findall(desc)}
    fps = found.get("fps") or found.get("tbr")
    return fps if fps and math.isfinite(fps) and fps > 0 else None


def _probe_wav(path: str) -> Optional[Dict[str, Any]]:
    from scipy.io import wavfile

    try:
        rate, data = wavfile.read(path, mmap=True)  # header + memory map: no sample is read
        num = int(data.shape[0])
        del data
    except Exception:
        return None  # not a wav scipy can map (24-bit, odd header...): let ffmpeg judge it
    if num == 0 or rate <= 0:
        return dict(error="audio stream has zero samples", video=False, audio=False)
    return dict(error=None, video=False, audio=True, audio_duration=num / float(rate), sample_rate=int(rate))


def probe_media(path: PathLike, verify: str = "packets") -> Dict[str, Any]:
    """Cheap facts about a media file, never raising for a bad file.

    Returns a dict with ``error`` (``None`` or one line), ``video`` / ``audio`` (stream present), ``fps``,
    ``video_frames`` (packet count; ``verify="packets"`` only), ``duration`` (container), ``audio_duration``
    (wav header) and ``sample_rate``. ``verify="decode"`` probes like ``"packets"``; decoding is the dataset's job.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        return dict(error="no such file", video=False, audio=False)
    if not os.access(path, os.R_OK):
        return dict(error="permission denied", video=False, audio=False)
    if os.path.getsize(path) == 0:
        return dict(error="file is empty (0 bytes)", video=False, audio=False)
    if path.lower().endswith((".wav", ".wave")):
        info = _probe_wav(path)
        if info is not None:
            return info
    cmd = [_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", path]
    if verify != "header":
        cmd += ["-map", "0:v:0?", "-map", "0:a:0?", "-c", "copy", "-f", "null", "-"]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
    except subprocess.TimeoutExpired:
        return dict(error="ffmpeg probe timed out", video=False, audio=False)
    text = proc.stderr.decode("utf-8", errors="replace")
    # the input summary comes first; the output summary repeats the stream lines, so cut it off
    head = re.split(r"^Stream mapping:|^Output #0", text, maxsplit=1, flags=re.MULTILINE)[0]
    video = [d for kind, d in _STREAM_RE.findall(head) if kind == "Video" and "(attached pic)" not in d]
    audio = [d for kind, d in _STREAM_RE.findall(head) if kind == "Audio"]
    info: Dict[str, Any] = dict(error=None, video=bool(video), audio=bool(audio))
    if not video and not audio:
        lines = [_clean(line) for line in text.splitlines()]
        errors = [line for line in lines if line and "output file" not in line and not line.startswith("Error opening")]
        info["error"] = errors[-1] if errors else "ffmpeg found no audio or video stream"
        return info
    match = _DURATION_RE.search(head)
    if match:
        h, m, s = match.groups()
        info["duration"] = int(h) * 3600 + int(m) * 60 + float(s)
    if video:
        info["fps"] = _parse_fps(video[0])
    if audio:
        hz = _HZ_RE.search(audio[0])
        info["sample_rate"] = int(hz.group(1)) if hz else None
    if verify != "header":
        tail = text[len(head):]
        bad = [_clean(line) for line in tail.splitlines() if _PACKET_ERROR_RE.search(line)]
        if proc.returncode != 0 or bad:
            info["error"] = bad[0] if bad else f"ffmpeg could not read the packets (exit code {proc.returncode})"
        frames = _FRAME_RE.findall(tail)
        if video and frames:
            info["video_frames"] = int(frames[-1])
    return info


def video_seconds(info: Dict[str, Any]) -> Optional[float]:
    if info.get("video_frames") and info.get("fps"):
        return info["video_frames"] / info["fps"]  # what read_video's frames / fps will give
    return info.get("duration")


def audio_seconds(info: Dict[str, Any]) -> Optional[float]:
    return info.get("audio_duration") or info.get("duration")
