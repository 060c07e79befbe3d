"""The local detection log: one SQLite row per detection event, written by a single thread.

An event is INSERTed when it opens and UPDATEd as it grows and closes, so a crash loses nothing
already heard. The file is in WAL mode (readers such as ``birdnet-edge log`` never block the
writer) with ``synchronous=FULL``: every commit survives a power cut, and the writer batches all
changes that queued up while the previous commit was being synced, so a busy dawn chorus costs one
commit per batch rather than one per window.

When the disk is full or the file system is read-only, the writer keeps the latest state of every
pending event in memory (bounded), logs one error line a minute naming the problem and the fix,
retries, and catches up when it can write again; the pipeline never waits for it.

Schema changes are numbered migrations recorded in ``PRAGMA user_version``; a copy of the file is
made before an existing database is migrated. The ``outbox`` table holds the MQTT messages a
change carries (:attr:`EventChange.messages`), written in the same transaction as the change; the
MQTT publisher reads and deletes them. The writer tells what it wrote to its
:class:`~birdnet_edge.sinks.feed.LogFeed` (the console and the publisher follow it).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from birdnet_edge.errors import BirdnetEdgeError
from birdnet_edge.events import EventChange
from birdnet_edge.paths import default_state_dir
from birdnet_edge.record import (
    COLUMNS,
    UPDATED_COLUMNS,
    Detection,
    to_row,
    utc_text,
)
from birdnet_edge.sinks.feed import LogFeed

_LOGGER = logging.getLogger(__name__)

DB_NAME = "detections.db"
BUSY_TIMEOUT_MS = 5000
PRUNE_BATCH = 500  # rows deleted per retention step
VACUUM_PAGES = 256  # pages returned to the file system per retention step (1 MiB at 4 KiB)

# Each migration takes the schema from version N-1 to N (its position in the list, 1-based).
# Never edit a released migration: append a new one.
MIGRATIONS: tuple[str, ...] = (
    # 1: detection events
    """
    CREATE TABLE detections (
        id TEXT NOT NULL UNIQUE,          -- event UUID, stable across updates
        start_utc TEXT NOT NULL,          -- 'YYYY-MM-DDTHH:MM:SS.mmmZ', start of the first window
        end_utc TEXT NOT NULL,            -- end of the last window with a hit
        utc_offset_min INTEGER NOT NULL,  -- the station's UTC offset at start_utc, in minutes
        scientific TEXT NOT NULL,
        common TEXT NOT NULL,
        confidence REAL NOT NULL,         -- highest window confidence
        windows INTEGER NOT NULL,         -- windows with a hit
        closed INTEGER NOT NULL DEFAULT 0,
        station TEXT NOT NULL,
        latitude REAL,
        longitude REAL,
        model TEXT NOT NULL,
        precision TEXT NOT NULL,
        sensitivity REAL NOT NULL,
        overlap REAL NOT NULL,
        min_confidence REAL NOT NULL
    );
    CREATE INDEX detections_start ON detections (start_utc);
    CREATE INDEX detections_species ON detections (scientific, start_utc);
    -- every name pair ever stored: resolves `--species` substrings without a table scan
    CREATE TABLE species (
        scientific TEXT NOT NULL,
        common TEXT NOT NULL,
        PRIMARY KEY (scientific, common)
    ) WITHOUT ROWID;
    """,
    # 2: MQTT outbox, filled in the same transaction as the event write
    """
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_utc TEXT NOT NULL
    );
    """,
    # 3: outbox rows name their topic: the detection message, or Home Assistant's event
    """
    ALTER TABLE outbox ADD COLUMN topic TEXT NOT NULL DEFAULT 'detection';
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_UPSERT = (
    f"INSERT INTO detections ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in UPDATED_COLUMNS)
)
_OUTBOX = "INSERT INTO outbox (event_id, topic, payload, created_utc) VALUES (?, ?, ?, ?)"
_SPECIES = "INSERT OR IGNORE INTO species (scientific, common) VALUES (?, ?)"

