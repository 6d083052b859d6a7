"""The one media prober of av-link: what streams a file holds, at what rate, size and codec.

Every reader, writer and the dataset scan ask :func:`probe` instead of running their own ffmpeg and parsing its
log. It runs ``ffmpeg -i FILE`` (the ffmpeg shipped with ``imageio-ffmpeg``; no ffprobe binary is needed), whose
stream summary is all we need; with ``count_packets`` it also copies every packet to the null muxer, which counts
the video frames and finds truncated or corrupt files without decoding. A plain wav is answered from its header.

Results are cached per (path, size, mtime), so a file is probed once per process however many readers ask
(the dataset scan, the decoders, the muxer).
"""

import math
import os
import re
import subprocess
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Optional, Tuple, Union

__all__ = ["MediaInfo", "probe", "ffmpeg_exe", "ffmpeg_reason", "strip_ffmpeg_prefix"]

PathLike = Union[str, os.PathLike]

# e.g. "  Stream #0:0[0x1](und): Video: h264 (High) ..." / "  Stream #0:1: Audio: aac (LC), 44100 Hz, stereo"
_STREAM_RE = re.compile(r"^\s*Stream #\d+:\d+\S*: (Video|Audio): (.*)$", re.MULTILINE)
_DURATION_RE = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_FPS_RE = re.compile(r"(\d+(?:\.\d+)?)(k?) (fps|tbr)\b")
_SIZE_RE = re.compile(r" (\d+)x(\d+)[, \[]")
_HZ_RE = re.compile(r"(\d+) Hz")
_FRAME_RE = re.compile(r"frame=\s*(\d+)")
_PACKET_ERROR_RE = re.compile(r"partial file|corrupt|invalid data|error", re.IGNORECASE)


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def strip_ffmpeg_prefix(line: str) -> str:
    """Drop "[mov,mp4 @ 0x55d...] " context tags, which mean nothing to a user."""
    return re.sub(r"^(\[[^\]]*\]\s*)+", "", line.strip())


