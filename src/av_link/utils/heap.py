"""Give freed heap memory back to the operating system.

Streaming a long video allocates and frees a multi-megabyte buffer per decoded frame. glibc's malloc raises its
mmap threshold after such frees, serves the next ones from the heap, and keeps what they leave behind: the process's
resident memory then grows with the input's length although the live data does not (5 min of 720p: 250 MB more
after decoding, all of it free). `malloc_trim` returns those pages; elsewhere (other C libraries, other systems)
this is a no-op.
"""

import ctypes
import ctypes.util
import functools


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_free_memory() -> bool:
    """Return free heap pages to the system; whether anything could be done."""
    trim = _malloc_trim()
    return bool(trim is not None and trim(0))
