"""When a species was last heard: what makes a detection the first of the day, the first in a
while, or the first ever (for notifications on the first Blackcap of the year, not the 400th
House Sparrow).

Looked up in the detection log with its ``(scientific, start_utc)`` index, once per species
(then kept in memory and moved on as this run detects it), never by scanning the table. Only
detections count, not events that stayed below the confirmation rule (``mqtt.min_windows``),
nor BirdNET's sounds. Days are the station's calendar days, in its local time.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from birdnet_edge.detect.confirm import Confirmation, confirmation
from birdnet_edge.log.record import Detection, parse_utc, utc_text

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Firsts:
    """How new a detection is."""

    first_of_day: bool
    first_in_days: int | None  # calendar days since the species was last detected; None: never
    first_ever: bool


def firsts(start: dt.datetime, previous: dt.datetime | None) -> Firsts:
    """The firsts of a detection at ``start`` whose species was last detected at ``previous``
    (None: never), in local calendar days."""
    if previous is None:
        return Firsts(first_of_day=True, first_in_days=None, first_ever=True)
    days = (start.astimezone().date() - previous.astimezone().date()).days
    return Firsts(first_of_day=days > 0, first_in_days=days, first_ever=False)


def previous_start(
    conn: sqlite3.Connection, scientific: str, before: dt.datetime, min_windows: int = 1
) -> dt.datetime | None:
    """The start of the latest detection of ``scientific`` before ``before`` (index lookup)."""
    row = conn.execute(
        "SELECT max(start_utc) FROM detections WHERE scientific = ? AND start_utc < ? "
        "AND windows >= ?",
        (scientific, utc_text(before), min_windows),
    ).fetchone()
    return parse_utc(row[0]) if row and row[0] else None


class History:
    """The latest detection of each species: the log's, then this run's (pipeline thread)."""

    def __init__(self, path: Path | None, confirm: int | Confirmation = 1) -> None:
        self.path = path
        self.confirm = confirmation(confirm)
        self._last: dict[str, dt.datetime | None] = {}
        self._conn: sqlite3.Connection | None = None

    def firsts(self, d: Detection) -> Firsts:
        """The firsts of ``d`` (an event that just opened) against the detections before it."""
        return firsts(d.start, self._latest(d.scientific, d.start))

    def detected(self, d: Detection) -> None:
        """``d`` became a detection (it reached the confirmation rule): the species' latest."""
        last = self._last.get(d.scientific)
        if last is None or d.start > last:
            self._last[d.scientific] = d.start

    def _latest(self, scientific: str, before: dt.datetime) -> dt.datetime | None:
        if scientific not in self._last:
            self._last[scientific] = self._look_up(scientific, before)
        last = self._last[scientific]
        if last is not None and last >= before:  # a replay of older audio: ask the log
            return self._look_up(scientific, before)
        return last

    def _look_up(self, scientific: str, before: dt.datetime) -> dt.datetime | None:
        conn = self._connection()
        if conn is None:
            return None
        try:
            return previous_start(conn, scientific, before, self.confirm.windows(scientific))
        except sqlite3.Error as exc:  # a log that cannot be read: the species counts as new
            _LOGGER.debug("cannot read the last %s from %s: %s", scientific, self.path, exc)
            return None

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is None and self.path is not None and self.path.exists():
            try:
                self._conn = sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
                )
            except sqlite3.Error as exc:
                _LOGGER.debug("cannot open %s for the species' history: %s", self.path, exc)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
