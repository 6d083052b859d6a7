"""Streaming decode: media files to the model's frame rate, size and sample rate without holding the input.

Video goes through ``imageio_ffmpeg.read_frames``: the ffmpeg shipped with ``imageio-ffmpeg`` decodes to raw RGB
on a pipe and we read it a few frames at a time. PyAV is not a dependency of av-link, and ffmpeg's own ``fps``
and ``scale`` filters would not reproduce the models' input conversion (``fps`` picks frames, the models were
trained on an exposure-weighted box filter; ``scale`` is not torch's antialiased bilinear). So ffmpeg only
decodes, and each chunk is resized as :func:`~av_link.utils.video_ops.resize_cover_crop` does (through
:func:`~av_link.utils.video_ops.cover_crop_weights`, the same weights as two matrix products) and box-filtered in
time by :class:`~av_link.utils.stream_resample.BoxFilterStream` as it arrives: the result is
:func:`~av_link.utils.video_ops.resample_video` of the fully decoded clip (resize first, then the time
filter, as there), while at most one chunk of full-resolution frames exists at a time.

Audio is decoded by the same ffmpeg to float32 WAV on a pipe (a plain wav is memory-mapped instead) and read in
blocks; :func:`decode_audio` mixes each block to mono and resamples it with
:class:`~av_link.utils.stream_resample.PolyphaseStream`, the pipelines' ``prepare_audio`` order.

Each file is probed once (:func:`av_link.utils.media_probe.probe` caches), and every problem is a one-line
:class:`~av_link.utils.media_io.MediaError` naming the file.
"""

import math
import os
import struct
import subprocess
import tempfile
import threading
from typing import Iterator, Optional, Tuple

import numpy as np

from .heap import release_free_memory
from .media_io import MediaError, check_input_file, pcm_to_float32, snap_ntsc_rate
from .media_probe import MediaInfo, ffmpeg_exe, ffmpeg_reason, probe

__all__ = ["open_video", "iter_video_frames", "decode_video", "PrefetchedVideo", "AudioReader", "decode_audio"]

# Full-resolution frames decoded and resized together: enough to amortise torch's per-call cost, few enough
# that a 4K chunk stays around 100 MB as uint8.
VIDEO_CHUNK = 4
TRIM_EVERY_CHUNKS = 16  # decoded chunks between returns of freed heap memory (64 frames: a few MB of 720p each)
AUDIO_BLOCK_SECONDS = 4.0


def _unreadable(path: str, info: MediaInfo) -> MediaError:
    return MediaError(f"{path}: not a readable audio/video file ({info.error})")


def open_video(path) -> Tuple[MediaInfo, float]:
    """Check that `path` has a video stream with a frame rate; -> (probe, fps). Cheap: no frame is decoded."""
    path = check_input_file(path)
    info = probe(path)
    if not info.has_video:
        if info.has_audio:
            raise MediaError(f"{path}: has no video stream (only audio)")
        raise _unreadable(path, info)
    if not info.fps or not math.isfinite(info.fps):
        raise MediaError(f"{path}: video stream reports no valid frame rate ({info.fps})")
    return info, snap_ntsc_rate(info.fps)


def iter_video_frames(path, chunk: int = VIDEO_CHUNK) -> Iterator[np.ndarray]:
    """Decoded frames of the video stream as uint8 ``(n, H, W, 3)`` RGB chunks of at most `chunk` frames."""
    import imageio_ffmpeg

    path = os.fspath(path)
    reader = imageio_ffmpeg.read_frames(path, pix_fmt="rgb24")
    count = 0
    try:
        width, height = next(reader)["size"]  # the size on the pipe, after any rotation
        batch = []
        for raw in reader:
            batch.append(np.frombuffer(raw, np.uint8).reshape(height, width, 3))
            if len(batch) == chunk:
                count += len(batch)
                yield np.stack(batch)
                batch = []
        if batch:
            count += len(batch)
            yield np.stack(batch)
    except (OSError, RuntimeError, StopIteration, KeyError, ValueError) as err:
        reason = (str(err).strip().splitlines() or [""])[0]
        raise MediaError(f"{path}: could not decode video ({type(err).__name__}: {reason})") from err
    finally:
        reader.close()  # stops ffmpeg when the consumer stops early
    if count == 0:
        raise MediaError(f"{path}: video stream has zero frames")


