"""A structural check of a ``.tflite`` file before any runtime sees it.

TFLite runtimes trust the file: tflite-runtime 2.14 ends the process with a segmentation fault
on a truncated BirdNET model instead of raising. This module walks just enough of the
FlatBuffer (the file identifier, the root ``Model`` table and every ``Buffer``'s data) to prove
that all weights lie inside the file, so a damaged download becomes a clear error instead.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

from birdnet_edge.errors import ModelError

_IDENTIFIER = b"TFL3"
_MODEL_BUFFERS = 4  # field index of Model.buffers in the TFLite schema
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2  # fields of Buffer


class _Reader:
    def __init__(self, data: mmap.mmap | bytes) -> None:
        self.data = data
        self.size = len(data)

    def unpack(self, fmt: str, pos: int) -> int:
        width = struct.calcsize(fmt)
        if pos < 0 or pos + width > self.size:
            raise _TruncatedError
        return int(struct.unpack_from(fmt, self.data, pos)[0])

    def u32(self, pos: int) -> int:
        return self.unpack("<I", pos)

    def field(self, table: int, index: int) -> int | None:
        """Absolute position of a table's field, or None when the field is absent."""
        vtable = table - self.unpack("<i", table)
        vtable_size = self.unpack("<H", vtable)
        slot = 4 + 2 * index
        if slot >= vtable_size:
            return None
        offset = self.unpack("<H", vtable + slot)
        return table + offset if offset else None

    def indirect(self, pos: int) -> int:
        return pos + self.u32(pos)

    def vector(self, pos: int, element_size: int) -> tuple[int, int]:
        """(start of elements, length) of the vector referenced at ``pos``."""
        start = self.indirect(pos)
        length = self.u32(start)
        if start + 4 + length * element_size > self.size:
            raise _TruncatedError
        return start + 4, length


class _TruncatedError(Exception):
    pass


class _NotTFLiteError(Exception):
    pass


def check_tflite_file(path: Path) -> None:
    """Raise :class:`ModelError` unless ``path`` is a TFLite FlatBuffer whose data is all there."""
    try:
        with path.open("rb") as f:
            if path.stat().st_size < 8:
                raise _TruncatedError  # noqa: TRY301 - mmap cannot map an empty file
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                _check(_Reader(data))
    except _NotTFLiteError:
        raise ModelError(
            f"model file {path} cannot be loaded (no TFLite identifier): it is corrupt or not a "
            "TFLite model; reinstall it with `birdnet-edge model install`"
        ) from None
    except _TruncatedError:
        raise ModelError(
            f"model file {path} is truncated or damaged: reinstall it with "
            "`birdnet-edge model install`"
        ) from None
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}") from None


def _check(r: _Reader) -> None:
    if bytes(r.data[4:8]) != _IDENTIFIER:
        raise _NotTFLiteError
    root = r.indirect(0)
    buffers = r.field(root, _MODEL_BUFFERS)
    if buffers is None:
        return
    start, count = r.vector(buffers, 4)
    for i in range(count):
        buf = r.indirect(start + 4 * i)
        data = r.field(buf, _BUFFER_DATA)
        if data is not None:
            r.vector(data, 1)
        offset = r.field(buf, _BUFFER_OFFSET)
        size = r.field(buf, _BUFFER_SIZE)
        if offset is not None and size is not None:
            begin = r.unpack("<Q", offset)
            length = r.unpack("<Q", size)
            if begin > 1 and begin + length > r.size:
                raise _TruncatedError
