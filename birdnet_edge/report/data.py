"""What a report shows, gathered from the detection log into one frozen model.

Every figure comes from :mod:`birdnet_edge.log.queries`: the per-species counts, first and last
heard and best confidence are :func:`~birdnet_edge.log.queries.summary`'s (what ``log summary``
prints), the first arrivals :func:`~birdnet_edge.log.queries.arrivals`' (``log new``).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from birdnet_edge.log import queries as store
from birdnet_edge.log.queries import Filters, SpeciesSummary
from birdnet_edge.log.record import Detection

HOURS = 24


@dataclass(frozen=True)
class SpeciesReport:
    """One species over the period."""

    summary: SpeciesSummary  # count, first and last heard, best confidence (as `log summary`)
    hours: tuple[int, ...]  # detections by hour of the day (station time): 24 counts
    days: tuple[int, ...]  # detections by day, one count for each of :attr:`Report.days`


@dataclass(frozen=True)
class Row:
    """One detection of the table, and where its clip is (None: none kept)."""

    detection: Detection
    clip: Path | None


@dataclass(frozen=True)
class Setup:
    """A station and model the period's detections were made with, and how many."""

    station: str
    model: str
    precision: str
    count: int


@dataclass(frozen=True)
class Report:
    """Everything one report shows."""

    db: Path
    start: dt.datetime  # the period: --since, else the first detection (aware, shown zone)
    end: dt.datetime  # --until, else the last detection's start
    bounded: bool  # end is --until (exclusive), not the last detection
    days: tuple[dt.date, ...]  # every calendar day of the period, station time
    setups: tuple[Setup, ...]  # most detections first
    species: tuple[SpeciesReport, ...]  # most detected first
    arrivals: tuple[SpeciesSummary, ...]  # in order of arrival
    away_days: int  # days away that make a return an arrival
    rows: tuple[Row, ...]  # the table: newest first, at most max_rows
    filters: Filters
    utc: bool  # times in UTC rather than station time (the charts are in station time)
    generated: dt.datetime

    @property
    def total(self) -> int:
        """Detections in the period."""
        return sum(s.summary.count for s in self.species)

    @property
    def zone(self) -> dt.tzinfo:
        """The zone the page's times are shown in."""
        return self.start.tzinfo or dt.timezone.utc


def gather(
    conn: sqlite3.Connection,
    db: Path,
    f: Filters,
    *,
    clips_root: Path | None,
    max_rows: int,
    away_days: int,
    utc: bool = False,
    now: dt.datetime | None = None,
) -> Report:
    """The report of the detections matching ``f``; ``clips_root``: the clips folder (None:
    clips are not looked for). The caller makes sure there is at least one detection."""
    conn.execute("BEGIN")  # one snapshot while the daemon writes
    try:
        summary = store.summary(conn, f)
        arrivals = store.arrivals(conn, f, away_days)
        activity = store.activity(conn, f)
        setups = tuple(Setup(*c) for c in store.contexts(conn, f))
        newest = list(reversed(store.recent(conn, f, max_rows)))
    finally:
        conn.execute("COMMIT")
    station = newest[0].zone  # the newest detection's offset: the station's time now
    zone = dt.timezone.utc if utc else station
    first = min(s.first for s in summary)
    last = max(s.last for s in summary)
    start = (f.since or first).astimezone(zone)
    end = (f.until or last).astimezone(zone)
    by_species: dict[str, list[tuple[dt.date, int, int]]] = {}
    for scientific, day, hour, n in activity:
        by_species.setdefault(scientific, []).append((day, hour, n))
    seen = [day for _s, day, _h, _n in activity]
    days = _days(start.astimezone(station), end.astimezone(station), f.until is not None, seen)
    return Report(
        db=db,
        start=start,
        end=end,
        bounded=f.until is not None,
        days=days,
        setups=setups,
        species=tuple(_species(s, by_species.get(s.scientific, []), days) for s in summary),
        arrivals=tuple(arrivals),
        away_days=away_days,
        rows=tuple(Row(d, _clip(d, clips_root)) for d in newest),
        filters=f,
        utc=utc,
        generated=(now or dt.datetime.now(dt.timezone.utc)).astimezone(zone),
    )


def _clip(d: Detection, root: Path | None) -> Path | None:
    return None if d.clip is None or root is None else root / d.clip


def _days(
    start: dt.datetime, end: dt.datetime, exclusive: bool, seen: Sequence[dt.date]
) -> tuple[dt.date, ...]:
    """Every calendar day (station time) from the period's first to its last (an --until at
    midnight ends the day before); the days of the detections always in."""
    last_moment = end - dt.timedelta(microseconds=1) if exclusive else end
    lo = min([start.date(), *seen])
    hi = max([last_moment.date(), *seen])
    return tuple(lo + dt.timedelta(days=i) for i in range((hi - lo).days + 1))


def _species(
    s: SpeciesSummary, activity: Sequence[tuple[dt.date, int, int]], days: tuple[dt.date, ...]
) -> SpeciesReport:
    """``s`` with its counts by hour and by day (``activity``: its (day, hour, count))."""
    hours = [0] * HOURS
    by_day = dict.fromkeys(days, 0)
    for day, hour, n in activity:
        hours[hour] += n
        by_day[day] = by_day.get(day, 0) + n
    return SpeciesReport(summary=s, hours=tuple(hours), days=tuple(by_day[d] for d in days))
