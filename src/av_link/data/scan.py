"""The dataset's construction scan: which clips of a metadata file are usable, and why the others are not.

Every distinct file is probed once, in parallel (one ffmpeg process each; results cached with the dataset's cache);
nothing is decoded unless ``verify="decode"``. Skipped files are recorded per reason (:data:`REASONS`).
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..utils.media_io import MediaError
from .cache import PROBE_CACHE_NAME, atomic_write, digest, file_key
from .dataset_config import MODALITIES, RESERVED_KEYS
from .metadata import read_metadata
from .probe import audio_seconds, probe_media, video_seconds

__all__ = ["Clip", "ClipLoadError", "ClipScanMixin", "REASONS"]

# the dataset's messages, under the logger name they always had
logger = logging.getLogger("av_link.data.dataset")

# Skip reasons, in the order they are checked and reported.
REASONS = ("bad metadata", "missing", "unreadable", "no video", "no audio", "too short", "failed at load")


@dataclass
class Clip:
    file_name: str
    video_path: Optional[str]
    audio_path: Optional[str]
    row: Dict[str, Any]
    source_fps: Optional[float] = None  # the video's probed native frame rate


class ClipLoadError(MediaError):
    """A clip that passed the construction scan turned out unusable when decoded."""


class ClipScanMixin:
    """The scan half of :class:`~av_link.data.dataset.AVClipDataset`: fills ``clips``, ``skipped``, ``skip_details``
    and ``summary`` from ``metadata_file`` (the dataset class provides the config and ``_load_full``)."""

    def _skip(self, reason: str, name: str, detail: str) -> None:
        self.skipped.setdefault(reason, []).append(name)
        self.skip_details[name] = detail

    def _resolve(self, row: Dict[str, Any]) -> Tuple[Optional[str], Optional[str]]:
        video_path = os.path.join(self.data_dir, str(row["file_name"]))
        audio_path = None
        if self.needs_audio:
            if row.get("audio_file"):
                audio_path = os.path.join(self.data_dir, str(row["audio_file"]))
            else:
                stem = os.path.splitext(video_path)[0]
                audio_path = next((stem + ext for ext in (".wav", ".WAV") if os.path.isfile(stem + ext)), video_path)
        return (video_path if self.needs_video else None), audio_path

    def _scan(self) -> None:
        cfg = self.config
        rows = read_metadata(self.metadata_file)
        if not rows:
            raise ValueError(f"AVClipDataset: {self.metadata_file} has no entries")
        required = ["file_name"] + [f"{m}_caption" for m in MODALITIES if m in cfg.modalities]
        parsed = [row for _, row, _ in rows if row is not None]
        for column in required:
            if parsed and not any(column in row for row in parsed):
                raise ValueError(f"AVClipDataset: {self.metadata_file} has no {column!r} column (need {required})")

        candidates: List[Tuple[Dict[str, Any], str, Optional[str], Optional[str]]] = []
        for line, row, problem in rows:
            where = f"{self.metadata_file}:{line}"
            if row is None:
                self._skip("bad metadata", where, problem)
                continue
            missing = [c for c in required if not isinstance(row.get(c), str) or (c == "file_name" and not row[c])]
            if missing:
                self._skip("bad metadata", where, f"missing or non-string {missing}")
                continue
            video_path, audio_path = self._resolve(row)
            candidates.append((row, row["file_name"], video_path, audio_path))

        # probe every distinct file once, in parallel (each probe is an ffmpeg process)
        paths = sorted({p for _, _, v, a in candidates for p in (v, a) if p is not None and os.path.isfile(p)})
        probes = self._probe_all(paths)

        collisions = set()
        for row, name, video_path, audio_path in candidates:
            shown = video_path or audio_path
            missing = [p for p in (video_path, audio_path) if p is not None and not os.path.isfile(p)]
            if missing:
                self._skip("missing", shown, "no such file" if missing[0] == shown else f"no such file: {missing[0]}")
                continue
            vinfo = probes[video_path] if video_path else None
            ainfo = probes[audio_path] if audio_path else None
            bad = [(p, i) for p, i in ((video_path, vinfo), (audio_path, ainfo)) if i is not None and i["error"]]
            if bad:
                path, info = bad[0]
                self._skip("unreadable", shown, info["error"] if path == shown else f"{path}: {info['error']}")
                continue
            if vinfo is not None and not vinfo["video"]:
                self._skip("no video", shown, "has no video stream")
                continue
            if ainfo is not None and not ainfo["audio"]:
                self._skip("no audio", shown, "has no audio stream and there is no same-named .wav")
                continue
            short = self._too_short(vinfo, ainfo)
            if short:
                self._skip("too short", shown, short)
                continue
            collisions.update(k for k in row if k in RESERVED_KEYS and k not in ("audio_caption", "video_caption"))
            self.clips.append(Clip(name, video_path, audio_path, dict(row), (vinfo or {}).get("fps")))

        if collisions:
            logger.warning("AVClipDataset: metadata columns %s collide with item keys and are not copied into items", sorted(collisions))

        if cfg.verify == "decode":
            self._verify_by_decoding()

        # oversampled clips: extra copies after all the clips, so the first pass's indices (and crops) stay as they were
        self.clips += [clip for clip in list(self.clips) for _ in range(self._repeats(clip.source_fps) - 1)]
        self.summary = self._summary()
        if self.skipped:
            examples = "; ".join(f"{name}: {self.skip_details[name]}" for names in self.skipped.values() for name in names[:2])
            logger.warning("%s. Examples: %s", self.summary, examples)
        else:
            logger.info(self.summary)
        if not self.clips:
            raise ValueError(f"{self.summary}: no usable clips in {self.data_dir} (see dataset.skipped reasons above)")

    def _repeats(self, fps: Optional[float]) -> int:
        """How many times a clip whose video runs at `fps` is listed (`config.repeat_fps`)."""
        for rate, n in (self.config.repeat_fps or {}).items():
            if fps and abs(fps - rate) < 0.01:
                return n
        return 1

    def _too_short(self, vinfo, ainfo) -> Optional[str]:
        cfg = self.config
        need = cfg.clip_seconds
        if vinfo is not None:
            seconds = video_seconds(vinfo)
            if seconds is None:
                return "video duration unknown"
            frames = round(seconds * cfg.fps)
            if frames < self.num_frames:
                return f"video is {seconds:.3f} s ({frames} frames at {cfg.fps:g} fps), the window needs {self.num_frames}"
        if ainfo is not None:
            seconds = audio_seconds(ainfo)
            if seconds is None:
                return "audio duration unknown"
            if seconds + cfg.length_tolerance < need - 0.5 / cfg.sample_rate:
                return f"audio is {seconds:.3f} s, the window needs {need:g} s"
        return None

    def _probe_all(self, paths: Sequence[str]) -> Dict[str, Dict[str, Any]]:
        mode = self.config.verify
        cache: Dict[str, Any] = {}
        cache_path = os.path.join(self.cache_dir, PROBE_CACHE_NAME) if self.cache_dir else None
        if cache_path and os.path.isfile(cache_path):
            try:
                with open(cache_path, encoding="utf-8") as f:
                    cache = json.load(f)
            except (OSError, ValueError):
                cache = {}
        keys = {}
        for p in paths:
            try:
                keys[p] = digest([file_key(p), mode])
            except OSError:  # vanished or unreadable since listing: probe_media reports it
                keys[p] = digest([p, mode, "unstatable"])
                cache.pop(keys[p], None)
        todo = [p for p in paths if keys[p] not in cache]
        workers = self.config.num_scan_workers or min(8, os.cpu_count() or 1)
        if todo:
            with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
                for p, info in zip(todo, pool.map(lambda q: probe_media(q, mode), todo)):
                    cache[keys[p]] = info
            if cache_path:
                atomic_write(cache_path, lambda tmp: Path(tmp).write_text(json.dumps(cache), encoding="utf-8"))
        return {p: cache[keys[p]] for p in paths}

    def _verify_by_decoding(self) -> None:
        def check(i):
            try:
                self._load_full(i)
                return None
            except (ClipLoadError, MediaError, ValueError, OSError) as err:
                return str(err)

        workers = self.config.num_scan_workers or min(8, os.cpu_count() or 1)
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            problems = list(pool.map(check, range(len(self.clips))))
        keep = []
        for clip, problem in zip(self.clips, problems):
            if problem is None:
                keep.append(clip)
            else:
                reason = "too short" if "too short" in problem else "unreadable"
                self._skip(reason, clip.video_path or clip.audio_path, problem)
        self.clips = keep

    def _summary(self) -> str:
        total = sum(len(v) for v in self.skipped.values())
        unique = len({id(clip) for clip in self.clips})
        text = f"AVClipDataset: {unique} clips usable" + (f" ({len(self.clips)} items with repeat_fps)" if unique < len(self.clips) else "")
        text += f", skipped {total}"
        if total:
            parts = [f"{len(self.skipped[r])} {r}" for r in REASONS if self.skipped.get(r)]
            text += f" ({', '.join(parts)})"
        return text

    # -- decoding + cache -----------------------------------------------------------------------------------
