"""The detection record: one species heard over consecutive windows, as it is kept and sent.

Defined once. The database row, the MQTT message, the CSV and JSON Lines export and the console
line are all derived here, so adding a field is a change in this module plus a schema migration
(``birdnet_edge.log.writer.MIGRATIONS``) that adds its column.

Times are aware datetimes in UTC; ``utc_offset`` is the station's offset from UTC when the event
started, so a log read elsewhere (or after a change of time zone) still shows station time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

#: ``open`` when an event becomes a detection (the low-latency message), ``final`` once closed.
Status = Literal["open", "final"]

#: What was heard: a bird, another animal BirdNET knows, or one of its sounds (dog, engine,
#: siren...; logged only with ``filters.report_sounds``).
Kind = Literal["bird", "insect", "frog", "mammal", "sound"]


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
class Detection:
    """One detection event as stored, published and exported."""

    id: str  # UUID, stable from the first message to the final one
    start: dt.datetime  # start of the first window with a hit
    end: dt.datetime  # end of the last window with a hit (a padded last window: the file's end)
    utc_offset: dt.timedelta  # the station's offset from UTC at ``start``
    scientific: str
    common: str
    confidence: float  # the highest window confidence
    windows: int  # windows with a hit
    closed: bool  # False while the species keeps singing
    context: DetectionContext  # the settings in force when it was detected
    # Fields added later come here, after the context: their columns are appended by migrations.
    kind: Kind = "bird"
    #: How new it is (see :mod:`birdnet_edge.log.history`): the species' first detection of
    #: the day; calendar days since it was last detected (None: never); its first ever.
    first_of_day: bool = False
    first_in_days: int | None = None
    first_ever: bool = False
    #: The audio clip, relative to the clips folder (``clips.enabled``); None: none kept.
    clip: str | None = None
    #: The database's row number once read back (0 for a record not read from the database).
    rowid: int = dataclasses.field(default=0, compare=False)

    @property
    def zone(self) -> dt.timezone:
        """The station's time zone offset at the time of the event."""
        return dt.timezone(self.utc_offset)

    @property
    def status(self) -> Status:
        return "final" if self.closed else "open"

    @property
    def duration_s(self) -> float:
        return round((self.end - self.start).total_seconds(), 3)


# -- the database row ------------------------------------------------------------------------

_OWN_FIELDS = tuple(
    f.name for f in dataclasses.fields(Detection) if f.name not in ("context", "rowid")
)
_CONTEXT_FIELDS = tuple(f.name for f in dataclasses.fields(DetectionContext))
#: Fields stored as columns, in column order: the record's, with its context flattened where it
#: stands (fields declared after it were added later, and migrations append their columns),
#: and the columns of the fields whose name differs.
STORED_FIELDS = tuple(
    name
    for f in dataclasses.fields(Detection)
    if f.name != "rowid"
    for name in (_CONTEXT_FIELDS if f.name == "context" else (f.name,))
)
_COLUMN_OF = {"start": "start_utc", "end": "end_utc", "utc_offset": "utc_offset_min"}
COLUMNS = tuple(_COLUMN_OF.get(name, name) for name in STORED_FIELDS)
#: Fields stored as 0/1.
_BOOL_FIELDS = tuple(f.name for f in dataclasses.fields(Detection) if f.type in ("bool", bool))
#: The defaults of the fields added after the first schema, by column (what an older row holds).
COLUMN_DEFAULTS = {
    _COLUMN_OF.get(f.name, f.name): f.default
    for f in dataclasses.fields(Detection)
    if f.default is not dataclasses.MISSING and f.name != "rowid"
}


