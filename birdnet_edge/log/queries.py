"""Read-only queries on the detection database, for the review commands.

The connection is opened with ``mode=ro``: it never writes, takes no write lock, and in WAL mode
reads a consistent snapshot while the daemon keeps writing.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from birdnet_edge.errors import BirdnetEdgeError
from birdnet_edge.log.history import previous_start
from birdnet_edge.log.record import (
    COLUMN_DEFAULTS,
    COLUMNS,
    Detection,
    from_row,
    parse_utc,
    sql_literal,
    utc_text,
)
from birdnet_edge.log.schema import BUSY_TIMEOUT_MS, SCHEMA_VERSION


def _present(conn: sqlite3.Connection) -> set[str]:
    return {str(row[1]) for row in conn.execute("PRAGMA table_info(detections)")}


def _columns(conn: sqlite3.Connection) -> str:
    """The SELECT list of a record: columns a database not yet migrated lacks (the daemon
    migrates it when it next starts) read as the record's default for that field."""
    present = _present(conn)
    return "rowid, " + ", ".join(
        name if name in present else f"{sql_literal(COLUMN_DEFAULTS[name])} AS {name}"
        for name in COLUMNS
    )


@dataclass(frozen=True)
class Filters:
    """Which detections a review command looks at."""

    since: dt.datetime | None = None  # aware; events that start at or after it
    until: dt.datetime | None = None  # aware; events that start before it
    species: str | None = None  # case-insensitive substring of the common or scientific name
    min_conf: float | None = None  # highest window confidence at least this
    scientific: str | None = None  # exactly this species
    sounds: bool = False  # also BirdNET's sounds (dog, engine, siren...: report_sounds)


@dataclass(frozen=True)
class SpeciesSummary:
    """One species over a period."""

    scientific: str
    common: str
    count: int
    first: dt.datetime  # aware, in the station's offset at that time
    last: dt.datetime
    max_confidence: float
    #: The species' latest detection before ``first`` (None: ``first`` is its first ever).
    previous: dt.datetime | None = None

    @property
    def days_away(self) -> int | None:
        """Calendar days (station time) from the detection before the period to its first."""
        if self.previous is None:
            return None
        zone = self.first.tzinfo
        return (self.first.date() - self.previous.astimezone(zone).date()).days


def connect(path: Path) -> sqlite3.Connection:
    """Open ``path`` read-only; one-line errors for a missing, unreadable or foreign file."""
    try:
        exists = path.exists()
    except OSError as exc:  # e.g. a service's 0750 state directory
        raise BirdnetEdgeError(_cannot_read(path, exc)) from None
    if not exists:
        raise BirdnetEdgeError(
            f"no detection database at {path} yet: start the listener (`birdnet-edge run`) "
            "to create it, or give its location with --db or database.path in the config"
        )
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise BirdnetEdgeError(_cannot_read(path, exc)) from None
    try:
        found = (
            conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                "AND name IN ('detections', 'species')"
            ).fetchone()[0]
            == 2
        )
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as exc:
        conn.close()
        raise BirdnetEdgeError(_cannot_read(path, exc)) from None
    if not found:
        conn.close()
        raise BirdnetEdgeError(
            f"{path} is not a birdnet-edge detection database: check --db or database.path"
        )
    if version > SCHEMA_VERSION:
        conn.close()
        raise BirdnetEdgeError(
            f"{path} has schema version {version}, newer than this birdnet-edge reads "
            f"({SCHEMA_VERSION}): upgrade birdnet-edge"
        )
    return conn


def _cannot_read(path: Path, exc: sqlite3.Error | OSError) -> str:
    if "not a database" in str(exc):
        return f"{path} is not a SQLite database: check --db or database.path"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
    return (
        f"cannot read {path}: {reason}: run as a user that may read it and its directory "
        "(e.g. with sudo, or join the group that owns it)"
    )


def matching_species(conn: sqlite3.Connection, text: str) -> list[str]:
    """Scientific names of the stored species whose common or scientific name contains
    ``text``, ignoring case (Unicode-aware, unlike SQLite's ``LIKE``)."""
    wanted = text.casefold()
    return sorted(
        {
            sci
            for sci, common in conn.execute("SELECT scientific, common FROM species")
            if wanted in sci.casefold() or wanted in common.casefold()
        }
    )


