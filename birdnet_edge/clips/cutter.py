"""Cutting each event's clip out of the ring, on the inference thread, as the event grows.

The cutter follows the tracker's changes window by window. When an event opens it starts a
clip ``pre`` seconds before the event's first window; as the event grows it copies the new
audio out of the ring (so a long event never depends on the ring's length), as 16-bit samples
(half the memory of float32; what a 16-bit source or microphone gave, so exact); when the
event closes it adds ``post`` seconds after its last window, names the clip on the record and
hands the samples to the :class:`~birdnet_edge.clips.writer.ClipWriter`. A clip that would
touch audio the privacy filter made private is not kept (and the log says so); a clip stops
after ``max_seconds``. Sounds (report_sounds) get no clip: the clips are the birds'.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np
import numpy.typing as npt

from birdnet_edge.audio.format import SAMPLE_RATE
from birdnet_edge.audio.ring import RingBuffer
from birdnet_edge.detect.events import EventChange
from birdnet_edge.log.record import Detection

_LOGGER = logging.getLogger(__name__)

Int16Array = npt.NDArray[np.int16]
#: Whether audio from sample ``start`` to ``end`` lies in a private stretch (the gate's).
Private = Callable[[int, int], bool]


@dataclass(frozen=True)
class ClipSettings:
    """How much audio a clip holds around its event, in samples."""

    pre: int = SAMPLE_RATE
    post: int = SAMPLE_RATE
    longest: int = 60 * SAMPLE_RATE
    suffix: str = ".flac"  # the file format (see birdnet_edge.clips.FORMATS)


@dataclass
class _Cutting:
    first: int  # the event's first window's first sample
    start: int  # the clip's first sample
    last_end: int  # end of the event's last window so far
    copied: int  # samples copied so far, from ``start``
    parts: list[Int16Array] = field(default_factory=list)


@dataclass(frozen=True)
class Clip:
    """One clip to write: where (relative to the clips folder) and its samples."""

    name: str
    samples: Int16Array
    detection: Detection
    marked: tuple[float, float] = (0.0, 0.0)  # seconds of the event's windows in the clip


def clip_name(d: Detection, suffix: str = ".flac") -> str:
    """``YYYY/MM/DD/HHMMSS_Genus_species_<id8>.flac``, dated in station time."""
    local = d.start.astimezone(d.zone)
    species = re.sub(r"[^A-Za-z0-9]+", "_", d.scientific).strip("_")
    name = f"{local:%H%M%S}_{species}_{d.id[:8]}{suffix}"
    return str(PurePosixPath(f"{local:%Y/%m/%d}") / name)


def to_int16(samples: npt.NDArray[np.float32]) -> Int16Array:
    """Float samples as 16-bit PCM (what a 16-bit source gave, exactly), clipped at full scale."""
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)


class ClipCutter:
    """Follows the events of one stream and cuts their clips (inference thread only)."""

    def __init__(
        self, ring: RingBuffer, settings: ClipSettings, deliver: Callable[[Clip], None]
    ) -> None:
        self.ring = ring
        self.settings = settings
        self.deliver = deliver
        self._cutting: dict[str, _Cutting] = {}
        self.kept = 0
        self.private = 0  # clips not kept: they would hold private audio
        self.lost = 0  # clips not kept: their audio left the ring first

    def oldest_needed(self) -> int | None:
        """The oldest sample a clip still needs from the ring (None: none)."""
        # A clip that holds its longest needs no more audio, however long its event goes on:
        # holding the ring for it would stall a replay, which waits for room, for good.
        longest = self.settings.longest
        return min(
            (c.start + c.copied for c in self._cutting.values() if c.copied < longest),
            default=None,
        )

    def follow(
        self, changes: list[EventChange], window_end: int, private: Private | None = None
    ) -> list[EventChange]:
        """Take the changes the window ending at sample ``window_end`` caused; returns them,
        each closed event's record naming its clip when one is kept."""
        out = []
        for change in changes:
            d = change.detection
            if d.kind == "sound":
                out.append(change)
                continue
            if change.kind == "opened":
                first = window_end - _window(d)
                start = max(0, first - self.settings.pre)
                self._cutting[d.id] = _Cutting(first, start, window_end, 0)
            cutting = self._cutting.get(d.id)
            if cutting is None:  # opened before clips were on (a reload)
                out.append(change)
                continue
            if change.kind == "updated":
                cutting.last_end = window_end
            if change.kind == "closed":
                del self._cutting[d.id]
                out.append(self._finish(change, cutting, private))
                continue
            self._copy(cutting, cutting.last_end)
            out.append(change)
        return out

    def _copy(self, cutting: _Cutting, until: int) -> bool:
        """Copy the clip's audio up to ``until`` (at most its longest) out of the ring."""
        end = min(until, self.ring.written, cutting.start + self.settings.longest)
        begin = cutting.start + cutting.copied
        if end <= begin:
            return True
        block = np.empty(end - begin, dtype=np.float32)
        if not self.ring.read(begin, block):
            return False
        cutting.parts.append(to_int16(block))
        cutting.copied += end - begin
        return True

    def _finish(
        self, change: EventChange, cutting: _Cutting, private: Private | None
    ) -> EventChange:
        d = change.detection
        end = cutting.last_end + self.settings.post
        if not self._copy(cutting, end):
            self.lost += 1
            _LOGGER.warning("no clip of %s at %s: its audio left the ring first", d.common, d.start)
            return change
        stop = cutting.start + cutting.copied
        if private is not None and private(cutting.start, stop):
            self.private += 1
            _LOGGER.info(
                "no clip of %s at %s: a human sound was heard within the privacy filter's reach",
                d.common, d.start.astimezone(),
            )  # fmt: skip
            return change
        samples = np.concatenate(cutting.parts) if cutting.parts else np.zeros(0, np.int16)
        name = clip_name(d, self.settings.suffix)
        named = dataclasses.replace(d, clip=name)
        rate = SAMPLE_RATE
        marked = (
            (cutting.first - cutting.start) / rate,
            min(cutting.last_end - cutting.start, len(samples)) / rate,
        )
        self.deliver(Clip(name, samples, named, marked))
        self.kept += 1
        return dataclasses.replace(change, detection=named)


def _window(d: Detection) -> int:
    """The samples of the window that opened ``d`` (3 s; a padded last one: its audio)."""
    return round((d.end - d.start).total_seconds() * SAMPLE_RATE)