def sql_literal(value: object) -> str:
    """A default value as an SQL literal (text or a number)."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool | int | float):
        return str(int(value) if isinstance(value, bool) else value)
    raise TypeError(f"no SQL literal for {value!r}")


#: Columns an update of an event already stored may change (it grows, then closes).
UPDATED_COLUMNS = ("end_utc", "confidence", "windows", "closed", "clip")


def utc_text(t: dt.datetime) -> str:
    """An aware time as the stored text: UTC, millisecond precision, sortable as text."""
    u = t.astimezone(dt.timezone.utc)
    return f"{u:%Y-%m-%dT%H:%M:%S}.{u.microsecond // 1000:03d}Z"


def parse_utc(text: str) -> dt.datetime:
    """The stored text back to an aware UTC datetime."""
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def flat(d: Detection) -> dict[str, Any]:
    """The record's fields and its context's, as one mapping by name."""
    return {
        **{name: getattr(d, name) for name in _OWN_FIELDS},
        **{name: getattr(d.context, name) for name in _CONTEXT_FIELDS},
    }


def to_row(d: Detection) -> tuple[object, ...]:
    """The values of :data:`COLUMNS` for ``d``."""
    values = flat(d)
    values["start"], values["end"] = utc_text(d.start), utc_text(d.end)
    values["utc_offset"] = round(d.utc_offset.total_seconds() / 60)
    for name in _BOOL_FIELDS:
        values[name] = int(values[name])
    return tuple(values[name] for name in STORED_FIELDS)


def from_row(row: Sequence[Any], rowid: int = 0) -> Detection:
    """A record from the values of :data:`COLUMNS` (as :func:`to_row` wrote them)."""
    values = dict(zip(STORED_FIELDS, row, strict=True))
    own = {name: values[name] for name in _OWN_FIELDS}
    own["start"], own["end"] = parse_utc(own["start"]), parse_utc(own["end"])
    own["utc_offset"] = dt.timedelta(minutes=own["utc_offset"])
    for name in _BOOL_FIELDS:
        own[name] = bool(own[name])
    context = DetectionContext(**{name: values[name] for name in _CONTEXT_FIELDS})
    return Detection(**own, context=context, rowid=rowid)


# -- the MQTT message --------------------------------------------------------------------------

#: Record fields in the MQTT message, under the message's names (its schema is public: Home
#: Assistant templates read it).
_MESSAGE_KEYS = {
    "id": "id", "status": "status", "start": "start", "end": "end",
    "scientific": "scientific_name", "common": "common_name", "confidence": "confidence",
    "windows": "windows", "station": "station", "latitude": "latitude",
    "longitude": "longitude", "model": "model", "precision": "precision", "kind": "kind",
    "first_of_day": "first_of_day", "first_in_days": "first_in_days", "first_ever": "first_ever",
    "clip": "clip",
}  # fmt: skip


def message(d: Detection) -> dict[str, Any]:
    """The JSON object published on ``<prefix>/detection`` (times local, with their offset)."""
    values = {**flat(d), "status": d.status}
    out: dict[str, Any] = {}
    for field, key in _MESSAGE_KEYS.items():
        value = values[field]
        if isinstance(value, dt.datetime):
            value = value.astimezone().isoformat(timespec="milliseconds")
        elif field == "confidence":
            value = round(value, 4)
        out[key] = value
    return out


# -- CSV and JSON Lines ------------------------------------------------------------------------

EXPORT_FIELDS = (
    "id", "start", "end", "utc_offset", "common", "scientific", "confidence", "windows",
    "duration_s", "station", "latitude", "longitude", "model", "precision", "sensitivity",
    "overlap", "min_confidence", "kind", "first_of_day", "first_in_days", "first_ever", "clip",
)  # fmt: skip


def iso(t: dt.datetime) -> str:
    """ISO 8601 with milliseconds; ``Z`` for UTC."""
    text = t.isoformat(timespec="milliseconds")
    return text[:-6] + "Z" if text.endswith("+00:00") and t.tzinfo is dt.timezone.utc else text


def export(d: Detection, *, utc: bool) -> dict[str, Any]:
    """One detection as a flat mapping of :data:`EXPORT_FIELDS` (times in station time, or UTC)."""
    zone = dt.timezone.utc if utc else d.zone
    sign = "-" if d.utc_offset < dt.timedelta() else "+"
    minutes = abs(int(d.utc_offset.total_seconds())) // 60
    values = {**flat(d), "duration_s": d.duration_s}
    out: dict[str, Any] = {}
    for name in EXPORT_FIELDS:
        value = values[name]
        if isinstance(value, dt.datetime):
            value = iso(value.astimezone(zone))
        elif name == "utc_offset":
            value = f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
        elif name == "confidence":
            value = round(value, 4)
        out[name] = value
    return out


# -- the console line --------------------------------------------------------------------------


def console_line(d: Detection) -> str:
    """The line the daemon prints when a detection opens (local time)."""
    when = f"{d.start.astimezone():%Y-%m-%d %H:%M:%S}"
    if d.kind == "sound":
        return f"{when} sound: {d.common} {d.confidence:.2f}"
    return f"{when} {d.common} ({d.scientific}) {d.confidence:.2f}"
