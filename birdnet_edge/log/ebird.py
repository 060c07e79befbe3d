"""The detection log as eBird's Record Format: a spreadsheet eBird imports as checklists.

One row a species a day at the station (an eBird checklist is one place, one date): the
species as BirdNET names it (common name, genus, species), ``X`` for the number (a listener
counts detections, not birds), the station's name and location, the date and the time of the
day's first detection, the "Stationary" protocol, one observer, the minutes from the day's first
to its last detection, and "N" for "all observations reported" (an automatic listener is not a
complete checklist). A comment says how many detections and the best confidence. No header
row, as eBird's importer wants it; 19 columns.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TextIO

from birdnet_edge.log.record import Detection

COLUMNS = 19


@dataclass
class _Day:
    common: str
    scientific: str
    first: dt.datetime
    last: dt.datetime
    detections: int = 0
    best: float = 0.0
    station: str = ""
    latitude: float | None = None
    longitude: float | None = None


def write_ebird(rows: Iterable[Detection], out: TextIO) -> int:
    """Write eBird Record Format rows for ``rows``; returns the number of rows written."""
    days: dict[tuple[dt.date, str], _Day] = {}
    for d in rows:
        if d.kind != "bird":
            continue
        start = d.start.astimezone(d.zone)
        key = (start.date(), d.scientific)
        day = days.get(key)
        if day is None:
            day = days[key] = _Day(d.common, d.scientific, start, start)
        day.first, day.last = min(day.first, start), max(day.last, d.end.astimezone(d.zone))
        day.detections += 1
        day.best = max(day.best, d.confidence)
        day.station = d.context.station
        day.latitude, day.longitude = d.context.latitude, d.context.longitude
    writer = csv.writer(out, lineterminator="\n")
    for (date, _), day in sorted(days.items(), key=lambda kv: (kv[0][0], kv[1].first)):
        genus, _, species = day.scientific.partition(" ")
        minutes = max(1, round((day.last - day.first).total_seconds() / 60))
        writer.writerow([
            day.common, genus, species, "X",
            f"{day.detections} BirdNET detections, best confidence {day.best:.2f} (birdnet-edge)",
            day.station,
            "" if day.latitude is None else f"{day.latitude:.5f}",
            "" if day.longitude is None else f"{day.longitude:.5f}",
            f"{date:%m/%d/%Y}", f"{day.first:%H:%M}", "", "", "Stationary", 1, minutes, "N",
            "", "", "Recorded by an automatic BirdNET listener (birdnet-edge)",
        ])  # fmt: skip
    return len(days)
