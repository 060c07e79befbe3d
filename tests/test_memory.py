"""Memory handed back to the system: the C heap's free pages (glibc's malloc_trim)."""

from __future__ import annotations

import platform

import pytest

from birdnet_edge.bench import rss_mb
from birdnet_edge.daemon.memory import trim_heap


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_trim_heap_returns_freed_heap_pages() -> None:
    # 64 KB blocks come from the heap (below glibc's mmap threshold); the last one stays
    # allocated above the others, so free() alone cannot shrink the heap from its top.
    blocks = [bytearray(64 * 1024) for _ in range(1024)]  # 64 MB, written (zeroed)
    pin = bytearray(64 * 1024)
    del blocks
    before = rss_mb()
    assert trim_heap() is True
    assert rss_mb() < before - 40
    assert len(pin) == 64 * 1024
