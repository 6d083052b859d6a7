"""Media I/O shared by the pipelines, the CLI and the datasets.

Conventions used everywhere in av-link:

- video frames: ``np.uint8`` array ``(F, H, W, 3)``, RGB, plus a float ``fps``;
- audio: ``np.float32`` array ``(channels, samples)`` in ``[-1, 1]``, plus an int ``sample_rate``.

Decoding and encoding go through the ffmpeg binary shipped with ``imageio-ffmpeg`` so nothing depends on a
system ffmpeg. Every user-facing problem (missing file, no such stream, empty clip, NaN/inf) raises
:class:`MediaError` with one line that names the file; writers are atomic (temp file in the destination
directory, then ``os.replace``), so a failed write never leaves a partial file behind.
"""

import os
import re
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from math import gcd
from typing import List, Optional, Tuple, Union

import numpy as np


__all__ = [
    "MediaError",
    "as_waveform",
    "check_input_file",
    "read_video",
    "read_audio",
    "write_wav",
    "write_video",
    "AAC_SAMPLE_RATES",
    "aac_sample_rate",
    "resample_audio",
    "to_mono",
    "has_audio_stream",
    "has_video_stream",
]

PathLike = Union[str, os.PathLike]

# Above this many channels a 2-D waveform is almost certainly (samples, channels), not (channels, samples).
_MAX_CHANNELS = 64


class MediaError(ValueError):
    """A media file or array cannot be used; the message is one line that says which and why."""


def _ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _to_numpy(x) -> np.ndarray:
    # Accept torch tensors without importing torch here.
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _strip_ffmpeg_prefix(line: str) -> str:
    # drop "[out#0/mp4 @ 0x55d...] " context tags, which mean nothing to a user
    return re.sub(r"^(\[[^\]]* @ 0x[0-9a-f]+\]\s*)+", "", line.strip())


def _ffmpeg_reason(stderr: bytes, default: str) -> str:
    # With -loglevel error, ffmpeg's first line is the specific cause; later lines are generic follow-ups.
    for line in stderr.decode("utf-8", errors="replace").splitlines():
        line = _strip_ffmpeg_prefix(line)
        if line:
            return line
    return default