Row = tuple[object, ...]


def default_db_path() -> Path:
    """``$STATE_DIRECTORY/detections.db`` under systemd, else ``$XDG_STATE_HOME/birdnet-edge``."""
    return default_state_dir() / DB_NAME


def open_database(path: Path, *, check_same_thread: bool = False) -> sqlite3.Connection:
    """Open (creating if needed) the detection database for writing, migrated to the current schema.

    The connection is in autocommit mode (transactions are explicit), WAL, ``synchronous=FULL``,
    with a busy timeout. Raises :class:`BirdnetEdgeError` for a file that is not a birdnet-edge
    database or is newer than this version; ``sqlite3.Error``/``OSError`` for storage problems.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
        check_same_thread=check_same_thread,
    )  # fmt: skip
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        version = _user_version(conn)
        if version == 0 and _has_tables(conn):
            _not_ours(path)
        if version == 0:
            # Only possible before the first table exists: lets retention give space back.
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA journal_size_limit = 1048576")  # truncate the WAL after checkpoints
        migrate(conn, path)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if _error_name(exc) == "SQLITE_NOTADB":
            raise BirdnetEdgeError(
                f"{path} is not a SQLite database: move it away or set database.path elsewhere"
            ) from None
        raise
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Apply the migrations past the file's ``user_version``, copying an existing file first."""
    version = _user_version(conn)
    if version > SCHEMA_VERSION:
        raise BirdnetEdgeError(
            f"{path} has schema version {version}, newer than this birdnet-edge supports "
            f"({SCHEMA_VERSION}): upgrade birdnet-edge or set database.path to another file"
        )
    if version == SCHEMA_VERSION:
        return
    if version > 0:
        backup = backup_path(path, version)
        _LOGGER.info(
            "upgrading %s from schema %d to %d; copy kept at %s",
            path, version, SCHEMA_VERSION, backup,
        )  # fmt: skip
        target = sqlite3.connect(backup)
        try:
            conn.backup(target)
        finally:
            target.close()
    for number in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def backup_path(path: Path, version: int) -> Path:
    """A name for the copy of ``path`` made before migrating it from ``version``; never reused."""
    candidate = path.with_name(f"{path.name}.v{version}.bak")
    n = 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.v{version}.{n}.bak")
    return candidate


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (``executescript`` would commit on its own)."""
    out: list[str] = []
    current = ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        raise ValueError(f"incomplete SQL statement in migration: {current.strip()[:60]}")
    return out


def _not_ours(path: Path) -> None:
    raise BirdnetEdgeError(
        f"{path} is not a birdnet-edge database: set database.path to a new file"
    )


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _has_tables(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is not None


def _error_name(exc: BaseException) -> str:
    """SQLite's error name (``SQLITE_FULL``...); Python 3.10 lacks the attribute: use the text."""
    name = getattr(exc, "sqlite_errorname", None)
    if isinstance(name, str):
        return name
    text = str(exc).lower()
    for needle, guess in (
        ("disk is full", "SQLITE_FULL"),
        ("readonly", "SQLITE_READONLY"),
        ("read-only", "SQLITE_READONLY"),
        ("not a database", "SQLITE_NOTADB"),
        ("locked", "SQLITE_BUSY"),
        ("unable to open", "SQLITE_CANTOPEN"),
        ("disk i/o error", "SQLITE_IOERR"),
    ):
        if needle in text:
            return guess
    return "SQLITE_ERROR"


DISK_FULL = (
    "the disk is full: free space on that file system, or set database.retention_days or "
    "database.max_size_mb"
)


