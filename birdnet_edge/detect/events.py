"""Merge per-window hits into detection events: one event per bird song bout.

An event for a species opens with the first window that detects it, grows while the species
keeps being detected in windows that start within ``gap_seconds`` of the end of its last
detected window, and closes after that (or after ``max_seconds``). Every change is reported as
an immutable :class:`EventChange` holding the event's :class:`~birdnet_edge.log.record.Detection`
record as it stands, so sinks running in other threads can keep it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from birdnet_edge.detect.confirm import Confirmation, confirmation
from birdnet_edge.detect.sounds import recorded_kind
from birdnet_edge.log.history import History
from birdnet_edge.log.record import Detection, DetectionContext
from birdnet_edge.model.labels import Label

ChangeKind = Literal["opened", "updated", "closed"]

#: What a change means to MQTT subscribers (see :class:`birdnet_edge.mqtt.messages.Announcer`):
#: the event just became a detection (reached ``mqtt.min_windows``), a detection grew, or it
#: closed; None while the event is not (yet) a detection.
Announce = Literal["detected", "grew", "final"]

#: A message the log keeps in its outbox for the MQTT publisher: the topic below the prefix
#: (``detection``, or ``event`` for Home Assistant's event entity) and its JSON payload.
OutboxMessage = tuple[str, str]


@dataclass(frozen=True)
class EventChange:
    """An event opened, grew, or closed; with what it announces over MQTT, if anything."""

    kind: ChangeKind
    detection: Detection
    announce: Announce | None = None
    #: The outbox messages that announce it, written by the log with the change itself.
    messages: tuple[OutboxMessage, ...] = ()

    def __post_init__(self) -> None:
        if (self.kind == "closed") != self.detection.closed:
            raise ValueError(
                f"a {self.kind!r} change of a record with closed={self.detection.closed}"
            )


@dataclass
class _Open:
    detection: Detection
    last_end: dt.datetime


class EventTracker:
    """Keeps the open events and turns each window's hits into changes."""

    def __init__(
        self,
        context: DetectionContext,
        gap_seconds: float = 6.0,
        max_seconds: float = 300.0,
        *,
        history: History | None = None,
        confirm: int | Confirmation = 1,
    ) -> None:
        """``history``: when each species was last detected, to tell how new an event is (an
        event counts as detected once it has the windows ``confirm`` asks for)."""
        self.context = context
        self.gap = dt.timedelta(seconds=gap_seconds)
        self.max = dt.timedelta(seconds=max_seconds)
        self.history = history
        self.confirm = confirmation(confirm)
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
            if current is not None and end - current.detection.start > self.max:
                changes.append(self._closed(current))
                current = None
            if current is None:
                label = labels[index]
                detection = Detection(
                    id=str(uuid.uuid4()),
                    start=start,
                    end=end,
                    utc_offset=start.astimezone().utcoffset() or dt.timedelta(),
                    scientific=label.scientific,
                    common=label.common,
                    confidence=confidence,
                    windows=1,
                    closed=False,
                    context=self.context,
                    kind=recorded_kind(label),
                )
                if self.history is not None and detection.kind != "sound":
                    new = self.history.firsts(detection)
                    detection = dataclasses.replace(
                        detection, first_of_day=new.first_of_day,
                        first_in_days=new.first_in_days, first_ever=new.first_ever,
                    )  # fmt: skip
                changes.append(EventChange("opened", detection))
            else:
                detection = dataclasses.replace(
                    current.detection,
                    end=end,
                    confidence=max(current.detection.confidence, confidence),
                    windows=current.detection.windows + 1,
                )
                changes.append(EventChange("updated", detection))
            needed = self.confirm.windows(detection.scientific)
            if self.history is not None and detection.windows == needed:
                self.history.detected(detection)
            self._open[index] = _Open(detection, end)
        return changes

    @staticmethod
    def _closed(event: _Open) -> EventChange:
        return EventChange("closed", dataclasses.replace(event.detection, closed=True))

    def _close_before(self, start: dt.datetime) -> list[EventChange]:
        closing = [i for i, o in self._open.items() if start - o.last_end > self.gap]
        return [self._closed(self._open.pop(i)) for i in closing]

    def close_all(self) -> list[EventChange]:
        """Close every open event (end of stream, shutdown)."""
        changes = [self._closed(o) for o in self._open.values()]
        self._open.clear()
        return changes

    def set_context(self, context: DetectionContext) -> None:
        """New settings (a config reload) apply to events opened from now on."""
        self.context = context
