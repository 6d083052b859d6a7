"""utils/heap.py: freed heap pages go back to the system (glibc), and elsewhere nothing breaks."""

import platform

import pytest

from av_link.utils import heap


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_release_free_memory_trims_on_glibc():
    assert heap._malloc_trim() is not None  # found in the C library (else every call would silently do nothing)
    big = [bytearray(1 << 20) for _ in range(64)]  # 64 MB on the heap, then freed
    del big
    heap.release_free_memory()


def test_release_free_memory_is_a_no_op_without_malloc_trim(monkeypatch):
    monkeypatch.setattr(heap, "_malloc_trim", lambda: None)
    assert heap.release_free_memory() is False
