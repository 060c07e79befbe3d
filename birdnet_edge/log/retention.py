"""Retention: deleting the oldest events and undelivered MQTT messages past the configured age
or size, a small step at a time so the writer is never held up for long."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from dataclasses import dataclass

from birdnet_edge.log.record import utc_text

_LOGGER = logging.getLogger(__name__)

PRUNE_BATCH = 500  # rows deleted per retention step
VACUUM_PAGES = 256  # pages returned to the file system per retention step (1 MiB at 4 KiB)


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of the database in use (its pages minus the free ones)."""
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    return (pages - free) * size


@dataclass(frozen=True)
class Pruned:
    """What one retention step deleted."""

    events: int = 0
    messages: int = 0  # MQTT outbox rows the broker had not acknowledged
    more: bool = False  # there is more to do: call again soon


def prune_step(
    conn: sqlite3.Connection,
    retention_days: int,
    max_size_mb: int,
    *,
    now: dt.datetime | None = None,
) -> Pruned:
    """Delete at most :data:`PRUNE_BATCH` of the oldest events or undelivered MQTT messages
    past the limits, and give up to :data:`VACUUM_PAGES` free pages back to the file system.
    Short, so the writer is never held up for long.

    The outbox counts against the limits like the log: while the broker is away it grows by a
    message per detection, and pruning only events would empty the log and still leave the
    file over its size. Over the size limit, whichever of the two holds the older entry loses
    a batch of its oldest."""
    events = messages = 0
    if retention_days > 0:
        now = now or dt.datetime.now(dt.timezone.utc)
        cutoff = utc_text(now - dt.timedelta(days=retention_days))
        events = conn.execute(
            "DELETE FROM detections WHERE rowid IN (SELECT rowid FROM detections "
            "WHERE start_utc < ? ORDER BY start_utc LIMIT ?)",
            (cutoff, PRUNE_BATCH),
        ).rowcount
        messages = conn.execute(
            "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox "
            "WHERE created_utc < ? ORDER BY seq LIMIT ?)",
            (cutoff, PRUNE_BATCH),
        ).rowcount
    if not (events or messages) and max_size_mb > 0 and used_bytes(conn) > max_size_mb << 20:
        oldest_event = conn.execute("SELECT min(start_utc) FROM detections").fetchone()[0]
        oldest_message = conn.execute(
            "SELECT created_utc FROM outbox ORDER BY seq LIMIT 1"
        ).fetchone()
        if oldest_message is not None and (
            oldest_event is None or oldest_message[0] < oldest_event
        ):
            messages = conn.execute(
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)",
                (PRUNE_BATCH,),
            ).rowcount
        else:
            events = conn.execute(
                "DELETE FROM detections WHERE rowid IN (SELECT rowid FROM detections "
                "ORDER BY start_utc LIMIT ?)",
                (PRUNE_BATCH,),
            ).rowcount
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    vacuum = int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) == 2
    if free and vacuum:
        # executescript steps the pragma to the end; execute would free a single page.
        conn.executescript(f"PRAGMA incremental_vacuum({VACUUM_PAGES});")
    if events or messages:
        _LOGGER.debug("retention: deleted %d old events, %d old MQTT messages", events, messages)
    more = events > 0 or messages > 0 or (vacuum and free > VACUUM_PAGES)
    return Pruned(events, messages, more)
