"""The clips' disk budget: a total size, a free-space floor, an age; rare species kept longest.

Checked at start and before every write: a clip is written only when, after deleting what the
rules allow, it fits under ``max_size`` and leaves ``min_free`` free on its file system, so
neither limit is passed even for a moment. What goes first: clips past ``retention_days``, then
the oldest clip that is not the best (highest confidence) of its species, then, only when
nothing else is left, the oldest best. A clip that cannot fit is not written; listening,
the log and MQTT go on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from birdnet_edge.clips import FORMATS


@dataclass(frozen=True)
class Budget:
    """The limits (bytes, days); 0 turns a limit off."""

    max_size: int = 0
    min_free: int = 0
    retention_days: float = 0


@dataclass(frozen=True)
class Kept:
    """A clip on disk."""

    name: str  # relative to the clips folder
    size: int
    species: str  # scientific name ("" when the log does not know the file)
    confidence: float
    start: dt.datetime  # aware


def free_bytes(path: Path) -> int:
    """Bytes free for this user on the file system holding ``path`` (or its nearest parent)."""
    for directory in (path, *path.parents):
        try:
            st = os.statvfs(directory)
        except FileNotFoundError:
            continue
        return st.f_bavail * st.f_frsize
    return 0


class ClipBudget:
    """The clips on disk and the room for the next one (the clip writer's thread only)."""

    def __init__(
        self,
        root: Path,
        budget: Budget,
        kept: Iterable[Kept] = (),
        *,
        free: Callable[[Path], int] = free_bytes,
    ) -> None:
        self.root = root
        self.budget = budget
        self.free = free
        self.kept: dict[str, Kept] = {k.name: k for k in kept}
        self.deleted = 0

    @property
    def total(self) -> int:
        return sum(k.size for k in self.kept.values())

    def make_room(self, size: int, now: dt.datetime) -> bool:
        """Delete what the rules allow until a clip of ``size`` bytes fits; False if it cannot."""
        self._expire(now)
        while not self._fits(size):
            victim = self._next_victim()
            if victim is None:
                return False
            self._delete(victim)
        return True

    def added(self, clip: Kept) -> None:
        self.kept[clip.name] = clip

    def _fits(self, size: int) -> bool:
        b = self.budget
        if b.max_size and self.total + size > b.max_size:
            return False
        return not (b.min_free and self.free(self.root) - size < b.min_free)

    def _expire(self, now: dt.datetime) -> None:
        days = self.budget.retention_days
        if not days:
            return
        cutoff = now - dt.timedelta(days=days)
        for clip in [k for k in self.kept.values() if k.start < cutoff]:
            self._delete(clip)

    def _next_victim(self) -> Kept | None:
        if not self.kept:
            return None
        best: dict[str, Kept] = {}
        for clip in self.kept.values():
            if clip.species and (
                clip.species not in best or clip.confidence > best[clip.species].confidence
            ):
                best[clip.species] = clip
        keepers = {k.name for k in best.values()}
        ordinary = [k for k in self.kept.values() if k.name not in keepers]
        return min(ordinary or self.kept.values(), key=lambda k: k.start)

    def _delete(self, clip: Kept) -> None:
        for path in (self.root / clip.name, (self.root / clip.name).with_suffix(".png")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        del self.kept[clip.name]
        self.deleted += 1


def on_disk(root: Path, known: dict[str, tuple[str, float, dt.datetime]]) -> list[Kept]:
    """The clips under ``root``, with their species, confidence and time from the log
    (``known``, by name); a file the log does not know counts by its own date."""
    out = []
    found = (p for p in root.rglob("*") if p.suffix in FORMATS) if root.is_dir() else ()
    for path in found:
        name = path.relative_to(root).as_posix()
        image = path.with_suffix(".png")
        stat = path.stat()
        size = stat.st_size + (image.stat().st_size if image.is_file() else 0)
        species, confidence, start = known.get(
            name, ("", 0.0, dt.datetime.fromtimestamp(stat.st_mtime, dt.timezone.utc))
        )
        out.append(Kept(name, size, species, confidence, start))
    return out
