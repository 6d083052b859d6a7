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
import subprocess
import tempfile
from contextlib import contextmanager
from fractions import Fraction
from math import gcd
from typing import List, Optional, Tuple, Union

import numpy as np

from .media_probe import ffmpeg_exe, ffmpeg_reason, probe


__all__ = [
    "MediaError",
    "as_waveform",
    "check_input_file",
    "read_video",
    "read_audio",
    "write_wav",
    "write_video",
    "mux_audio",
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


def _to_numpy(x) -> np.ndarray:
    # Accept torch tensors without importing torch here.
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


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

def has_audio_stream(path: PathLike) -> bool:
    """Whether `path` holds at least one audio stream (`MediaError` only for a missing or empty file)."""
    return probe(check_input_file(path)).has_audio


def has_video_stream(path: PathLike) -> bool:
    """Whether `path` holds at least one video stream; still-image cover art does not count."""
    return probe(check_input_file(path)).has_video


# ---------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------


def read_video(path: PathLike) -> Tuple[np.ndarray, float]:
    """Decode every frame of the video stream into memory (see :mod:`av_link.utils.media_stream` to decode at a
    model's rate and size without holding the clip).

    Returns:
        `(frames, fps)`: `np.uint8` array `(F, H, W, 3)` (RGB) and the stream's frame rate.
    """
    from .media_stream import iter_video_frames, open_video

    _, fps = open_video(path)
    return np.concatenate(list(iter_video_frames(path))), fps


def snap_ntsc_rate(fps: float) -> float:
    """ffmpeg reports 24000/1001 fps as "23.98" and 30000/1001 as "29.97"; over a 10 s clip the rounded rate
    puts late frames up to 2 ms off. Rates that close to an NTSC n * 1000/1001 are taken as exactly that."""
    n = round(fps * 1.001)
    if n >= 1 and abs(fps - n) > 0.01 and abs(fps - n / 1.001) < 0.006:
        return n / 1.001
    return fps


def pcm_to_float32(data: np.ndarray) -> np.ndarray:
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    if data.dtype == np.int16:
        return data.astype(np.float32) / 32768.0
    if data.dtype == np.int32:  # scipy left-justifies 24-bit PCM in int32, so one scale fits both
        return (data.astype(np.float64) / 2147483648.0).astype(np.float32)
    if np.issubdtype(data.dtype, np.floating):
        return data.astype(np.float32, copy=False)
    raise MediaError(f"unsupported PCM sample type {data.dtype}")


def read_audio(path: PathLike) -> Tuple[np.ndarray, int]:
    """Read the first audio stream of a wav file or any container ffmpeg understands (mp4, mkv, flac, ...).

    Returns:
        `(waveform, sample_rate)`: `np.float32` array `(channels, samples)` at the file's native rate and channels.
    """
    from .media_stream import AudioReader

    with AudioReader(path) as reader:
        return np.concatenate(list(reader.blocks()), axis=1), reader.sample_rate


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
        wav = pcm_to_float32(wav)
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
    rate = Fraction(fps).limit_denominator(1001000)
    num_frames, height, width, _ = video.shape
    pix_fmt, crf = ("yuv444p", 0) if lossless else ("yuv420p", int(crf))
    source = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(rate), "-i", "-"]
    codec = ["-c:v", "libx264", "-pix_fmt", pix_fmt, "-crf", str(crf), "-preset", "medium"]
    _ffmpeg_write(path, source, codec, audio, sample_rate, f"encode {num_frames} frames", stdin=video.tobytes())


def _aac_ready(audio, sample_rate) -> Tuple[np.ndarray, int]:
    """Validated float audio at a rate AAC carries, clipped to [-1, 1] as write_wav does (AAC would keep overshoots)."""
    if sample_rate is None or int(sample_rate) <= 0:
        raise MediaError("write_video: audio was given without a positive sample_rate")
    wav, sample_rate = as_waveform(audio, "audio"), int(sample_rate)
    if aac_sample_rate(sample_rate) != sample_rate:
        wav = resample_audio(wav, sample_rate, aac_sample_rate(sample_rate))
        sample_rate = aac_sample_rate(sample_rate)
    return np.clip(wav, -1.0, 1.0), sample_rate


