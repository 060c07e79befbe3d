"""The SQLite sink on real database files: writes, outbox, batching, migrations, crash safety,
a full or read-only file system (on a real tiny tmpfs), and retention."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from birdnet_edge.detect.events import ChangeKind, EventChange
from birdnet_edge.detect.sinks import Fanout, Sink
from birdnet_edge.errors import BirdnetEdgeError
from birdnet_edge.log.feed import HeldMessage, LogFeed
from birdnet_edge.log.record import COLUMNS, Detection, DetectionContext, to_row, utc_text
from birdnet_edge.log.retention import Pruned, prune_step, used_bytes
from birdnet_edge.log.schema import SCHEMA_VERSION, default_db_path, open_database
from birdnet_edge.log.writer import LogWriter
from birdnet_edge.model.labels import Label
from birdnet_edge.mqtt.messages import Announcer
from tests.storage import fill
from tests.waiting import wait_until

CONTEXT = DetectionContext(
    station="garden", latitude=42.5, longitude=-76.45, model="BirdNET_GLOBAL_6K_V2.4_Model_FP32",
    precision="fp32", sensitivity=1.0, overlap=0.0, min_confidence=0.7,
)  # fmt: skip
CHICKADEE = Label(0, "Poecile atricapillus", "Black-capped Chickadee")
FINCH = Label(1, "Haemorhous mexicanus", "House Finch")
T0 = dt.datetime(2025, 5, 1, 5, 0, tzinfo=dt.timezone.utc)


def announced(kind: ChangeKind, e: Detection, payload: str) -> EventChange:
    """A change that makes ``e`` a detection, carrying its outbox message."""
    return EventChange(kind, e, "detected", (("detection", payload),))


class Followed:
    """Records what the writer tells its feed: the opened events and the outbox rows then."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.opened: list[str] = []
        self.outbox_rows_seen: list[int] = []  # rows in the table when told of new ones

    def written(self, opened: Sequence[Detection], outboxed: int) -> None:
        self.opened += [d.id for d in opened]
        if outboxed:
            self.outbox_rows_seen.append(len(rows(self.db, "SELECT * FROM outbox")))

    def unstored(self, messages: Sequence[HeldMessage]) -> None:
        pass


def make_event(
    label: Label = CHICKADEE,
    start: dt.datetime = T0,
    windows: int = 1,
    confidence: float = 0.8,
    context: DetectionContext = CONTEXT,
) -> Detection:
    return Detection(
        id=str(uuid.uuid4()), start=start, end=start + dt.timedelta(seconds=3 * windows),
        utc_offset=start.astimezone().utcoffset() or dt.timedelta(), scientific=label.scientific,
        common=label.common, confidence=confidence, windows=windows, closed=False,
        context=context,
    )  # fmt: skip


def shut(e: Detection) -> Detection:
    return dataclasses.replace(e, closed=True)


def grow(e: Detection, confidence: float | None = None) -> Detection:
    return dataclasses.replace(
        e, windows=e.windows + 1, end=e.end + dt.timedelta(seconds=3),
        confidence=max(e.confidence, confidence or 0.0),
    )  # fmt: skip


INSERT_ROW = (
    f"INSERT INTO detections ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
)


def rows(path: Path, sql: str = "SELECT * FROM detections") -> list[sqlite3.Row]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "detections.db"


@pytest.fixture
def sinks() -> Iterator[list[LogWriter]]:
    """Sinks created by a test are closed even when it fails."""
    made: list[LogWriter] = []
    yield made
    for s in made:
        s.close(timeout=5)