def decode_video(path, target_fps: float, height: int, width: int, fps: Optional[float] = None,
                 chunk: int = VIDEO_CHUNK):
    """A video file at the model's rate and size, decoded as a stream.

    Returns ``(frames, seconds)``: float ``(F, 3, height, width)`` in [0, 1] equal to
    ``resample_video(all_frames, fps, target_fps, height, width)``, and the input's duration
    ``num_frames / fps``. `fps` overrides the file's rate.
    """
    import scipy.sparse
    import torch

    from .stream_resample import BoxFilterStream
    from .video_ops import cover_crop_weights

    _, file_fps = open_video(path)
    fps = float(fps) if fps is not None else file_fps
    stream = BoxFilterStream(fps, target_fps)
    out, weights = [], None
    for i, frames in enumerate(iter_video_frames(path, chunk)):
        if i % TRIM_EVERY_CHUNKS == 0:  # memory flat in the input's length (see utils/heap.py)
            release_free_memory()
        n, h, w, _ = frames.shape
        if weights is None:  # resize_cover_crop as two products (see cover_crop_weights), /255 folded in
            rows, cols = cover_crop_weights(h, w, height, width)
            # the row weights are a narrow band: sparse, straight from uint8, is the cheapest pass over the frame
            weights = scipy.sparse.csr_matrix((rows / 255).numpy()), cols
        small = np.stack([weights[0] @ frame.reshape(h, w * 3) for frame in frames]).reshape(n, height, w, 3)
        small = torch.einsum("nywc,xw->ncyx", torch.from_numpy(small), weights[1]).clamp_(0, 1)
        out += stream.push(small)
    out += stream.finish()
    frames = torch.stack(out)
    del out
    release_free_memory()
    return frames, stream.num_input / fps


class PrefetchedVideo(os.PathLike):
    """A video file being decoded by :func:`decode_video` in a background thread, started before it is needed.

    It is a path (``os.fspath`` gives the file), so anything that takes a path takes it; the pipelines' video
    preparation uses the decoded frames when they were decoded for its rate and size, and decodes the file again
    otherwise. The CLI starts one before importing torch and diffusers and loading the model, which then overlap the
    decode (the ffmpeg process and the GIL-free resampling run beside them). An error of the decode is raised where
    the frames are asked for.
    """

    def __init__(self, path, target_fps: float, height: int, width: int, fps: Optional[float] = None):
        self.path = os.fspath(path)
        self.geometry = (float(target_fps), int(height), int(width), None if fps is None else float(fps))
        self._result, self._error = None, None
        self._thread = threading.Thread(target=self._decode, name="av-link-prefetch", daemon=True)
        self._thread.start()

    def _decode(self) -> None:
        target_fps, height, width, fps = self.geometry
        try:
            self._result = decode_video(self.path, target_fps, height, width, fps=fps)
        except BaseException as err:  # handed to the consumer's thread
            self._error = err

    def __fspath__(self) -> str:
        return self.path

    def __str__(self) -> str:
        return self.path

    def __repr__(self) -> str:
        return f"PrefetchedVideo({self.path!r})"

    def result(self, target_fps: float, height: int, width: int, fps: Optional[float] = None):
        """``decode_video``'s ``(frames, seconds)`` if the file was decoded for this geometry (waiting for the decode
        to end), else None. The frames are handed over once: a second call returns None."""
        if (float(target_fps), int(height), int(width), None if fps is None else float(fps)) != self.geometry:
            return None
        self._thread.join()
        if self._error is not None:
            raise self._error
        result, self._result = self._result, None
        return result


