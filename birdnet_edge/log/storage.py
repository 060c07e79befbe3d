"""What went wrong with the storage under the database, in words that name the fix."""

from __future__ import annotations

import os
from pathlib import Path

from birdnet_edge.errors import BirdnetEdgeError


def error_name(exc: BaseException) -> str:
    """SQLite's error name (``SQLITE_FULL``...); Python 3.10 lacks the attribute: use the text."""
    name = getattr(exc, "sqlite_errorname", None)
    if isinstance(name, str):
        return name
    text = str(exc).lower()
    for needle, guess in (
        ("disk is full", "SQLITE_FULL"),
        ("readonly", "SQLITE_READONLY"),
        ("read-only", "SQLITE_READONLY"),
        ("not a database", "SQLITE_NOTADB"),
        ("locked", "SQLITE_BUSY"),
        ("unable to open", "SQLITE_CANTOPEN"),
        ("disk i/o error", "SQLITE_IOERR"),
    ):
        if needle in text:
            return guess
    return "SQLITE_ERROR"


DISK_FULL = (
    "the disk is full: free space on that file system, or set database.retention_days or "
    "database.max_size_mb"
)


def describe_storage_error(exc: BaseException, path: Path | None = None) -> str:
    """What went wrong writing the database at ``path``, and what the user can do about it."""
    if path is not None and _no_space(path):
        return DISK_FULL  # SQLite may say only "disk I/O error" when it cannot grow a file
    if path is not None and _read_only_fs(path):
        return (
            "the file system holding it is mounted read-only (after a storage error, see dmesg): "
            "check it with fsck and mount it read-write again"
        )
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}: check that the directory exists and is writable"
    name = error_name(exc)
    if name.startswith("SQLITE_FULL"):
        return DISK_FULL
    if name.startswith("SQLITE_READONLY"):
        return (
            "the database is read-only: make the file, its directory and the file system "
            "writable for this user (check mount options and ownership)"
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return "the database is locked by another program: stop it (only birdnet-edge writes)"
    if name.startswith("SQLITE_IOERR"):
        return (
            f"disk I/O error ({name}): the storage failed or its file system turned read-only "
            "after an error: check dmesg, fsck the file system and mount it read-write again"
        )
    if name.startswith("SQLITE_CANTOPEN"):
        return "it cannot be opened: check that its directory exists and is writable"
    return (
        f"{exc} ({name}): check the storage device (dmesg) and that the file system is "
        "writable and not full"
    )


def _no_space(path: Path) -> bool:
    """Whether the file system holding ``path`` has no free block left for this user."""
    for directory in path.parents:
        try:
            return os.statvfs(directory).f_bavail == 0
        except FileNotFoundError:
            continue
        except OSError:
            return False
    return False


def unusable_at_start(exc: BaseException, path: Path) -> BirdnetEdgeError | None:
    """The one-line error to refuse to start with, when the database at ``path`` cannot be used
    and waiting will not help; None for a read-only file system, which the writer waits out
    (it is remounted read-write after a storage error is repaired)."""
    if path.is_dir():
        return BirdnetEdgeError(
            f"database.path {path} is a folder, not a database file: set database.path to a "
            f"file name, e.g. {path / 'detections.db'}"
        )
    if _no_space(path):
        return BirdnetEdgeError(f"cannot open the detection database {path}: {DISK_FULL}")
    if _read_only_fs(path):
        return None
    name = error_name(exc)
    if isinstance(exc, PermissionError) or name.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY")):
        return BirdnetEdgeError(
            f"cannot open the detection database {path}: permission denied: make the file and "
            "its folder readable and writable for this user (or set database.path elsewhere)"
        )
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return BirdnetEdgeError(
            f"the detection database {path} is damaged ({exc}): move it away to start a new "
            f"one, or try `sqlite3 {path} .recover`"
        )
    return BirdnetEdgeError(
        f"cannot open the detection database {path}: {describe_storage_error(exc, path)}"
    )


def _read_only_fs(path: Path) -> bool:
    """Whether the nearest existing directory of ``path`` is on a read-only mount."""
    for directory in path.parents:
        try:
            return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
        except FileNotFoundError:
            continue
        except OSError:
            return False
    return False