def test_default_path_follows_systemd_then_xdg(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_db_path() == tmp_path / "xdg" / "birdnet-edge" / "detections.db"
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/birdnet-edge")
    assert default_db_path() == Path("/var/lib/birdnet-edge/detections.db")


def test_new_database_is_wal_current_and_incrementally_vacuumed(db: Path) -> None:
    conn = open_database(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert {
            "detections",
            "outbox",
            "species",
            "detections_start",
            "detections_species",
        } <= tables
    finally:
        conn.close()
    assert not list(db.parent.glob("*.bak")), "a new database needs no backup"


def test_sink_satisfies_the_protocol(db: Path, sinks: list[LogWriter]) -> None:
    made = LogWriter(db)
    sinks.append(made)
    sink: Sink = made
    sink.close(timeout=5)
    assert db.is_file()


def test_event_inserted_on_open_updated_as_it_grows_and_closed(
    db: Path, sinks: list[LogWriter]
) -> None:
    sink = LogWriter(db)
    sinks.append(sink)
    e = make_event(confidence=0.75)
    sink.handle(EventChange("opened", e))
    assert sink.flush(10)
    (row,) = rows(db)
    assert (row["id"], row["windows"], row["closed"]) == (e.id, 1, 0)
    assert row["start_utc"] == "2025-05-01T05:00:00.000Z"
    assert row["end_utc"] == "2025-05-01T05:00:03.000Z"
    assert row["scientific"] == "Poecile atricapillus"
    assert row["common"] == "Black-capped Chickadee"
    assert (row["station"], row["latitude"], row["longitude"]) == ("garden", 42.5, -76.45)
    assert (row["model"], row["precision"]) == ("BirdNET_GLOBAL_6K_V2.4_Model_FP32", "fp32")
    assert (row["sensitivity"], row["overlap"], row["min_confidence"]) == (1.0, 0.0, 0.7)
    offset = T0.astimezone().utcoffset()
    assert offset is not None
    assert row["utc_offset_min"] == offset.total_seconds() // 60

    e2 = grow(grow(e, 0.9), 0.8)
    sink.handle(EventChange("updated", grow(e, 0.9)))
    sink.handle(EventChange("updated", e2))
    sink.handle(EventChange("closed", shut(e2)))
    assert sink.flush(10)
    (row,) = rows(db)
    assert (row["windows"], row["confidence"], row["closed"]) == (3, 0.9, 1)
    assert row["end_utc"] == "2025-05-01T05:00:09.000Z"


@pytest.mark.parametrize("min_windows", [1, 3])
def test_outbox_rows_once_when_event_reaches_min_windows(
    db: Path, sinks: list[LogWriter], min_windows: int
) -> None:
    feed = LogFeed()
    followed = Followed(db)
    feed.follow(followed)
    sink = LogWriter(db, feed=feed)
    sinks.append(sink)
    fanout = Fanout([sink], Announcer(min_windows))  # as the daemon wires them
    e = make_event()
    short = make_event(FINCH)  # never reaches min_windows > 1
    fanout.handle(EventChange("opened", e))
    fanout.handle(EventChange("opened", short))
    fanout.handle(EventChange("closed", shut(short)))
    for _ in range(4):
        assert sink.flush(10)
        e = grow(e)
        fanout.handle(EventChange("updated", e))
    fanout.handle(EventChange("closed", shut(e)))
    assert sink.flush(10)
    box = rows(db, "SELECT * FROM outbox ORDER BY seq")
    ids = [r["event_id"] for r in box if r["topic"] == "detection"]
    # Each detection: its message when it became one, Home Assistant's event, its final state.
    expected = [e.id, e.id] if min_windows > 1 else [e.id, short.id, short.id, e.id]
    assert ids == expected
    assert [r["event_id"] for r in box if r["topic"] == "event"] == expected[::2]
    first = json.loads(next(r["payload"] for r in box if r["event_id"] == e.id))
    assert (first["windows"], first["status"]) == (min_windows, "open"), "as it became one"
    last = json.loads(box[-1]["payload"])
    assert (last["id"], last["windows"], last["status"]) == (e.id, 5, "final")
    assert followed.outbox_rows_seen, "the feed is told of new outbox rows"
    assert followed.outbox_rows_seen[0] >= 1, "after the outbox rows are committed"
    assert followed.opened == [e.id, short.id], "opened events, once each"
    assert all(r["created_utc"].endswith("Z") for r in box)


def test_outbox_row_is_in_the_same_transaction_as_the_event(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """When the outbox insert fails the event is not written either; both appear on retry."""
    open_database(db).close()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'no'); END"
    )
    sink = LogWriter(db, retry_seconds=0.05)
    e = make_event()
    sink.handle(announced("opened", e, e.id))
    wait_until(lambda: bool(_errors(caplog)))
    assert conn.execute("SELECT count(*) FROM detections").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    conn.execute("DROP TRIGGER refuse")
    conn.close()
    assert sink.flush(20)
    sink.close()
    assert [r["id"] for r in rows(db)] == [e.id]
    assert [r["event_id"] for r in rows(db, "SELECT * FROM outbox")] == [e.id]


def test_changes_queued_while_busy_are_committed_together(db: Path) -> None:
    sink = LogWriter(db)
    assert sink.flush(10)
    blocker = sqlite3.connect(db)
    blocker.execute("BEGIN IMMEDIATE")  # hold the write lock while the changes queue up
    events = [make_event(start=T0 + dt.timedelta(seconds=i)) for i in range(300)]
    for e in events:
        sink.handle(EventChange("opened", e))  # must return although the writer is stuck
    for e in events:
        sink.handle(EventChange("updated", grow(e)))
    blocker.execute("ROLLBACK")
    blocker.close()
    assert sink.flush(20)
    sink.close()
    assert sink.commits <= 3, f"{sink.commits} commits for 600 queued changes"
    stored = rows(db)
    assert len(stored) == 300
    assert {r["windows"] for r in stored} == {2}
    assert [tuple(r) for r in rows(db, "SELECT * FROM species")] == [
        (CHICKADEE.scientific, CHICKADEE.common)
    ]


def test_growth_waits_for_the_next_commit_that_must_happen(
    db: Path, sinks: list[LogWriter]
) -> None:
    """An event growing (no message to send) is not a commit of its own: it rides along with
    the next opening, detection or closing, or is written ``update_seconds`` after it began
    to wait; openings and closings are written at once."""
    sink = LogWriter(db, update_seconds=60.0)  # the waits below would time out at 60 s
    sinks.append(sink)
    e = make_event()
    sink.handle(EventChange("opened", e))
    wait_until(lambda: sink.commits == 1, what="the opening written at once")
    for _ in range(5):
        e = grow(e)
        sink.handle(EventChange("updated", e))
    other = make_event(FINCH)
    sink.handle(EventChange("opened", other))  # must be written now: takes the growth along
    wait_until(lambda: len(rows(db)) == 2, what="the second opening")
    assert sink.commits == 2, "five windows of growth were not commits of their own"
    assert {r["id"]: r["windows"] for r in rows(db)}[e.id] == 6

    sink.update_seconds = 1.0
    started = time.monotonic()
    for _ in range(3):
        e = grow(e)
        sink.handle(EventChange("updated", e))
    wait_until(lambda: rows(db)[0]["windows"] == 9, timeout=10, what="growth written alone")
    assert time.monotonic() - started >= 1.0, "growth alone waits update_seconds"
    assert sink.commits == 3
    sink.update_seconds = 60.0
    e = grow(e)
    sink.handle(EventChange("updated", e))
    sink.handle(EventChange("closed", shut(e)))
    wait_until(lambda: sink.commits == 4, what="the closing written at once")
    assert (rows(db)[0]["windows"], rows(db)[0]["closed"]) == (10, 1)


def test_events_left_open_by_a_crash_are_closed_on_restart(db: Path) -> None:
    conn = open_database(db)
    e = make_event()
    conn.execute(
        INSERT_ROW,
        to_row(e),
    )
    conn.close()
    sink = LogWriter(db)
    sink.handle(EventChange("opened", make_event(FINCH)))
    assert sink.flush(10)
    sink.close()
    assert {(r["id"], r["closed"]) for r in rows(db) if r["id"] == e.id} == {(e.id, 1)}
    assert len(rows(db)) == 2


# -- crash safety -----------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import datetime as dt, sys
    from pathlib import Path
    from birdnet_edge.detect.events import EventTracker
    from birdnet_edge.model.labels import Label
    from birdnet_edge.log.record import DetectionContext
    from birdnet_edge.log.writer import LogWriter

    ctx = DetectionContext("garden", None, None, "m", "fp32", 1.0, 0.0, 0.7)
    labels = [Label(i, f"Genus species{i}", f"Bird {i}") for i in range(5)]
    tracker = EventTracker(ctx, gap_seconds=3.0)
    sink = LogWriter(Path(sys.argv[1]))
    t = dt.datetime(2025, 5, 1, tzinfo=dt.timezone.utc)
    seen = {}
    for i in range(100000):
        start = t + dt.timedelta(seconds=3 * i)
        hits = [(k, 0.5 + k / 10) for k in range(5) if (i // (k + 2)) % 2 == 0]
        for change in tracker.window(start, start + dt.timedelta(seconds=3), hits, labels):
            sink.handle(change)
            seen[change.detection.id] = change.detection.windows
        if i % 7 == 0:
            sink.flush()
            print(" ".join(f"{k}={v}" for k, v in seen.items()), flush=True)
    """
)


@pytest.mark.slow
def test_sigkill_loses_nothing_committed_and_restart_continues(db: Path) -> None:
    db.parent.mkdir(parents=True)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    last = ""
    for _ in range(60):  # the child reports what it has written, many times a second
        last = child.stdout.readline()
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    reported = dict(pair.split("=") for pair in last.split())
    assert len(reported) > 20

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = dict(conn.execute("SELECT id, windows FROM detections").fetchall())
    conn.close()
    missing = [k for k in reported if k not in stored]
    assert not missing, f"{len(missing)} events written before the kill are lost"
    assert all(stored[k] >= int(v) for k, v in reported.items())

    sink = LogWriter(db)  # the restarted daemon continues with the same file
    e = make_event()
    sink.handle(EventChange("opened", e))
    assert sink.flush(10)
    sink.close()
    after = rows(db)
    assert len(after) == len(stored) + 1
    assert all(r["closed"] == 1 for r in after if r["id"] != e.id)


# -- migrations -------------------------------------------------------------------------------

SCHEMA_V1 = """
CREATE TABLE detections (
    id TEXT NOT NULL UNIQUE, start_utc TEXT NOT NULL, end_utc TEXT NOT NULL,
    utc_offset_min INTEGER NOT NULL, scientific TEXT NOT NULL, common TEXT NOT NULL,
    confidence REAL NOT NULL, windows INTEGER NOT NULL, closed INTEGER NOT NULL DEFAULT 0,
    station TEXT NOT NULL, latitude REAL, longitude REAL, model TEXT NOT NULL,
    precision TEXT NOT NULL, sensitivity REAL NOT NULL, overlap REAL NOT NULL,
    min_confidence REAL NOT NULL
);
CREATE INDEX detections_start ON detections (start_utc);
CREATE INDEX detections_species ON detections (scientific, start_utc);
CREATE TABLE species (
    scientific TEXT NOT NULL, common TEXT NOT NULL, PRIMARY KEY (scientific, common)
) WITHOUT ROWID;
PRAGMA user_version = 1;
"""


def test_migration_from_version_1_keeps_rows_and_a_backup(db: Path) -> None:
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.executescript(SCHEMA_V1)
    events = [make_event(start=T0 + dt.timedelta(minutes=i)) for i in range(50)]
    conn.executemany(
        f"INSERT INTO detections VALUES ({', '.join('?' * 17)})",  # version 1's columns
        [to_row(shut(e))[:17] for e in events],
    )
    conn.execute("INSERT INTO species VALUES (?, ?)", (CHICKADEE.scientific, CHICKADEE.common))
    conn.commit()
    conn.close()

    sink = LogWriter(db)
    new = make_event(FINCH)
    sink.handle(announced("opened", new, "{}"))
    assert sink.flush(10)
    sink.close()

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION > 1
    ids = {r[0] for r in conn.execute("SELECT id FROM detections")}
    assert ids == {e.id for e in events} | {new.id}
    assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 1
    conn.close()

    backup = db.with_name("detections.db.v1.bak")
    assert backup.is_file()
    old = sqlite3.connect(backup)
    assert old.execute("PRAGMA user_version").fetchone()[0] == 1
    assert {r[0] for r in old.execute("SELECT id FROM detections")} == {e.id for e in events}
    assert old.execute("SELECT count(*) FROM sqlite_master WHERE name = 'outbox'").fetchone() == (
        0,
    )
    old.close()


def test_newer_schema_is_refused(db: Path) -> None:
    open_database(db).close()
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(BirdnetEdgeError, match="newer than this birdnet-edge supports"):
        LogWriter(db)


def test_foreign_database_and_non_database_are_refused(db: Path) -> None:
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE notes (x)")
    conn.close()
    with pytest.raises(BirdnetEdgeError, match="not a birdnet-edge database"):
        open_database(db)
    db.write_bytes(b"this is a text file, not SQLite" * 100)
    with pytest.raises(BirdnetEdgeError, match="not a SQLite database"):
        LogWriter(db)


# -- a full or read-only file system ----------------------------------------------------------


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and r.name == "birdnet_edge.log.writer"
    ]


def test_disk_full_keeps_events_in_memory_and_catches_up(
    tiny_fs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="birdnet_edge.log.writer")
    db = tiny_fs / "detections.db"
    sink = LogWriter(db, retry_seconds=0.05)
    first = make_event()
    sink.handle(announced("opened", first, "x" * 200))
    assert sink.flush(10)
    filler = fill(tiny_fs)

    events = [make_event(FINCH, T0 + dt.timedelta(minutes=i)) for i in range(400)]
    for e in events:  # the pipeline keeps going: handle never waits for the disk
        sink.handle(announced("opened", e, "x" * 200))
        sink.handle(EventChange("closed", shut(grow(e))))
    wait_until(lambda: bool(_errors(caplog)) and sink.pending == len(events))
    time.sleep(0.5)  # many more retries happen...
    errors = _errors(caplog)
    assert len(errors) == 1, f"one error line per minute, got {errors}"
    assert "disk is full" in errors[0]
    assert "free space" in errors[0], "the message names the fix"
    assert str(db) in errors[0]
    assert sink.pending == len(events)

    filler.unlink()  # space returns
    assert sink.flush(30)
    sink.close()
    assert any("again" in r.getMessage() for r in caplog.records)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = dict(conn.execute("SELECT id, windows FROM detections").fetchall())
    assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == len(events) + 1
    conn.close()
    assert set(stored) == {first.id} | {e.id for e in events}
    assert all(stored[e.id] == 2 for e in events)


@pytest.fixture
def ext4(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A real ext4 file system in a loop-mounted 8 MiB image (``errors=remount-ro``, as on an SD
    card); yields (mount point, image). Needs root, mkfs.ext4 and a loop device."""
    if os.geteuid() != 0 or shutil.which("mkfs.ext4") is None:
        pytest.skip("a loop-mounted ext4 needs root and mkfs.ext4")
    image, mnt = tmp_path / "sd.img", tmp_path / "sd"
    mnt.mkdir()
    with image.open("wb") as f:
        f.truncate(8 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", str(image)], check=True)
    # While unmounted, nothing may be created in the bare mount point.
    subprocess.run(["chattr", "+i", str(mnt)], check=True)
    done = subprocess.run(
        ["mount", "-o", "loop,errors=remount-ro", str(image), str(mnt)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        subprocess.run(["chattr", "-i", str(mnt)], check=False)
        pytest.skip(f"cannot loop-mount an ext4 image here: {done.stderr.strip()}")
    try:
        yield mnt, image
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        subprocess.run(["chattr", "-i", str(mnt)], check=False)


def _device_of(mnt: Path) -> str:
    for line in Path("/proc/mounts").read_text().splitlines():
        source, target = line.split()[:2]
        if target == str(mnt):
            return Path(source).name
    raise AssertionError(f"{mnt} is not mounted")


@pytest.mark.slow
def test_file_system_turning_read_only_mid_run_is_survived(
    ext4: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """What an SD card error does: ext4 remounts itself read-only under the running daemon. The
    sink keeps the events, says so once, and writes them after the card is checked and
    mounted again."""
    caplog.set_level(logging.INFO, logger="birdnet_edge.log.writer")
    mnt, image = ext4
    db = mnt / "detections.db"
    sink = LogWriter(db, retry_seconds=0.05)
    first = make_event()
    sink.handle(EventChange("opened", first))
    assert sink.flush(10)
    trigger = Path("/sys/fs/ext4") / _device_of(mnt) / "trigger_fs_error"
    if not trigger.exists():
        sink.close()
        pytest.skip("this kernel cannot simulate an ext4 error")
    trigger.write_text("birdnet-edge test\n")  # ext4 aborts and remounts read-only

    events = [make_event(FINCH, T0 + dt.timedelta(minutes=i)) for i in range(20)]
    for e in events:
        sink.handle(EventChange("opened", e))
    wait_until(lambda: bool(_errors(caplog)))
    time.sleep(0.3)
    errors = _errors(caplog)
    assert len(errors) == 1, errors
    assert "I/O error" in errors[0] or "read-only" in errors[0], errors[0]
    assert "fsck" in errors[0], "the message names the fix"
    assert not sink.flush(0.2)
    assert sink.pending == len(events)

    # The fix: unmount, check, mount again (a new mount of the same path).
    subprocess.run(["umount", "-l", str(mnt)], check=True)
    subprocess.run(["e2fsck", "-fy", str(image)], capture_output=True, check=False)
    subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
    assert sink.flush(30)
    sink.close()
    assert any("again" in r.getMessage() for r in caplog.records)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ids = {r[0] for r in conn.execute("SELECT id FROM detections")}
    conn.close()
    assert ids == {first.id} | {e.id for e in events}


def test_read_only_database_at_startup_does_not_stop_the_pipeline(
    tiny_fs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="birdnet_edge.log.writer")
    db = tiny_fs / "detections.db"
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    try:
        sink = LogWriter(db, retry_seconds=0.05)  # cannot even create the file: no exception
        e = make_event()
        sink.handle(EventChange("opened", e))
        wait_until(lambda: bool(_errors(caplog)))
        assert "mounted read-only" in _errors(caplog)[0]
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(tiny_fs)], check=True)
    assert sink.flush(30)
    sink.close()
    assert [r["id"] for r in rows(db)] == [e.id]


def test_memory_kept_while_failing_is_bounded(
    tiny_fs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="birdnet_edge.log.writer")
    db = tiny_fs / "detections.db"
    sink = LogWriter(db, retry_seconds=0.05, max_pending=50)
    assert sink.flush(10)
    filler = fill(tiny_fs)
    events = [make_event(FINCH, T0 + dt.timedelta(minutes=i)) for i in range(120)]
    for e in events:
        sink.handle(EventChange("opened", e))
    wait_until(lambda: bool(_errors(caplog)))
    assert sink.pending == 50
    filler.unlink()
    assert sink.flush(30)
    sink.close()
    assert {r["id"] for r in rows(db)} == {e.id for e in events[-50:]}, "the newest are kept"
    assert any("dropped" in r.getMessage() for r in caplog.records)


# -- retention --------------------------------------------------------------------------------


def _insert(db: Path, events: list[Detection]) -> None:
    conn = open_database(db)
    conn.execute("BEGIN")
    conn.executemany(
        INSERT_ROW,
        [to_row(shut(e)) for e in events],
    )
    conn.execute("COMMIT")
    conn.close()


def test_retention_by_age_prunes_old_events_in_the_background(db: Path) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    old = [make_event(start=now - dt.timedelta(days=40, minutes=i)) for i in range(1200)]
    recent = [make_event(FINCH, now - dt.timedelta(days=29, minutes=i)) for i in range(30)]
    _insert(db, old + recent)
    sink = LogWriter(db, retention_days=30, prune_interval=0.05)
    fresh = make_event(start=now)
    sink.handle(EventChange("opened", fresh))
    wait_until(lambda: len(rows(db)) == len(recent) + 1)
    sink.close()
    assert {r["id"] for r in rows(db)} == {e.id for e in recent} | {fresh.id}


def test_prune_step_deletes_in_small_batches(db: Path) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    _insert(db, [make_event(start=now - dt.timedelta(days=100, seconds=i)) for i in range(1200)])
    conn = open_database(db)
    try:
        assert prune_step(conn, 30, 0, now=now) == Pruned(events=500, messages=0, more=True)
        assert conn.execute("SELECT count(*) FROM detections").fetchone()[0] == 700
        while prune_step(conn, 30, 0, now=now).more:
            pass
        assert conn.execute("SELECT count(*) FROM detections").fetchone()[0] == 0
    finally:
        conn.close()


def test_retention_by_size_drops_the_oldest_and_shrinks_the_file(db: Path) -> None:
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=5)
    events = [make_event(start=start + dt.timedelta(seconds=10 * i)) for i in range(15000)]
    _insert(db, events)
    before = db.stat().st_size
    assert before > 2 * 1024 * 1024
    sink = LogWriter(db, max_size_mb=1, prune_interval=0.05)
    conn = sqlite3.connect(db)
    try:
        wait_until(lambda: used_bytes(conn) <= 1024 * 1024, timeout=60)
        wait_until(lambda: conn.execute("PRAGMA freelist_count").fetchone()[0] < 300)
    finally:
        conn.close()
    sink.close()
    left = rows(db, "SELECT id FROM detections ORDER BY start_utc")
    assert 0 < len(left) < len(events)
    assert [r["id"] for r in left] == [e.id for e in events[-len(left) :]], "oldest go first"
    assert db.stat().st_size < before / 2, "free pages are given back to the file system"


def _outbox(db: Path, events: list[Detection], delay: dt.timedelta) -> None:
    """Undelivered MQTT messages for ``events``, each made ``delay`` after its event began."""
    conn = open_database(db)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO outbox (event_id, payload, created_utc) VALUES (?, ?, ?)",
        [(e.id, "x" * 300, utc_text(e.start + delay)) for e in events],
    )
    conn.execute("COMMIT")
    conn.close()


def test_a_growing_outbox_cannot_empty_the_log_under_a_size_limit(db: Path) -> None:
    # The broker has been away for the newer half of the log: its messages wait in the outbox.
    # Pruning only events used to delete every detection and leave the file over its limit.
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=5)
    events = [make_event(start=start + dt.timedelta(seconds=10 * i)) for i in range(15000)]
    _insert(db, events)
    _outbox(db, events[7500:], dt.timedelta(seconds=3))
    conn = open_database(db)
    try:
        deleted = Pruned()
        while (step := prune_step(conn, 0, 1)).more:
            deleted = Pruned(deleted.events + step.events, deleted.messages + step.messages)
        assert used_bytes(conn) <= 1024 * 1024
        left = [r[0] for r in conn.execute("SELECT id FROM detections ORDER BY start_utc")]
        queued = [r[0] for r in conn.execute("SELECT event_id FROM outbox ORDER BY seq")]
    finally:
        conn.close()
    assert deleted.events > 7500, "the events older than every message go first"
    assert deleted.messages > 0, "then both age out, oldest first"
    assert len(left) > 500
    assert left == [e.id for e in events[-len(left) :]]
    assert queued
    assert queued == [e.id for e in events[-len(queued) :]]


def test_retention_by_age_also_drops_undelivered_messages(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    old = [make_event(start=now - dt.timedelta(days=40, minutes=i)) for i in range(3)]
    recent = [make_event(start=now - dt.timedelta(days=1, minutes=i)) for i in range(2)]
    _insert(db, old + recent)
    _outbox(db, old + recent, dt.timedelta(seconds=3))
    sink = LogWriter(db, retention_days=30, prune_interval=0.05)
    wait_until(lambda: len(rows(db, "SELECT seq FROM outbox")) == len(recent))
    wait_until(
        lambda: any("never acknowledged" in r.getMessage() for r in caplog.records), timeout=30
    )
    sink.close()
    assert {r["event_id"] for r in rows(db, "SELECT event_id FROM outbox")} == {
        e.id for e in recent
    }
    warning = next(r.getMessage() for r in caplog.records if "never acknowledged" in r.getMessage())
    assert warning.startswith("deleted 3 MQTT messages")
