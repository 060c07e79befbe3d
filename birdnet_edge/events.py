"""Merge per-window hits into detection events: one event per bird song bout.

An event for a species opens with the first window that detects it, grows while the species
keeps being detected in windows that start within ``gap_seconds`` of the end of its last
detected window, and closes after that (or after ``max_seconds``). Every change is reported as
an immutable :class:`EventChange` so sinks running in other threads can keep it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from birdnet_edge.model.labels import Label

ChangeKind = Literal["opened", "updated", "closed"]


@dataclass(frozen=True)
class DetectionContext:
    """The settings in force when an event was detected, stored with it."""

    station: str
    latitude: float | None
    longitude: float | None
    model: str
    precision: str
    sensitivity: float
    overlap: float
    min_confidence: float


@dataclass(frozen=True)
class DetectionEvent:
    """One species heard over one or more consecutive windows."""

    id: str
    label: Label
    start: dt.datetime  # aware, UTC: start of the first window
    end: dt.datetime  # aware, UTC: end of the last window with a hit
    confidence: float  # the highest window confidence so far
    windows: int  # windows with a hit so far
    context: DetectionContext

    @property
    def scientific(self) -> str:
        return self.label.scientific

    @property
    def common(self) -> str:
        return self.label.common


@dataclass(frozen=True)
class EventChange:
    """An event opened, grew, or closed."""

    kind: ChangeKind
    event: DetectionEvent


@dataclass
class _Open:
    event: DetectionEvent
    last_end: dt.datetime


class EventTracker:
    """Keeps the open events and turns each window's hits into changes."""

    def __init__(
        self, context: DetectionContext, gap_seconds: float = 6.0, max_seconds: float = 300.0
    ) -> None:
        self.context = context
        self.gap = dt.timedelta(seconds=gap_seconds)
        self.max = dt.timedelta(seconds=max_seconds)
        self._open: dict[int, _Open] = {}

    def window(
        self,
        start: dt.datetime,
        end: dt.datetime,
        hits: Sequence[tuple[int, float]],
        labels: Sequence[Label],
    ) -> list[EventChange]:
        """Account for one window (in stream order); returns the changes it causes."""
        changes = self._close_before(start)
        for index, confidence in hits:
            current = self._open.get(index)
            if current is not None and end - current.event.start > self.max:
                changes.append(EventChange("closed", current.event))
                current = None
            if current is None:
                event = DetectionEvent(
                    id=str(uuid.uuid4()),
                    label=labels[index],
                    start=start,
                    end=end,
                    confidence=confidence,
                    windows=1,
                    context=self.context,
                )
                self._open[index] = _Open(event, end)
                changes.append(EventChange("opened", event))
            else:
                event = dataclasses.replace(
                    current.event,
                    end=end,
                    confidence=max(current.event.confidence, confidence),
                    windows=current.event.windows + 1,
                )
                self._open[index] = _Open(event, end)
                changes.append(EventChange("updated", event))
        return changes

    def _close_before(self, start: dt.datetime) -> list[EventChange]:
        closing = [i for i, o in self._open.items() if start - o.last_end > self.gap]
        return [EventChange("closed", self._open.pop(i).event) for i in closing]

    def close_all(self) -> list[EventChange]:
        """Close every open event (end of stream, shutdown)."""
        changes = [EventChange("closed", o.event) for o in self._open.values()]
        self._open.clear()
        return changes

    def set_context(self, context: DetectionContext) -> None:
        """New settings (a config reload) apply to events opened from now on."""
        self.context = context