def _ffmpeg_write(path: PathLike, source: List[str], codec: List[str], audio, sample_rate, what: str,
                  stdin: Optional[bytes] = None) -> None:
    """The one ffmpeg writer: video input 0 (`source`, encoded or copied as `codec` says) plus optional audio as
    AAC, published atomically; an output that lost its audio stream is never published."""
    wav = None
    if audio is not None:
        wav, sample_rate = _aac_ready(audio, sample_rate)
    with _atomic_destination(path) as tmp, tempfile.TemporaryDirectory(prefix="av_link_mux_") as work:
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"] + source
        if wav is not None:
            wav_path = os.path.join(work, "audio.wav")
            # float WAV keeps full precision until the AAC encoder
            from scipy.io import wavfile

            wavfile.write(wav_path, int(sample_rate), np.ascontiguousarray(wav.T if wav.shape[0] > 1 else wav[0]))
            cmd += ["-i", wav_path, "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", "192k"]
        cmd += codec
        if tmp.lower().endswith((".mp4", ".m4v", ".mov")):
            cmd += ["-movflags", "+faststart"]
        cmd.append(tmp)
        proc = subprocess.run(cmd, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            reason = ffmpeg_reason(proc.stderr, f"exit code {proc.returncode}").replace(tmp, os.fspath(path))
            raise MediaError(f"{os.fspath(path)}: ffmpeg could not {what} ({reason})")
        if wav is not None and not probe(tmp).has_audio:  # never publish a video that silently lost its sound
            raise MediaError(f"{os.fspath(path)}: ffmpeg wrote no audio stream ({wav.shape[1]} samples at {sample_rate} Hz)")


# Video codecs that players expect in each container; ffmpeg will mux more (e.g. FFV1 into mp4) but the file then
# plays almost nowhere. Containers not listed (Matroska) take whatever ffmpeg accepts.
_PLAYABLE_CODECS = {
    ".mp4": {"h264", "hevc", "av1", "vp9", "mpeg4"},
    ".m4v": {"h264", "hevc", "av1", "vp9", "mpeg4"},
    ".mov": {"h264", "hevc", "av1", "mpeg4", "prores", "mjpeg", "mpeg2video", "dnxhd"},
}


def mux_audio(path: PathLike, video_path: PathLike, audio, sample_rate: int, crf: int = 18) -> str:
    """Write `video_path`'s video stream with `audio` (muxed as AAC, like :func:`write_video`) to `path`.

    The video stream is copied, packets untouched (no re-encode, so no quality loss and no decoding); only when
    the output container cannot carry the input's codec (not playable there, or ffmpeg refuses it) is it
    re-encoded to H.264 like :func:`write_video` (odd sizes padded by a replicated row/column).
    Returns ``"copy"`` or ``"encode"``.
    """
    from .media_stream import open_video

    video_path = os.fspath(video_path)
    info, _ = open_video(video_path)
    source = ["-i", video_path]
    playable = _PLAYABLE_CODECS.get(os.path.splitext(os.fspath(path))[1].lower())
    if playable is None or info.video_codec in playable:
        try:
            _ffmpeg_write(path, source, ["-c:v", "copy"], audio, sample_rate, f"copy the {info.video_codec} video stream")
            return "copy"
        except MediaError as err:
            if "could not copy" not in str(err):
                raise
    pad_h, pad_w = (info.height or 0) % 2, (info.width or 0) % 2
    codec = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(int(crf)), "-preset", "medium"]
    if pad_h or pad_w:
        codec += ["-vf", f"pad=iw+{pad_w}:ih+{pad_h},fillborders=right={pad_w}:bottom={pad_h}:mode=smear"]
    _ffmpeg_write(path, source, codec, audio, sample_rate, f"re-encode the {info.video_codec} video stream")
    return "encode"