class AudioReader:
    """The first audio stream of a file, in float32 ``(channels, n)`` blocks at its native rate.

    ``sample_rate`` and ``channels`` are known once opened; iterate for the blocks; use as a context manager
    (or call ``close``) so ffmpeg stops when reading stops early.
    """

    def __init__(self, path, block_seconds: float = AUDIO_BLOCK_SECONDS):
        self.path = check_input_file(path)
        self.block_seconds = float(block_seconds)
        self._wav = self._proc = self._stderr = None
        if self.path.lower().endswith((".wav", ".wave")):
            self._open_wav()
        if self._wav is None:
            info = probe(self.path)
            if not info.has_audio:
                if info.has_video:
                    raise MediaError(f"{self.path}: has no audio stream (video only)")
                raise _unreadable(self.path, info)
            self._open_ffmpeg()

    def _open_wav(self) -> None:
        from scipy.io import wavfile

        try:  # header + memory map: samples are paged in block by block
            rate, data = wavfile.read(self.path, mmap=True)
        except Exception:
            return  # 24-bit, odd headers...: ffmpeg decodes those
        self._wav = data if data.ndim == 2 else data[:, None]
        self.sample_rate, self.channels = int(rate), int(self._wav.shape[1])

    def _open_ffmpeg(self) -> None:
        # a float WAV header carries the native channel count and rate exactly, which avoids parsing channel-layout
        # names ("5.1(side)", "hexagonal", ...) out of ffmpeg's log; stderr goes to a file so a chatty decoder can
        # never block the pipe
        self._stderr = tempfile.TemporaryFile()
        cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", self.path]
        cmd += ["-map", "0:a:0", "-vn", "-sn", "-dn", "-c:a", "pcm_f32le", "-f", "wav", "-"]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr)
        fmt = self._read_wav_header()
        if fmt is None:
            raise self._ffmpeg_error("no audio came out")
        self.channels, self.sample_rate = struct.unpack("<HI", fmt[2:8])

    def _read_wav_header(self) -> Optional[bytes]:
        """Walk the RIFF chunks up to "data"; -> the "fmt " chunk. Sizes are placeholders on a pipe: ignored."""
        stream = self._proc.stdout
        if stream.read(12)[8:12] != b"WAVE":
            return None
        fmt = None
        while True:
            head = stream.read(8)
            if len(head) < 8:
                return None
            kind, size = head[:4], struct.unpack("<I", head[4:])[0]
            if kind == b"data":
                return fmt
            body = stream.read(size + (size & 1))
            if kind == b"fmt ":
                fmt = body

    def _ffmpeg_error(self, default: str) -> MediaError:
        self.close()
        self._stderr.seek(0)
        return MediaError(f"{self.path}: could not decode audio ({ffmpeg_reason(self._stderr.read(), default)})")

    def __iter__(self) -> Iterator[np.ndarray]:
        block = max(1, int(self.block_seconds * self.sample_rate))
        if self._wav is not None:
            for start in range(0, self._wav.shape[0], block):
                yield np.ascontiguousarray(pcm_to_float32(np.asarray(self._wav[start:start + block])).T)
            return
        frame_bytes = 4 * self.channels
        while True:
            raw = self._proc.stdout.read(block * frame_bytes)
            raw = raw[:len(raw) - len(raw) % frame_bytes]
            if not raw:
                break
            yield np.frombuffer(raw, np.float32).reshape(-1, self.channels).T.copy()
        if self._proc.wait() != 0:
            raise self._ffmpeg_error(f"ffmpeg exit code {self._proc.returncode}")

    def blocks(self) -> Iterator[np.ndarray]:
        """Blocks checked for NaN/inf, and for an empty stream at the end."""
        total = 0
        for block in self:
            if not np.isfinite(block).all():
                raise MediaError(f"{self.path}: audio contains NaN or infinite samples")
            total += block.shape[1]
            yield block
        if total == 0:
            raise MediaError(f"{self.path}: audio stream has zero samples")

    def close(self) -> None:
        self._wav = None  # drops the memory map
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._proc is not None:
            self._proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        if self._stderr is not None:
            self._stderr.close()


def decode_audio(path, target_sr: int, block_seconds: float = AUDIO_BLOCK_SECONDS) -> Tuple[np.ndarray, float]:
    """Mono float32 at `target_sr` (channels averaged, then polyphase-resampled, as ``prepare_audio`` does), decoded
    as a stream; -> ``(waveform, seconds)`` with the input's native duration."""
    from .stream_resample import PolyphaseStream

    with AudioReader(path, block_seconds) as reader:
        stream = PolyphaseStream(reader.sample_rate, target_sr)
        parts, samples = [], 0
        for block in reader.blocks():
            samples += block.shape[1]
            parts.append(stream.push(block.mean(axis=0)))
        parts.append(stream.finish())
        return np.concatenate(parts), samples / reader.sample_rate