def ffmpeg_reason(stderr: bytes, default: str) -> str:
    """With -loglevel error, ffmpeg's first line is the specific cause; later lines are generic follow-ups."""
    for line in stderr.decode("utf-8", errors="replace").splitlines():
        line = strip_ffmpeg_prefix(line)
        if line:
            return line
    return default


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` found. ``error`` is ``None`` or one line; the stream descriptions are ffmpeg's."""

    path: str
    error: Optional[str] = None
    video_streams: Tuple[str, ...] = ()
    audio_streams: Tuple[str, ...] = ()
    duration: Optional[float] = None  # container duration, seconds
    fps: Optional[float] = None
    width: Optional[int] = None  # coded size of the first video stream (before any rotation)
    height: Optional[int] = None
    video_codec: Optional[str] = None
    sample_rate: Optional[int] = None
    audio_codec: Optional[str] = None
    audio_samples: Optional[int] = None  # wav header only
    video_frames: Optional[int] = None  # packet count, with count_packets only
    packet_error: Optional[str] = None  # a truncated or corrupt packet, with count_packets only

    @property
    def has_video(self) -> bool:
        return bool(self.video_streams)

    @property
    def has_audio(self) -> bool:
        return bool(self.audio_streams)


def _parse_fps(desc: str) -> Optional[float]:
    found = {kind: float(value) * (1000 if k else 1) for value, k, kind in _FPS_RE.findall(desc)}
    fps = found.get("fps") or found.get("tbr")
    return fps if fps and math.isfinite(fps) and fps > 0 else None


def _codec(desc: str) -> str:
    return desc.split(" ", 1)[0].rstrip(",")


def _probe_wav(path: str) -> Optional[MediaInfo]:
    from scipy.io import wavfile

    try:
        rate, data = wavfile.read(path, mmap=True)  # header + memory map: no sample is read
        num = int(data.shape[0])
        del data
    except Exception:
        return None  # not a wav scipy can map (24-bit, odd header...): let ffmpeg judge it
    if num == 0 or rate <= 0:
        return MediaInfo(path, error="audio stream has zero samples")
    return MediaInfo(path, audio_streams=("pcm (wav header)",), duration=num / float(rate), sample_rate=int(rate),
                     audio_codec="pcm", audio_samples=num)


def _probe_ffmpeg(path: str, count_packets: bool) -> MediaInfo:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", path]
    if count_packets:
        cmd += ["-map", "0:v:0?", "-map", "0:a:0?", "-c", "copy", "-f", "null", "-"]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
    except subprocess.TimeoutExpired:
        return MediaInfo(path, error="ffmpeg probe timed out")
    text = proc.stderr.decode("utf-8", errors="replace")
    # the input summary comes first; an output summary would repeat the stream lines, so cut it off
    head = re.split(r"^Stream mapping:|^Output #0", text, maxsplit=1, flags=re.MULTILINE)[0]
    video = tuple(d for kind, d in _STREAM_RE.findall(head) if kind == "Video" and "(attached pic)" not in d)
    audio = tuple(d for kind, d in _STREAM_RE.findall(head) if kind == "Audio")  # cover art above is no video
    if not video and not audio:
        # without an output ffmpeg's last line is "At least one output file must be specified"; the line
        # before it says why the input could not be opened
        lines = [strip_ffmpeg_prefix(line) for line in text.splitlines()]
        errors = [line for line in lines if line and "output file" not in line and not line.startswith("Error opening")]
        return MediaInfo(path, error=errors[-1] if errors else "ffmpeg found no audio or video stream")
    fields = dict(video_streams=video, audio_streams=audio)
    match = _DURATION_RE.search(head)
    if match:
        h, m, s = match.groups()
        fields["duration"] = int(h) * 3600 + int(m) * 60 + float(s)
    if video:
        size = _SIZE_RE.search(video[0])
        fields.update(fps=_parse_fps(video[0]), video_codec=_codec(video[0]))
        if size:
            fields.update(width=int(size.group(1)), height=int(size.group(2)))
    if audio:
        hz = _HZ_RE.search(audio[0])
        fields.update(sample_rate=int(hz.group(1)) if hz else None, audio_codec=_codec(audio[0]))
    if count_packets:
        tail = text[len(head):]
        bad = [strip_ffmpeg_prefix(line) for line in tail.splitlines() if _PACKET_ERROR_RE.search(line)]
        if proc.returncode != 0 or bad:
            fields["packet_error"] = bad[0] if bad else f"ffmpeg could not read the packets (exit code {proc.returncode})"
        frames = _FRAME_RE.findall(tail)
        if video and frames:
            fields["video_frames"] = int(frames[-1])
    return MediaInfo(path, **fields)


_CACHE: "OrderedDict[tuple, tuple]" = OrderedDict()  # key -> (info, packets counted)
_CACHE_SIZE = 256
_LOCK = threading.Lock()  # the dataset scan probes from a thread pool


def probe(path: PathLike, count_packets: bool = False) -> MediaInfo:
    """Probe `path` once (cached until the file changes); never raises for a bad file: see ``error``.

    A probe that counted packets also answers later plain probes; a plain one is redone to count them.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        return MediaInfo(path, error="no such file")
    if not os.access(path, os.R_OK):
        return MediaInfo(path, error="permission denied")
    stat = os.stat(path)
    if stat.st_size == 0:
        return MediaInfo(path, error="file is empty (0 bytes)")
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    with _LOCK:
        cached = _CACHE.get(key)
    if cached is not None and (cached[1] or not count_packets):
        return replace(cached[0], path=path)
    info = _probe_wav(path) if path.lower().endswith((".wav", ".wave")) else None
    if info is None:
        info = _probe_ffmpeg(path, count_packets)
    with _LOCK:
        _CACHE[key] = (info, count_packets or info.audio_samples is not None)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return info
