"""The dataset's on-disk cache: decoded and resampled full clips (safetensors) and probe results (JSON), keyed by
the source file's identity (path, mtime, size) and the settings that shaped them. A damaged entry is recomputed; a
full or read-only cache is logged and skipped, never fatal."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from typing import Any, Dict, Optional

import numpy as np

# the dataset's messages, under the logger name they always had
logger = logging.getLogger("av_link.data.dataset")

# Bump a kind's version when the decoded/resampled content of its entries would change for the same settings.
# video 2: the frame-time convention moved from half to a quarter period after a frame's stamp (utils.video_ops).
CACHE_VERSION = 1
KIND_VERSIONS = {"video": 2}
PROBE_CACHE_NAME = "probe_cache.json"


def file_key(path: str) -> Dict[str, Any]:
    st = os.stat(path)
    return dict(path=os.path.realpath(path), mtime_ns=st.st_mtime_ns, size=st.st_size)


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:40]


def atomic_write(path: str, write) -> None:
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=directory)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def entry_path(cache_dir: Optional[str], kind: str, source: str, settings: Dict[str, Any]) -> Optional[str]:
    """Where `source` converted with `settings` is cached (``None`` without a cache)."""
    if cache_dir is None:
        return None
    key = digest(dict(kind=kind, version=KIND_VERSIONS.get(kind, CACHE_VERSION), file=file_key(source), settings=settings))
    return os.path.join(cache_dir, f"{kind}-{key}.safetensors")


def load_array(path: Optional[str], name: str) -> Optional[np.ndarray]:
    if path is None or not os.path.isfile(path):
        return None
    from safetensors.numpy import load_file

    try:
        return load_file(path)[name]
    except Exception as err:  # a damaged entry is recomputed and overwritten
        logger.warning("AVClipDataset: ignoring unreadable cache entry %s (%s)", path, err)
        return None


def store_array(path: Optional[str], name: str, array: np.ndarray, source: str) -> None:
    if path is None:
        return
    from safetensors.numpy import save_file

    try:
        atomic_write(path, lambda tmp: save_file({name: np.ascontiguousarray(array)}, tmp, metadata={"source": source}))
    except OSError as err:  # a full or read-only cache must not stop training
        logger.warning("AVClipDataset: could not write cache entry %s (%s)", path, err)