def _where(conn: sqlite3.Connection, f: Filters) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if f.since is not None:
        clauses.append("start_utc >= ?")
        params.append(utc_text(f.since))
    if f.until is not None:
        clauses.append("start_utc < ?")
        params.append(utc_text(f.until))
    if f.species:
        names = matching_species(conn, f.species)
        clauses.append(f"scientific IN ({', '.join('?' * len(names))})" if names else "0")
        params += names
    if f.min_conf is not None:
        clauses.append("confidence >= ?")
        params.append(f.min_conf)
    if f.scientific is not None:
        clauses.append("scientific = ?")
        params.append(f.scientific)
    if not f.sounds and "kind" in _present(conn):
        clauses.append("kind != 'sound'")
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _detection(row: Any) -> Detection:
    return from_row(tuple(row[1:]), rowid=row[0])


def clips(conn: sqlite3.Connection) -> dict[str, tuple[str, float, dt.datetime]]:
    """Every clip the log names: its species, confidence and start, by its name."""
    if "clip" not in _present(conn):
        return {}
    rows = conn.execute(
        "SELECT clip, scientific, confidence, start_utc FROM detections WHERE clip IS NOT NULL"
    )
    return {str(c): (str(s), float(p), parse_utc(t)) for c, s, p, t in rows}


def by_id(conn: sqlite3.Connection, prefix: str) -> list[Detection]:
    """The detections whose id starts with ``prefix`` (a range on the id's unique index)."""
    prefix = prefix.strip().lower()
    sql = f"SELECT {_columns(conn)} FROM detections WHERE id >= ? AND id < ? ORDER BY id LIMIT 2"
    return [_detection(r) for r in conn.execute(sql, (prefix, prefix + "\uffff"))]


def recent(conn: sqlite3.Connection, f: Filters, limit: int | None) -> list[Detection]:
    """The ``limit`` latest matching detections (all when None), oldest first."""
    where, params = _where(conn, f)
    sql = f"SELECT {_columns(conn)} FROM detections{where} ORDER BY start_utc DESC, rowid DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    rows = [_detection(r) for r in conn.execute(sql, params)]
    rows.reverse()
    return rows


def detections(
    conn: sqlite3.Connection, f: Filters, limit: int | None = None
) -> Iterator[Detection]:
    """Every matching detection in time order (the first ``limit`` when given), streamed."""
    where, params = _where(conn, f)
    sql = f"SELECT {_columns(conn)} FROM detections{where} ORDER BY start_utc, rowid"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    for row in conn.execute(sql, params):
        yield _detection(row)


def _rows(after: int, upto: int, among: Collection[int]) -> tuple[str, list[object]]:
    """SQL for rows ``after < rowid <= upto`` and the rows ``among``."""
    sql = "(rowid > ? AND rowid <= ?"
    if among:
        sql += f" OR rowid IN ({', '.join('?' * len(among))})"
    return sql + ")", [after, upto, *sorted(among)]


def newer_than(
    conn: sqlite3.Connection, f: Filters, after: int, upto: int, among: Collection[int] = ()
) -> list[Detection]:
    """Matching detections in rows ``after < rowid <= upto`` and among the rowids ``among``,
    in the order they were written."""
    where, params = _where(conn, f)
    rows, more = _rows(after, upto, among)
    where = f"{where} AND {rows}" if where else f" WHERE {rows}"
    sql = f"SELECT {_columns(conn)} FROM detections{where} ORDER BY rowid"
    return [_detection(r) for r in conn.execute(sql, [*params, *more])]


def open_rowids(
    conn: sqlite3.Connection, after: int, upto: int, among: Collection[int] = ()
) -> set[int]:
    """Rowids of events still growing (not closed) in rows ``after < rowid <= upto`` and among
    ``among``: an event can still come to match a filter such as a minimum confidence."""
    rows, params = _rows(after, upto, among)
    sql = f"SELECT rowid FROM detections WHERE closed = 0 AND {rows}"
    return {int(r[0]) for r in conn.execute(sql, params)}