def check_input_file(path: PathLike) -> str:
    """An existing, readable, non-empty regular file, else one-line MediaError."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MediaError(f"{path}: no such file")
    if os.path.isdir(path):
        raise MediaError(f"{path}: is a directory, expected a media file")
    if not os.access(path, os.R_OK):
        raise MediaError(f"{path}: file is not readable (permission denied)")
    if os.path.getsize(path) == 0:
        raise MediaError(f"{path}: file is empty (0 bytes)")
    return path


# ---------------------------------------------------------------------------------------------------------------
# Probing
# ---------------------------------------------------------------------------------------------------------------

# e.g. "  Stream #0:0[0x1](und): Video: h264 (High) ..." / "  Stream #0:1: Audio: aac (LC), 44100 Hz, stereo"
_STREAM_RE = re.compile(r"^\s*Stream #\d+:\d+\S*: (Video|Audio): (.*)$", re.MULTILINE)


@dataclass
class _Probe:
    video: List[str] = field(default_factory=list)
    audio: List[str] = field(default_factory=list)
    error: Optional[str] = None


def _probe(path: str) -> _Probe:
    # `ffmpeg -i FILE` with no output prints the container/stream summary on stderr and exits non-zero;
    # that summary is all we need, so no ffprobe binary is required.
    proc = subprocess.run(
        [_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    text = proc.stderr.decode("utf-8", errors="replace")
    probe = _Probe()
    for kind, desc in _STREAM_RE.findall(text):
        if kind == "Audio":
            probe.audio.append(desc)
        elif "(attached pic)" not in desc:  # cover art in mp3/m4a is not a video
            probe.video.append(desc)
    if not probe.video and not probe.audio:
        # ffmpeg's last line is "At least one output file must be specified" when probing worked; otherwise the
        # last line before it says why the input could not be opened.
        lines = [_strip_ffmpeg_prefix(line) for line in text.splitlines()]
        errors = [line for line in lines if line and "output file" not in line]
        probe.error = errors[-1] if errors else "ffmpeg found no audio or video stream"
    return probe


def has_audio_stream(path: PathLike) -> bool:
    """Whether `path` holds at least one audio stream (`MediaError` only for a missing or empty file)."""
    return bool(_probe(check_input_file(path)).audio)


def has_video_stream(path: PathLike) -> bool:
    """Whether `path` holds at least one video stream; still-image cover art does not count."""
    return bool(_probe(check_input_file(path)).video)


def _unreadable(path: str, probe: _Probe) -> MediaError:
    return MediaError(f"{path}: not a readable audio/video file ({probe.error})")


# ---------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------


def read_video(path: PathLike) -> Tuple[np.ndarray, float]:
    """Decode every frame of the first video stream.

    Returns:
        `(frames, fps)`: `np.uint8` array `(F, H, W, 3)` (RGB) and the stream's frame rate.
    """
    import imageio.v2 as imageio

    path = check_input_file(path)
    probe = _probe(path)
    if not probe.video:
        if probe.audio:
            raise MediaError(f"{path}: has no video stream (only audio)")
        raise _unreadable(path, probe)
    try:
        with imageio.get_reader(path, format="ffmpeg") as reader:
            fps = float(reader.get_meta_data().get("fps", 0.0))
            frames = [np.asarray(frame) for frame in reader]
    except Exception as err:  # imageio/ffmpeg raise assorted types; the user needs one line
        reason = (str(err).strip().splitlines() or [""])[0]
        raise MediaError(f"{path}: could not decode video ({type(err).__name__}: {reason})") from err
    if not frames:
        raise MediaError(f"{path}: video stream has zero frames")
    if not np.isfinite(fps) or fps <= 0:
        raise MediaError(f"{path}: video stream reports no valid frame rate ({fps})")
    video = np.stack(frames).astype(np.uint8, copy=False)
    if video.ndim == 3:  # grayscale decoders
        video = np.repeat(video[..., None], 3, axis=-1)
    return video[..., :3], snap_ntsc_rate(fps)


def snap_ntsc_rate(fps: float) -> float:
    """ffmpeg reports 24000/1001 fps as "23.98" and 30000/1001 as "29.97"; over a 10 s clip the rounded rate
    puts late frames up to 2 ms off. Rates that close to an NTSC n * 1000/1001 are taken as exactly that."""
    n = round(fps * 1.001)
    if n >= 1 and abs(fps - n) > 0.01 and abs(fps - n / 1.001) < 0.006:
        return n / 1.001
    return fps


def _pcm_to_float32(data: np.ndarray) -> np.ndarray:
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    if data.dtype == np.int16:
        return data.astype(np.float32) / 32768.0
    if data.dtype == np.int32:  # scipy left-justifies 24-bit PCM in int32, so one scale fits both
        return (data.astype(np.float64) / 2147483648.0).astype(np.float32)
    if np.issubdtype(data.dtype, np.floating):
        return data.astype(np.float32, copy=False)
    raise MediaError(f"unsupported PCM sample type {data.dtype}")


def _read_wav_scipy(path: str) -> Optional[Tuple[np.ndarray, int]]:
    from scipy.io import wavfile

    try:
        sample_rate, data = wavfile.read(path, mmap=False)
    except Exception:
        return None  # not a plain RIFF/WAVE that scipy understands; let ffmpeg try
    data = _pcm_to_float32(data)
    waveform = data[None, :] if data.ndim == 1 else data.T
    return np.ascontiguousarray(waveform), int(sample_rate)


def _decode_audio_ffmpeg(path: str) -> Tuple[np.ndarray, int]:
    # ffmpeg writes a float WAV whose header carries the native channel count and rate exactly, which avoids
    # parsing channel-layout names ("5.1(side)", "hexagonal", ...) out of ffmpeg's log.
    with tempfile.TemporaryDirectory(prefix="av_link_audio_") as tmp:
        out = os.path.join(tmp, "decoded.wav")
        cmd = [_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", path]
        cmd += ["-map", "0:a:0", "-vn", "-sn", "-dn", "-c:a", "pcm_f32le", "-f", "wav", out]
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if proc.returncode != 0 or not os.path.exists(out):
            raise MediaError(f"{path}: could not decode audio ({_ffmpeg_reason(proc.stderr, 'ffmpeg failed')})")
        decoded = _read_wav_scipy(out)
    if decoded is None:
        raise MediaError(f"{path}: could not decode audio (ffmpeg output unreadable)")
    return decoded


def read_audio(path: PathLike) -> Tuple[np.ndarray, int]:
    """Read the first audio stream of a wav file or any container ffmpeg understands (mp4, mkv, flac, ...).

    Returns:
        `(waveform, sample_rate)`: `np.float32` array `(channels, samples)` at the file's native rate and channels.
    """
    path = check_input_file(path)
    decoded = _read_wav_scipy(path) if path.lower().endswith((".wav", ".wave")) else None
    if decoded is None:
        probe = _probe(path)
        if not probe.audio:
            if probe.video:
                raise MediaError(f"{path}: has no audio stream (video only)")
            raise _unreadable(path, probe)
        decoded = _decode_audio_ffmpeg(path)
    waveform, sample_rate = decoded
    if waveform.shape[-1] == 0:
        raise MediaError(f"{path}: audio stream has zero samples")
    if not np.isfinite(waveform).all():
        raise MediaError(f"{path}: audio contains NaN or infinite samples")
    return waveform, sample_rate


# ---------------------------------------------------------------------------------------------------------------
# Array helpers
# ---------------------------------------------------------------------------------------------------------------


def as_waveform(waveform, what: str = "waveform") -> np.ndarray:
    """Validate and return a float32 `(channels, samples)` array."""
    wav = _to_numpy(waveform)
    if wav.ndim == 1:
        wav = wav[None, :]
    if wav.ndim != 2:
        raise MediaError(f"{what} must have shape (samples,) or (channels, samples), got {tuple(wav.shape)}")
    if wav.shape[0] > _MAX_CHANNELS:
        raise MediaError(
            f"{what} has shape {tuple(wav.shape)}: expected (channels, samples); transpose a (samples, channels) array"
        )
    if wav.shape[1] == 0:
        raise MediaError(f"{what} has zero samples")
    if np.issubdtype(wav.dtype, np.integer):
        wav = _pcm_to_float32(wav)
    wav = wav.astype(np.float32, copy=False)
    if not np.isfinite(wav).all():
        raise MediaError(f"{what} contains NaN or infinite values")
    return wav


def to_mono(waveform):
    """Average the channel axis of `(channels, samples)` (numpy or torch); a 1-D input is returned as is."""
    if waveform.ndim == 1:
        return waveform
    return waveform.mean(0) if hasattr(waveform, "detach") else np.asarray(waveform).mean(axis=0)


def resample_audio(waveform, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited polyphase resampling along the last axis of `(..., samples)`.

    The output has `ceil(samples * target_sr / orig_sr)` samples (`scipy.signal.resample_poly`'s length).
    """
    from scipy.signal import resample_poly

    orig_sr, target_sr = int(orig_sr), int(target_sr)
    if orig_sr <= 0 or target_sr <= 0:
        raise MediaError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    wav = _to_numpy(waveform)
    if orig_sr == target_sr:
        return wav.astype(np.float32, copy=False)
    g = gcd(orig_sr, target_sr)
    return resample_poly(wav, target_sr // g, orig_sr // g, axis=-1).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------


@contextmanager
def _atomic_destination(path: PathLike):
    """Yield a temp path beside `path` (same suffix, so ffmpeg picks the same muxer); publish it on success."""
    path = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(path)
    if not os.path.isdir(directory):
        raise MediaError(f"{path}: destination directory does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=os.path.splitext(name)[1] or ".tmp", dir=directory)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; published files follow the umask like any other
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _write_wav_file(path: str, wav: np.ndarray, sample_rate: int) -> None:
    from scipy.io import wavfile

    pcm = np.round(np.clip(wav, -1.0, 1.0) * 32767.0).astype(np.int16)
    wavfile.write(path, int(sample_rate), np.ascontiguousarray(pcm.T if pcm.shape[0] > 1 else pcm[0]))


def write_wav(path: PathLike, waveform, sample_rate: int) -> None:
    """Write `(samples,)` or `(channels, samples)` float audio (numpy or torch) as 16-bit PCM, clipping to [-1, 1]."""
    wav = as_waveform(waveform)
    if int(sample_rate) <= 0:
        raise MediaError(f"sample_rate must be positive, got {sample_rate}")
    with _atomic_destination(path) as tmp:
        _write_wav_file(tmp, wav, sample_rate)


def _as_frames(frames) -> np.ndarray:
    video = _to_numpy(frames)
    if video.ndim == 3:  # (F, H, W) grayscale
        video = video[..., None]
    if video.ndim != 4 or video.shape[-1] not in (1, 3, 4):
        raise MediaError(f"frames must have shape (F, H, W, 3), got {tuple(video.shape)}")
    if 0 in video.shape[:3]:
        raise MediaError(f"frames have a zero-length axis: {tuple(video.shape)}")
    if video.dtype != np.uint8:
        if np.issubdtype(video.dtype, np.integer):
            raise MediaError(f"integer frames must be uint8, got {video.dtype}")
        video = video.astype(np.float32, copy=False)
        if not np.isfinite(video).all():
            raise MediaError("frames contain NaN or infinite values")
        video = np.round(np.clip(video, 0.0, 1.0) * 255.0).astype(np.uint8)
    if video.shape[-1] == 1:
        video = np.repeat(video, 3, axis=-1)
    return np.ascontiguousarray(video[..., :3])


def _pad_to_even(video: np.ndarray) -> np.ndarray:
    # yuv420p subsamples chroma 2x2, so libx264 needs even sizes; replicate the last row/column rather than
    # rescale, so the original pixels survive unchanged in the top-left corner.
    pad_h, pad_w = video.shape[1] % 2, video.shape[2] % 2
    if pad_h or pad_w:
        video = np.pad(video, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return np.ascontiguousarray(video)


# The rates AAC can carry (MPEG-4's sampling-frequency table). ffmpeg resamples any other rate by itself, but when
# the rate is so low that its resampler yields nothing (e.g. 8 Hz) it drops the audio stream and still exits 0.
AAC_SAMPLE_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)


def aac_sample_rate(sample_rate: int) -> int:
    """The rate :func:`write_video` muxes audio of `sample_rate` at: the lowest AAC rate at or above it (96 kHz at most)."""
    return next((rate for rate in AAC_SAMPLE_RATES if rate >= int(sample_rate)), AAC_SAMPLE_RATES[-1])


def write_video(
    path: PathLike,
    frames,
    fps: float,
    audio=None,
    sample_rate: Optional[int] = None,
    crf: int = 18,
    lossless: bool = False,
) -> None:
    """Encode frames to H.264 (yuv420p) and optionally mux audio as AAC.

    Args:
        frames: `uint8` `(F, H, W, 3)`, or float in `[0, 1]` (numpy or torch). Odd heights/widths are padded
            by one replicated row/column because yuv420p needs even sizes.
        fps: frame rate (any positive float; stored as an exact-enough rational).
        audio: optional `(samples,)` or `(channels, samples)` float waveform; needs `sample_rate`. A rate AAC cannot
            carry is resampled to :func:`aac_sample_rate` first; an output without the audio stream raises.
        crf: libx264 quality (lower is better; 18 is visually lossless for most content).
        lossless: full-resolution colour (yuv444p) at crf 0, for data whose pixels are ground truth
            (SynthHits); any size.
    """
    video = _as_frames(frames)
    if not lossless:
        video = _pad_to_even(video)
    fps = float(fps)
    if not np.isfinite(fps) or fps <= 0:
        raise MediaError(f"fps must be a positive number, got {fps}")
    wav = None
    if audio is not None:
        if sample_rate is None or int(sample_rate) <= 0:
            raise MediaError("write_video: audio was given without a positive sample_rate")
        wav = as_waveform(audio, "audio")
        if aac_sample_rate(sample_rate) != int(sample_rate):
            wav = resample_audio(wav, sample_rate, aac_sample_rate(sample_rate))
            sample_rate = aac_sample_rate(sample_rate)
        wav = np.clip(wav, -1.0, 1.0)  # as write_wav does: AAC would keep overshoots
    rate = Fraction(fps).limit_denominator(1001000)
    num_frames, height, width, _ = video.shape

    with _atomic_destination(path) as tmp, tempfile.TemporaryDirectory(prefix="av_link_mux_") as work:
        cmd = [_ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(rate), "-i", "-"]
        if wav is not None:
            wav_path = os.path.join(work, "audio.wav")
            # float WAV keeps full precision until the AAC encoder
            from scipy.io import wavfile

            wavfile.write(wav_path, int(sample_rate), np.ascontiguousarray(wav.T if wav.shape[0] > 1 else wav[0]))
            cmd += ["-i", wav_path, "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", "192k"]
        pix_fmt, crf = ("yuv444p", 0) if lossless else ("yuv420p", int(crf))
        cmd += ["-c:v", "libx264", "-pix_fmt", pix_fmt, "-crf", str(crf), "-preset", "medium"]
        if tmp.lower().endswith((".mp4", ".m4v", ".mov")):
            cmd += ["-movflags", "+faststart"]
        cmd.append(tmp)
        proc = subprocess.run(cmd, input=video.tobytes(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            reason = _ffmpeg_reason(proc.stderr, f"exit code {proc.returncode}").replace(tmp, os.fspath(path))
            raise MediaError(f"{os.fspath(path)}: ffmpeg could not encode {num_frames} frames ({reason})")
        if wav is not None and not _probe(tmp).audio:  # never publish a video that silently lost its sound
            raise MediaError(f"{os.fspath(path)}: ffmpeg wrote no audio stream ({wav.shape[1]} samples at {sample_rate} Hz)")
