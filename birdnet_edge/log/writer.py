"""The local detection log: one SQLite row per detection event, written by a single thread.

An event is INSERTed when it opens and UPDATEd as it grows and closes, so a crash loses nothing
already heard. The file is in WAL mode (readers such as ``birdnet-edge log`` never block the
writer) with ``synchronous=FULL``: every commit survives a power cut, and the writer batches all
changes that queued up while the previous commit was being synced, so a busy dawn chorus costs one
commit per batch rather than one per window.

What must survive is written at once: an event's opening, the change that makes it a detection
(it carries the MQTT messages that announce it) and its closing. An event merely growing (one
more window, no message) waits up to ``update_seconds`` for the next such commit, so a bird
singing for ten minutes costs a few commits instead of one every window: every synced commit
rewrites whole pages of the file and its WAL, which is what wears an SD card. A crash can lose
only that growth (the event's last windows and best confidence), never the detection.

When the disk is full or the file system is read-only, the writer keeps the latest state of every
pending event in memory (bounded), logs one error line a minute naming the problem and the fix,
retries, and catches up when it can write again; the pipeline never waits for it.

The file and its schema are :mod:`birdnet_edge.log.schema`'s, pruning is
:mod:`birdnet_edge.log.retention`'s. The ``outbox`` table holds the MQTT messages a
change carries (:attr:`EventChange.messages`), written in the same transaction as the change; the
MQTT publisher reads and deletes them. The writer tells what it wrote to its
:class:`~birdnet_edge.log.feed.LogFeed` (the console and the publisher follow it).
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from birdnet_edge.detect.events import EventChange
from birdnet_edge.log.feed import LogFeed
from birdnet_edge.log.record import COLUMNS, UPDATED_COLUMNS, Detection, to_row, utc_text
from birdnet_edge.log.retention import Pruned, prune_step
from birdnet_edge.log.schema import open_database
from birdnet_edge.log.storage import describe_storage_error, unusable_at_start

_LOGGER = logging.getLogger(__name__)

_UPSERT = (
    f"INSERT INTO detections ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in UPDATED_COLUMNS)
)
_OUTBOX = "INSERT INTO outbox (event_id, topic, payload, created_utc) VALUES (?, ?, ?, ?)"
_SPECIES = "INSERT OR IGNORE INTO species (scientific, common) VALUES (?, ?)"

Row = tuple[object, ...]


@dataclass
class _Pending:
    """The latest state of one event not yet written, and the outbox messages due for it."""

    detection: Detection
    #: (order made, topic, payload): outbox rows are written in the order they were made.
    messages: list[tuple[int, str, str]]
    opened: bool = False  # the event opened since the last commit (not yet reported onward)


class LogWriter:
    """Writes every event change to the detection database from one writer thread."""

    def __init__(
        self,
        path: Path,
        *,
        feed: LogFeed | None = None,
        retention_days: int = 0,
        max_size_mb: int = 0,
        retry_seconds: float = 5.0,
        error_interval: float = 60.0,
        prune_interval: float = 600.0,
        max_pending: int = 100_000,
        batch_max: int = 2000,
        update_seconds: float = 30.0,
    ) -> None:
        """Open (or create and migrate) ``path`` and start the writer thread.

        ``feed``: told what was written (see :mod:`birdnet_edge.log.feed`).
        ``retention_days``/``max_size_mb``: prune the oldest events past these limits (0 = off).
        ``retry_seconds``: wait between write attempts while storage fails; ``error_interval``:
        at most one error line per this many seconds; ``prune_interval``: how often to check the
        retention limits when idle; ``max_pending``: events kept in memory while storage fails;
        ``update_seconds``: how long an event's growth alone may wait to be written.
        Raises :class:`BirdnetEdgeError` when the file is not (or too new) a birdnet-edge
        database; a full or read-only disk does not raise (the writer keeps retrying).
        """
        self.path = path
        self.feed = feed or LogFeed()
        self.retention_days = retention_days
        self.max_size_mb = max_size_mb
        self.retry_seconds = retry_seconds
        self.error_interval = error_interval
        self.prune_interval = prune_interval
        self.max_pending = max_pending
        self.batch_max = batch_max
        self.update_seconds = update_seconds
        #: Ids of the events still unwritten when the writer stopped (set on close).
        self.unwritten: set[str] = set()
        self._messages_made = 0

        self._queue: queue.SimpleQueue[EventChange | threading.Event | None] = queue.SimpleQueue()
        self._pending: dict[str, _Pending] = {}
        self._urgent = False  # a pending change must be written at once (see the docstring)
        self._growth_since: float | None = None  # when unwritten growth began to wait
        self._conn: sqlite3.Connection | None = None
        self._recovered = False
        self._failing_since: float | None = None
        self._last_error_log = -float("inf")
        self._next_attempt = 0.0
        self._next_prune = 0.0
        self._pruned_messages = 0  # undelivered MQTT messages deleted in this round of pruning
        self._dropped = 0
        self.written = 0  # event states committed (for tests and statistics)
        self.commits = 0  # transactions committed
        self._barriers: list[threading.Event] = []  # set once everything before them is written
        self._connect(at_start=True)
        self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
        self._thread.start()

    # -- the pipeline's side ------------------------------------------------------------------

    def handle(self, change: EventChange) -> None:
        """Queue one change for the writer thread; never blocks."""
        self._queue.put(change)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (one last attempt if storage is failing), then stop."""
        if not self._thread.is_alive():
            return
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            _LOGGER.warning(
                "the database writer did not finish within %.0f s; %d events may not be saved",
                timeout, len(self._pending),
            )  # fmt: skip

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every change handed over so far is written (True) or ``timeout`` passes."""
        if not self._thread.is_alive():
            return not self._pending
        barrier = threading.Event()
        self._queue.put(barrier)
        return barrier.wait(timeout)

    def set_retention(self, retention_days: int, max_size_mb: int) -> None:
        """New retention limits (a config reload), checked at once."""
        self.retention_days, self.max_size_mb = retention_days, max_size_mb
        self._next_prune = 0.0
        self._queue.put(threading.Event())  # wakes the writer, which may wait forever

    @property
    def pending(self) -> int:
        """Events waiting in memory to be written."""
        return len(self._pending)

    # -- the writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            stopping = self._receive(self._wait_time())
            try:
                if self._pending and (stopping or time.monotonic() >= self._next_write()):
                    self._flush()
                if not self._pending and not stopping and self._retention_on():
                    self._maybe_prune()
            except Exception:  # a bug must not stop the log: keep the events, retry later
                _LOGGER.exception("unexpected error in the database writer")
                self._next_attempt = time.monotonic() + self.retry_seconds
            if not self._pending:
                for barrier in self._barriers:
                    barrier.set()
                self._barriers.clear()
        self.unwritten = {p.detection.id for p in self._pending.values()}
        if self._pending:
            _LOGGER.error(
                "%d detection events could not be written to %s before shutdown: %s",
                len(self._pending), self.path, "see the errors above",
            )  # fmt: skip
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _next_write(self) -> float:
        """When the pending changes are due: at once (or at the next retry while storage fails)
        if one must survive or someone waits for them; growth alone, ``update_seconds`` after
        it began to wait."""
        if self._urgent or self._barriers or self._growth_since is None:
            return self._next_attempt
        return max(self._next_attempt, self._growth_since + self.update_seconds)

    def _wait_time(self) -> float | None:
        """How long to wait for changes: until the pending ones are due or the next retention
        step, else forever."""
        now = time.monotonic()
        if self._pending:
            return max(0.0, self._next_write() - now)
        if self._retention_on():
            return max(0.05, self._next_prune - now)
        return None

    def _receive(self, wait: float | None) -> bool:
        """Take what is queued (waiting up to ``wait`` for the first item); True on stop."""
        stopping = False
        try:
            items = [self._queue.get(timeout=wait)]
        except queue.Empty:
            return False
        while len(items) < self.batch_max:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for item in items:
            if item is None:
                stopping = True
            elif isinstance(item, threading.Event):
                self._barriers.append(item)
            else:
                self._take(item)
        return stopping

    def _take(self, change: EventChange) -> None:
        """Merge one change into the pending state (only the latest state of an event matters;
        its outbox messages all count, numbered in the order they were made)."""
        d = change.detection
        previous = self._pending.pop(d.id, None)  # re-insert: keep pending in order of change
        messages = previous.messages if previous else []
        opened = previous.opened if previous else change.kind == "opened"
        for topic, payload in change.messages:
            self._messages_made += 1
            messages = [*messages, (self._messages_made, topic, payload)]
        self._pending[d.id] = _Pending(d, messages, opened)
        if change.kind != "updated" or change.messages:
            self._urgent = True
        elif self._growth_since is None:
            self._growth_since = time.monotonic()
        if len(self._pending) > self.max_pending:
            del self._pending[next(iter(self._pending))]
            self._dropped += 1

    def _flush(self) -> None:
        """Write every pending event in one transaction; on failure keep them and back off."""
        batch = list(self._pending.values())
        outboxed = 0
        try:
            conn = self._conn or self._connect()
            if conn is None:
                raise sqlite3.OperationalError("database not open")  # _connect logged why
            created = utc_text(dt.datetime.now(dt.timezone.utc))
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(_UPSERT, [to_row(p.detection) for p in batch])
                names = {(p.detection.scientific, p.detection.common) for p in batch}
                conn.executemany(_SPECIES, sorted(names))
                due = sorted(
                    (order, p.detection.id, topic, payload)
                    for p in batch
                    for order, topic, payload in p.messages
                )  # the order they were made
                outbox = [
                    (event_id, topic, payload, created) for _, event_id, topic, payload in due
                ]
                if outbox:
                    conn.executemany(_OUTBOX, outbox)
                    outboxed = len(outbox)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc)
            self._report(batch, 0)  # storage is failing: report anyway, do not go silent
            self._hand_over(batch)
            return
        self._report(batch, outboxed)
        for p in batch:
            if self._pending.get(p.detection.id) is p:
                del self._pending[p.detection.id]
        self._urgent, self._growth_since = False, None  # (all of the batch was taken)
        self.written += len(batch)
        self.commits += 1
        if self._failing_since is not None:
            _LOGGER.warning(
                "writing detections to %s again after %.0f s; caught up with %d events%s",
                self.path, time.monotonic() - self._failing_since, len(batch),
                f" ({self._dropped} older ones were dropped)" if self._dropped else "",
            )  # fmt: skip
            self._failing_since = None
            self._last_error_log = -float("inf")
            self._dropped = 0

    def _hand_over(self, batch: list[_Pending]) -> None:
        """The outbox cannot be written: hand its messages to the feed, for MQTT to publish
        from memory (they are then not written when the disk works again)."""
        if not self.feed.followed:
            return
        due = sorted(
            (order, p.detection.id, topic, payload)
            for p in batch
            for order, topic, payload in p.messages
        )
        if not due:
            return
        for p in batch:
            p.messages = []
        self.feed.unstored([(event, topic, payload) for _, event, topic, payload in due])

    def _report(self, batch: list[_Pending], outboxed: int) -> None:
        """Tell the feed about the events opened since the last attempt, and the outbox rows."""
        opened = sorted((p for p in batch if p.opened), key=lambda p: p.detection.start)
        for p in opened:
            p.opened = False
        if opened or outboxed:
            self.feed.written([p.detection for p in opened], outboxed)

    def _connect(self, *, at_start: bool = False) -> sqlite3.Connection | None:
        """Open the database; storage errors are reported and retried, others raise.

        At start, a database that cannot be used and will not heal by waiting (damaged, a
        folder, no permission, a full disk) raises instead: the daemon must not run while
        it drops every event.
        """
        try:
            conn = open_database(self.path)
            if not self._recovered:
                # Events left open by a crash or power cut are over: mark them closed (this
                # also reads the table, so a damaged file shows here).
                try:
                    conn.execute("UPDATE detections SET closed = 1 WHERE closed = 0")
                except BaseException:
                    conn.close()
                    raise
        except (sqlite3.Error, OSError) as exc:
            refusal = unusable_at_start(exc, self.path) if at_start else None
            if refusal is not None:
                raise refusal from None
            self._failed(exc)
            return None
        self._recovered = True
        self._conn = conn
        return conn

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self._conn is not None:  # reopen on the next attempt: the file may have changed
            self._conn.close()
            self._conn = None
        if self._failing_since is None:
            self._failing_since = now
        self._next_attempt = now + self.retry_seconds
        if now - self._last_error_log >= self.error_interval:
            self._last_error_log = now
            _LOGGER.error(
                "cannot write detections to %s: %s (%d events kept in memory%s; retrying every "
                "%g s)",
                self.path, describe_storage_error(exc, self.path), len(self._pending),
                f", {self._dropped} dropped" if self._dropped else "", self.retry_seconds,
            )  # fmt: skip
        else:
            _LOGGER.debug("database write failed again: %s", exc)

    # -- retention ----------------------------------------------------------------------------

    def _retention_on(self) -> bool:
        return self.retention_days > 0 or self.max_size_mb > 0

    def _maybe_prune(self) -> None:
        """One small retention step when due; reschedules itself soon if there is more to do."""
        now = time.monotonic()
        if now < self._next_prune or self._failing_since is not None:
            return
        conn = self._conn
        if conn is None:
            return
        try:
            pruned = prune_step(conn, self.retention_days, self.max_size_mb)
        except sqlite3.Error as exc:
            _LOGGER.warning("retention pruning of %s failed: %s", self.path, exc)
            pruned = Pruned()
        self._pruned_messages += pruned.messages
        if not pruned.more and self._pruned_messages:
            _LOGGER.warning(
                "deleted %d MQTT messages the broker never acknowledged, past "
                "database.retention_days or database.max_size_mb: check that the MQTT broker "
                "is reachable, or raise the limits",
                self._pruned_messages,
            )
            self._pruned_messages = 0
        self._next_prune = now + (0.05 if pruned.more else self.prune_interval)
