"""The detection database's file: where it lives, its schema as numbered migrations, and opening
it for writing.

Schema changes are numbered migrations recorded in ``PRAGMA user_version``; a copy of the file is
made before an existing database is migrated. Adding a field to the record
(:mod:`birdnet_edge.log.record`) means appending a migration that adds its column.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from birdnet_edge.errors import BirdnetEdgeError
from birdnet_edge.log.storage import error_name
from birdnet_edge.paths import default_state_dir

_LOGGER = logging.getLogger(__name__)

DB_NAME = "detections.db"
BUSY_TIMEOUT_MS = 5000
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
    # 4: what was heard (a bird, another animal, or one of BirdNET's sounds: report_sounds),
    # and how new it was (the species' first of the day, days since its last, first ever)
    """
    ALTER TABLE detections ADD COLUMN kind TEXT NOT NULL DEFAULT 'bird';
    ALTER TABLE detections ADD COLUMN first_of_day INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE detections ADD COLUMN first_in_days INTEGER;
    ALTER TABLE detections ADD COLUMN first_ever INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX detections_kind ON detections (kind, start_utc);
    """,
    # 5: the detection's audio clip, relative to the clips folder
    """
    ALTER TABLE detections ADD COLUMN clip TEXT;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


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
        if error_name(exc) == "SQLITE_NOTADB":
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