def last_rowid(conn: sqlite3.Connection) -> int:
    """The newest row's id (0 when empty)."""
    return int(conn.execute("SELECT coalesce(max(rowid), 0) FROM detections").fetchone()[0])


def summary(conn: sqlite3.Connection, f: Filters) -> list[SpeciesSummary]:
    """Per species: count, first and last heard, highest confidence; most detected first."""
    where, params = _where(conn, f)
    # start_utc has a fixed width, so MIN/MAX of "start offset" pick the first/last event's
    # own offset along with its time.
    sql = (
        "SELECT scientific, max(common), count(*), "
        "min(start_utc || ' ' || utc_offset_min), max(start_utc || ' ' || utc_offset_min), "
        f"max(confidence) FROM detections{where} "
        "GROUP BY scientific ORDER BY count(*) DESC, max(common)"
    )
    out: list[SpeciesSummary] = []
    for sci, common, count, first, last, conf in conn.execute(sql, params).fetchall():
        begun = _zoned(first)
        before = previous_start(conn, str(sci), begun)  # one index lookup a species
        out.append(
            SpeciesSummary(
                str(sci), str(common), int(count), begun, _zoned(last), float(conf), before
            )
        )
    return out


def arrivals(conn: sqlite3.Connection, f: Filters, away_days: int) -> list[SpeciesSummary]:
    """The species that arrived in the period: their first detection in it came after at least
    ``away_days`` calendar days without one, or was their first ever; in order of arrival."""
    new = [s for s in summary(conn, f) if s.days_away is None or s.days_away >= away_days]
    return sorted(new, key=lambda s: s.first)


def _zoned(text: str) -> dt.datetime:
    start, offset = text.split(" ")
    return parse_utc(start).astimezone(dt.timezone(dt.timedelta(minutes=int(offset))))


def species_names(conn: sqlite3.Connection, f: Filters) -> list[tuple[str, str]]:
    """(scientific, common) of every species with a matching detection, by common name."""
    where, params = _where(conn, f)
    sql = (
        f"SELECT scientific, max(common) FROM detections{where} "
        "GROUP BY scientific ORDER BY max(common)"
    )
    return [(str(s), str(c)) for s, c in conn.execute(sql, params)]


def hourly(conn: sqlite3.Connection, f: Filters, *, utc: bool = False) -> list[int]:
    """Matching detections per hour of the day (station local time, or UTC): 24 counts."""
    where, params = _where(conn, f)
    shift = "" if utc else ", utc_offset_min || ' minutes'"
    counts = [0] * 24
    for hour, n in conn.execute(
        f"SELECT CAST(strftime('%H', start_utc{shift}) AS INTEGER), count(*) "
        f"FROM detections{where} GROUP BY 1",
        params,
    ):
        counts[hour] = n
    return counts


def activity(conn: sqlite3.Connection, f: Filters) -> list[tuple[str, dt.date, int, int]]:
    """Matching detections by species, station-local day and hour of the day:
    (scientific, day, hour, count) for every combination that has any (one grouped scan)."""
    where, params = _where(conn, f)
    local = "start_utc, utc_offset_min || ' minutes'"
    sql = (
        f"SELECT scientific, date({local}), CAST(strftime('%H', {local}) AS INTEGER), count(*) "
        f"FROM detections{where} GROUP BY 1, 2, 3"
    )
    return [
        (str(s), dt.date.fromisoformat(str(day)), int(hour), int(n))
        for s, day, hour, n in conn.execute(sql, params)
    ]


def contexts(conn: sqlite3.Connection, f: Filters) -> list[tuple[str, str, str, int]]:
    """The stations and models the matching detections were made with:
    (station, model, precision, count), most detections first."""
    where, params = _where(conn, f)
    sql = (
        f"SELECT station, model, precision, count(*) FROM detections{where} "
        "GROUP BY 1, 2, 3 ORDER BY 4 DESC"
    )
    return [(str(s), str(m), str(p), int(n)) for s, m, p, n in conn.execute(sql, params)]
