"""Giving memory back to the system: a model file's pages, and the C heap's free space (Linux).

A daemon that runs for months on a board with 1-4 GB should hold only what it uses. Both
helpers are best effort: they do nothing (and return 0 or False) where the C library or the
platform does not offer the call.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path

_MADV_DONTNEED = 4


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except (OSError, TypeError):  # TypeError: no C library to load by None (Windows)
        return None


def release_mapped_file(path: Path) -> int:
    """``madvise(MADV_DONTNEED)`` every mapping of ``path`` in this process (Linux only)."""
    target = str(Path(path).resolve())
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            spans = [
                tuple(int(v, 16) for v in line.split()[0].split("-"))
                for line in maps
                if line.rstrip().endswith(target)
            ]
    except OSError:
        return 0
    libc = _libc()
    if libc is None:
        return 0
    madvise = libc.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    released = 0
    for lo, hi in spans:
        if madvise(lo, hi - lo, _MADV_DONTNEED) == 0:
            released += hi - lo
    return released


def mapped_mb(path: str | os.PathLike[str]) -> float:
    """Resident MB of this process's mappings of the file ``path`` (Linux), else NaN."""
    target = os.path.realpath(path)
    total_kb = 0
    current = ""
    try:
        with open("/proc/self/smaps", encoding="utf-8", errors="replace") as f:
            for line in f:
                head = line.split(maxsplit=5)
                if head and not head[0].endswith(":"):  # a mapping's header line
                    current = head[5].rstrip("\n") if len(head) > 5 else ""
                elif head and head[0] == "Rss:" and current == target:
                    total_kb += int(head[1])
    except OSError:
        return float("nan")
    return total_kb / 1024


def trim_heap() -> bool:
    """Return the C heap's free pages to the system (glibc's ``malloc_trim``).

    glibc keeps memory that was freed in the middle of its heap (the model's first tensor
    arena after a batch-size change, decoding and database buffers) resident until asked.
    Returns whether any memory was released; False where ``malloc_trim`` does not exist (musl).
    """
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is None:
        return False
    trim.argtypes = [ctypes.c_size_t]
    return bool(trim(0))
