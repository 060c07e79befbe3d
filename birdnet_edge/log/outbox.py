"""The MQTT outbox: detections waiting for the broker's acknowledgement.

The SQLite sink inserts a row into ``outbox`` in the same transaction as the detection; the MQTT
publisher reads pending rows in ``seq`` order through its own connection and deletes a row only
once the broker has acknowledged (PUBACK) its message. Nothing here creates or migrates the
table: the SQLite sink owns the schema.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from birdnet_edge.log.schema import BUSY_TIMEOUT_MS


@dataclass(frozen=True)
class OutboxRow:
    """One message to publish."""

    seq: int
    event_id: str
    payload: str
    created_utc: str
    topic: str = "detection"  # below the prefix: detection, or event (Home Assistant's)


class Outbox:
    """Reads and acknowledges outbox rows; use from one thread only.

    The database is opened lazily and read-write without creating it, so a publisher that starts
    before the SQLite sink has made the file simply finds nothing to send yet.
    """

    def __init__(self, path: Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is None:
            if not self.path.exists():
                return None
            conn = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=rw",
                uri=True,
                isolation_level=None,  # autocommit; ack() opens its own transaction
                check_same_thread=False,  # opened by start(), used by the publisher thread
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            # An acknowledgement's DELETE need not reach the disk at once: lost in a power cut,
            # its message is only sent again (delivery is at least once). Without an fsync per
            # acknowledgement the publisher costs a third of the CPU per detection.
            conn.execute("PRAGMA synchronous = NORMAL")
            self._conn = conn
        return self._conn

    def pending(self, after_seq: int = 0, limit: int = 100) -> list[OutboxRow]:
        """Up to ``limit`` rows with ``seq > after_seq``, oldest first ([] without a table)."""
        conn = self._connection()
        if conn is None:
            return []
        try:
            rows = conn.execute(
                "SELECT seq, event_id, payload, created_utc, topic FROM outbox "
                "WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        return [OutboxRow(int(s), str(e), str(p), str(c), str(t)) for s, e, p, c, t in rows]

    def count(self) -> int:
        """Detection messages not yet acknowledged by the broker (Home Assistant's event
        messages, one per detection, are not counted twice)."""
        conn = self._connection()
        if conn is None:
            return 0
        try:
            query = "SELECT count(*) FROM outbox WHERE topic = 'detection'"
            return int(conn.execute(query).fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return 0
            raise

    def ack(self, seqs: Iterable[int]) -> None:
        """Delete acknowledged rows in one transaction (raises ``sqlite3.Error`` if locked)."""
        ids = [(int(s),) for s in seqs]
        if not ids:
            return
        conn = self._connection()
        if conn is None:  # pragma: no cover - rows were read, so the file exists
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("DELETE FROM outbox WHERE seq = ?", ids)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