def describe_storage_error(exc: BaseException, path: Path | None = None) -> str:
    """What went wrong writing the database at ``path``, and what the user can do about it."""
    if path is not None and _no_space(path):
        return DISK_FULL  # SQLite may say only "disk I/O error" when it cannot grow a file
    if path is not None and _read_only_fs(path):
        return (
            "the file system holding it is mounted read-only (after a storage error, see dmesg): "
            "check it with fsck and mount it read-write again"
        )
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}: check that the directory exists and is writable"
    name = _error_name(exc)
    if name.startswith("SQLITE_FULL"):
        return DISK_FULL
    if name.startswith("SQLITE_READONLY"):
        return (
            "the database is read-only: make the file, its directory and the file system "
            "writable for this user (check mount options and ownership)"
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return "the database is locked by another program: stop it (only birdnet-edge writes)"
    if name.startswith("SQLITE_IOERR"):
        return (
            f"disk I/O error ({name}): the storage failed or its file system turned read-only "
            "after an error: check dmesg, fsck the file system and mount it read-write again"
        )
    if name.startswith("SQLITE_CANTOPEN"):
        return "it cannot be opened: check that its directory exists and is writable"
    return (
        f"{exc} ({name}): check the storage device (dmesg) and that the file system is "
        "writable and not full"
    )


def _no_space(path: Path) -> bool:
    """Whether the file system holding ``path`` has no free block left for this user."""
    for directory in path.parents:
        try:
            return os.statvfs(directory).f_bavail == 0
        except FileNotFoundError:
            continue
        except OSError:
            return False
    return False


def unusable_at_start(exc: BaseException, path: Path) -> BirdnetEdgeError | None:
    """The one-line error to refuse to start with, when the database at ``path`` cannot be used
    and waiting will not help; None for a read-only file system, which the writer waits out
    (it is remounted read-write after a storage error is repaired)."""
    if path.is_dir():
        return BirdnetEdgeError(
            f"database.path {path} is a folder, not a database file: set database.path to a "
            f"file name, e.g. {path / 'detections.db'}"
        )
    if _no_space(path):
        return BirdnetEdgeError(f"cannot open the detection database {path}: {DISK_FULL}")
    if _read_only_fs(path):
        return None
    name = _error_name(exc)
    if isinstance(exc, PermissionError) or name.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY")):
        return BirdnetEdgeError(
            f"cannot open the detection database {path}: permission denied: make the file and "
            "its folder readable and writable for this user (or set database.path elsewhere)"
        )
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return BirdnetEdgeError(
            f"the detection database {path} is damaged ({exc}): move it away to start a new "
            f"one, or try `sqlite3 {path} .recover`"
        )
    return BirdnetEdgeError(
        f"cannot open the detection database {path}: {describe_storage_error(exc, path)}"
    )


def _read_only_fs(path: Path) -> bool:
    """Whether the nearest existing directory of ``path`` is on a read-only mount."""
    for directory in path.parents:
        try:
            return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
        except FileNotFoundError:
            continue
        except OSError:
            return False
    return False


@dataclass
class _Pending:
    """The latest state of one event not yet written, and the outbox messages due for it."""

    detection: Detection
    #: (order made, topic, payload): outbox rows are written in the order they were made.
    messages: list[tuple[int, str, str]]
    opened: bool = False  # the event opened since the last commit (not yet reported onward)


class SQLiteSink:
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
    ) -> None:
        """Open (or create and migrate) ``path`` and start the writer thread.

        ``feed``: told what was written (see :mod:`birdnet_edge.sinks.feed`).
        ``retention_days``/``max_size_mb``: prune the oldest events past these limits (0 = off).
        ``retry_seconds``: wait between write attempts while storage fails; ``error_interval``:
        at most one error line per this many seconds; ``prune_interval``: how often to check the
        retention limits when idle; ``max_pending``: events kept in memory while storage fails.
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
        #: Ids of the events still unwritten when the writer stopped (set on close).
        self.unwritten: set[str] = set()
        self._messages_made = 0

        self._queue: queue.SimpleQueue[EventChange | threading.Event | None] = queue.SimpleQueue()
        self._pending: dict[str, _Pending] = {}
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
                if self._pending and (stopping or time.monotonic() >= self._next_attempt):
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

    def _wait_time(self) -> float | None:
        """How long to wait for changes: until the next retry or retention step, else forever."""
        now = time.monotonic()
        if self._pending:
            return max(0.0, self._next_attempt - now)
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
