"""``birdnet-edge log`` (list, summary, export) and the read-only store, on a real database file
filled through the SQLite sink."""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import datetime as dt
import io
import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from birdnet_edge import paths
from birdnet_edge.cli import review
from birdnet_edge.cli.times import parse_when
from birdnet_edge.detect.events import EventChange
from birdnet_edge.errors import BirdnetEdgeError
from birdnet_edge.log import queries as store
from birdnet_edge.log import record
from birdnet_edge.log.writer import LogWriter
from birdnet_edge.model.labels import Label
from tests.conftest import local_time_zone, run_cli
from tests.test_sqlite_sink import make_event
from tests.waiting import wait_until

UTC = dt.timezone.utc
CHICKADEE = Label(0, "Poecile atricapillus", "Black-capped Chickadee")
FINCH = Label(1, "Haemorhous mexicanus", "House Finch")
GOLDFINCH = Label(2, "Spinus tristis", "American Goldfinch")
JUNCO = Label(3, "Junco hyemalis", "Dark-eyed Junco")
TITMOUSE = Label(4, "Baeolophus bicolor", "Grauhäubchenmeise")
BLUEJAY = Label(5, "Cyanocitta cristata", "Blue Jay")

# (label, UTC start, confidence, windows). The station is in New York: UTC-4 in May.
SCENE = [
    (BLUEJAY, dt.datetime(2025, 4, 30, 23, 30, tzinfo=UTC), 0.45, 1),
    (CHICKADEE, dt.datetime(2025, 5, 1, 9, 0, tzinfo=UTC), 0.81, 2),
    (FINCH, dt.datetime(2025, 5, 1, 9, 5, tzinfo=UTC), 0.64, 3),
    (JUNCO, dt.datetime(2025, 5, 1, 9, 20, tzinfo=UTC), 0.74, 1),
    (CHICKADEE, dt.datetime(2025, 5, 1, 9, 30, tzinfo=UTC), 0.55, 1),
    (FINCH, dt.datetime(2025, 5, 1, 9, 40, tzinfo=UTC), 0.61, 2),
    (CHICKADEE, dt.datetime(2025, 5, 1, 10, 15, tzinfo=UTC), 0.62, 1),
    (FINCH, dt.datetime(2025, 5, 1, 11, 2, tzinfo=UTC), 0.56, 1),
    (GOLDFINCH, dt.datetime(2025, 5, 1, 11, 30, tzinfo=UTC), 0.47, 2),
    (FINCH, dt.datetime(2025, 5, 1, 11, 45, tzinfo=UTC), 0.90, 4),
    (TITMOUSE, dt.datetime(2025, 5, 1, 12, 0, tzinfo=UTC), 0.30, 1),
]


@pytest.fixture(scope="module")
def new_york() -> Iterator[None]:
    """The station's (and the test process's) local time zone."""
    with local_time_zone("America/New_York"):
        yield


@pytest.fixture(scope="module")
def scene_db(tmp_path_factory: pytest.TempPathFactory, new_york: None) -> Path:
    """The scene written through the sink, each event opened, grown and closed."""
    path = tmp_path_factory.mktemp("review") / "detections.db"
    sink = LogWriter(path)
    for label, start, conf, windows in SCENE:
        e = make_event(label, start, windows=1, confidence=conf)
        sink.handle(EventChange("opened", e))
        final = dataclasses.replace(
            e, windows=windows, end=start + dt.timedelta(seconds=3 * windows)
        )
        sink.handle(EventChange("updated", final))
        sink.handle(EventChange("closed", dataclasses.replace(final, closed=True)))
    assert sink.flush(10)
    sink.close()
    return path


def run_log(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Parse ``argv`` with the ``log`` command registered as the CLI will, run its handler."""
    parser = argparse.ArgumentParser(prog="birdnet-edge")
    review.register(parser.add_subparsers(metavar="COMMAND"))
    args = parser.parse_args(argv)
    code = args.handler(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- times ------------------------------------------------------------------------------------

NOW = dt.datetime(2025, 5, 1, 12, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", NOW - dt.timedelta(hours=2)),
        ("90s", NOW - dt.timedelta(seconds=90)),
        ("30m", NOW - dt.timedelta(minutes=30)),
        ("3d", NOW - dt.timedelta(days=3)),
        ("1w", NOW - dt.timedelta(days=7)),
        ("now", NOW),
        ("today", dt.datetime(2025, 5, 1, tzinfo=UTC)),
        ("Yesterday", dt.datetime(2025, 4, 30, tzinfo=UTC)),
        ("2025-04-02", dt.datetime(2025, 4, 2, tzinfo=UTC)),
        ("2025-04-02 06:30", dt.datetime(2025, 4, 2, 6, 30, tzinfo=UTC)),
        ("2025-04-02T06:30:15Z", dt.datetime(2025, 4, 2, 6, 30, 15, tzinfo=UTC)),
        ("2025-04-02T08:30+02:00", dt.datetime(2025, 4, 2, 6, 30, tzinfo=UTC)),
        ("6:05", dt.datetime(2025, 5, 1, 6, 5, tzinfo=UTC)),
    ],
)
def test_times_in_utc(text: str, expected: dt.datetime) -> None:
    assert parse_when(text, now=NOW, utc=True) == expected


def test_times_without_zone_are_local(new_york: None) -> None:
    # 12:00 UTC is 08:00 in New York: today began at 04:00 UTC.
    assert parse_when("today", now=NOW) == dt.datetime(2025, 5, 1, 4, tzinfo=UTC)
    assert parse_when("yesterday", now=NOW) == dt.datetime(2025, 4, 30, 4, tzinfo=UTC)
    assert parse_when("2025-01-15 06:00", now=NOW) == dt.datetime(2025, 1, 15, 11, tzinfo=UTC)


def test_bad_time_names_the_option_and_the_forms(new_york: None) -> None:
    with pytest.raises(BirdnetEdgeError, match=r"--until '2 fortnights'.*2h, 3d"):
        parse_when("2 fortnights", now=NOW, option="--until")
    assert parse_when("2025-01-15 6:30", now=NOW) == parse_when("2025-01-15 06:30", now=NOW)
    for beyond in ("999999d", "0001-01-01", "99999999h"):  # out of the calendar's range
        with pytest.raises(BirdnetEdgeError, match=r"not a time"):
            parse_when(beyond, now=NOW)


# -- log --------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["log"], ["log", "export"], ["log", "summary"]])
def test_a_limit_beyond_sqlites_integers_means_all(
    scene_db: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    huge = "999999999999999999999"
    code, out, err = run_log([*command, "--db", str(scene_db), "--limit", huge], capsys)
    assert code == 0, err
    assert err == ""
    code, everything, _ = run_log([*command, "--db", str(scene_db), "--limit", "1000"], capsys)
    assert code == 0
    assert out == everything


def test_log_lists_the_latest_oldest_first_in_station_time(
    scene_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_log(["log", "--db", str(scene_db), "--limit", "3"], capsys)
    assert code == 0
    assert err == ""
    lines = out.splitlines()
    assert lines[0].startswith("time (local)")
    assert len(lines) == 4
    assert lines[1].startswith("2025-05-01 07:30:00  American Goldfinch")
    assert lines[2].split()[2:4] == ["House", "Finch"]
    assert lines[3].startswith("2025-05-01 08:00:00  Grauhäubchenmeise")
    assert "Haemorhous mexicanus" in lines[2]
    assert lines[2].split()[-3:] == ["0.90", "4", "-"]  # no clip kept


def test_log_utc_and_default_limit(scene_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_log(["log", "--db", str(scene_db), "--utc"], capsys)
    lines = out.splitlines()
    assert lines[0].startswith("time (UTC)")
    assert len(lines) == 1 + len(SCENE)  # fewer than the default limit
    assert lines[1].startswith("2025-04-30 23:30:00  Blue Jay")
    assert lines[-1].startswith("2025-05-01 12:00:00")


@pytest.mark.parametrize(
    ("species", "expected"),
    [
        ("FINCH", {"House Finch", "American Goldfinch"}),
        ("poecile", {"Black-capped Chickadee"}),
        ("HÄUB", {"Grauhäubchenmeise"}),  # beyond ASCII: SQLite's LIKE would miss it
        ("hyemalis", {"Dark-eyed Junco"}),
    ],
)
def test_species_filter_is_a_case_insensitive_substring(
    scene_db: Path, capsys: pytest.CaptureFixture[str], species: str, expected: set[str]
) -> None:
    _, out, _ = run_log(
        ["log", "--db", str(scene_db), "--species", species, "--format", "json"], capsys
    )
    assert {r["common"] for r in json.loads(out)} == expected


def test_min_conf_and_period_filters(scene_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_log(
        ["log", "--db", str(scene_db), "--min-conf", "0.6", "--format", "json"], capsys
    )
    assert sorted(r["confidence"] for r in json.loads(out)) == [0.61, 0.62, 0.64, 0.74, 0.81, 0.9]
    argv = ["log", "--db", str(scene_db), "--format", "json", "--utc"]
    _, out, _ = run_log(
        [*argv, "--since", "2025-05-01 09:10", "--until", "2025-05-01T10:00"], capsys
    )
    assert [r["common"] for r in json.loads(out)] == [
        "Dark-eyed Junco", "Black-capped Chickadee", "House Finch",
    ]  # fmt: skip
    # Local dates: 2025-04-30 in New York ends at 04:00 UTC on May 1st.
    _, out, _ = run_log(
        ["log", "--db", str(scene_db), "--format", "json", "--until", "2025-05-01"], capsys
    )
    assert [r["common"] for r in json.loads(out)] == ["Blue Jay"]
    with pytest.raises(BirdnetEdgeError, match=r"--since .* is not before --until .*: swap them"):
        run_log([*argv, "--since", "2025-05-02", "--until", "2025-05-01"], capsys)
    with pytest.raises(BirdnetEdgeError, match=r"are the same time \(2025-05-01 00:00\): give"):
        run_log([*argv, "--since", "2025-05-01", "--until", "2025-05-01"], capsys)


def test_since_relative_to_now(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "now.db"
    now = dt.datetime.now(UTC)
    sink = LogWriter(db)
    for minutes, label in ((200, JUNCO), (30, FINCH), (5, CHICKADEE)):
        sink.handle(EventChange("opened", make_event(label, now - dt.timedelta(minutes=minutes))))
    assert sink.flush(10)
    sink.close()
    _, out, _ = run_log(["log", "--db", str(db), "--since", "2h", "--format", "csv"], capsys)
    assert [r["common"] for r in csv.DictReader(io.StringIO(out))] == [
        "House Finch", "Black-capped Chickadee",
    ]  # fmt: skip
    _, out, _ = run_log(["log", "--db", str(db), "--since", "today", "--format", "csv"], capsys)
    today = dt.datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    expected = sum(now - dt.timedelta(minutes=m) >= today for m in (200, 30, 5))
    assert len(list(csv.DictReader(io.StringIO(out)))) == expected


def test_csv_and_json_records(scene_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_log(["log", "--db", str(scene_db), "--format", "csv"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == len(SCENE)
    chickadee = rows[1]
    assert tuple(chickadee) == record.EXPORT_FIELDS
    assert chickadee["start"] == "2025-05-01T05:00:00.000-04:00"
    assert chickadee["end"] == "2025-05-01T05:00:06.000-04:00"
    assert chickadee["utc_offset"] == "-04:00"
    assert (chickadee["common"], chickadee["scientific"]) == (
        "Black-capped Chickadee", "Poecile atricapillus",
    )  # fmt: skip
    assert (chickadee["confidence"], chickadee["windows"], chickadee["duration_s"]) == (
        "0.81", "2", "6.0",
    )  # fmt: skip
    assert (chickadee["station"], chickadee["latitude"], chickadee["model"]) == (
        "garden", "42.5", "BirdNET_GLOBAL_6K_V2.4_Model_FP32",
    )  # fmt: skip
    _, out, _ = run_log(["log", "--db", str(scene_db), "--format", "json", "--utc"], capsys)
    records = json.loads(out)
    assert records[1]["start"] == "2025-05-01T09:00:00.000Z"
    assert records[1]["id"] == chickadee["id"]
    assert records[1]["min_confidence"] == 0.7


def test_empty_result_says_so(scene_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_log(["log", "--db", str(scene_db), "--species", "zzz"], capsys)
    assert code == 0
    assert out == ""
    assert "no detections of species matching 'zzz'" in err
    _, out, err = run_log(
        ["log", "--db", str(scene_db), "--min-conf", "0.99", "--format", "json"], capsys
    )
    assert json.loads(out) == []
    assert "with confidence >= 0.99" in err


def test_empty_database_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "empty.db"
    LogWriter(db).close()
    code, out, err = run_log(["log", "--db", str(db)], capsys)
    assert (code, out) == (0, "")
    assert f"no detections in {db} yet" in err


def test_missing_or_foreign_database_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(BirdnetEdgeError, match=r"no detection database at .*missing\.db yet"):
        run_log(["log", "--db", str(tmp_path / "missing.db")], capsys)
    assert not (tmp_path / "missing.db").exists(), "reading must not create the file"
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE x (y)").connection.close()
    with pytest.raises(BirdnetEdgeError, match="not a birdnet-edge detection database"):
        run_log(["log", "summary", "--db", str(other)], capsys)
    newer = tmp_path / "newer.db"
    LogWriter(newer).close()
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(BirdnetEdgeError, match=r"schema version 99, .*: upgrade birdnet-edge"):
        run_log(["log", "--db", str(newer)], capsys)


def test_database_path_from_the_config_file(
    scene_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"database:\n  path: {scene_db}\n", encoding="utf-8")
    _, out, _ = run_log(["log", "-c", str(cfg), "--format", "json"], capsys)
    assert len(json.loads(out)) == len(SCENE)
    _, out, _ = run_log(["log", "export", "-c", str(cfg), "--format", "jsonl"], capsys)
    assert len(out.splitlines()) == len(SCENE)


def test_default_database_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    monkeypatch.setenv("CONFIGURATION_DIRECTORY", str(tmp_path / "etc"))
    db = tmp_path / "state" / "detections.db"
    sink = LogWriter(db)
    sink.handle(EventChange("opened", make_event()))
    assert sink.flush(10)
    sink.close()
    _, out, _ = run_log(["log", "--format", "json"], capsys)
    assert len(json.loads(out)) == 1
    # The default config file, when it exists, is read as `run` reads it.
    (tmp_path / "etc").mkdir()
    other = tmp_path / "elsewhere.db"
    (tmp_path / "etc" / "config.yaml").write_text(f"database:\n  path: {other}\n")
    with pytest.raises(BirdnetEdgeError, match=r"elsewhere\.db"):
        run_log(["log"], capsys)
    # Without one, the service's config is read where the user may read it (sudo).
    (tmp_path / "etc" / "config.yaml").unlink()
    (tmp_path / "service").mkdir()
    service = tmp_path / "service" / "config.yaml"
    service.write_text(f"database:\n  path: {tmp_path / 'service.db'}\n")
    monkeypatch.setattr(paths, "SERVICE_CONFIG_DIR", service.parent)
    with pytest.raises(BirdnetEdgeError, match=r"service\.db"):
        run_log(["log"], capsys)


# -- summary ----------------------------------------------------------------------------------


def test_summary_per_species_sorted_by_count(
    scene_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run_log(["log", "summary", "--db", str(scene_db), "--format", "json"], capsys)
    species = json.loads(out)
    assert [(s["common"], s["count"]) for s in species] == [
        ("House Finch", 4), ("Black-capped Chickadee", 3), ("American Goldfinch", 1),
        ("Blue Jay", 1), ("Dark-eyed Junco", 1), ("Grauhäubchenmeise", 1),
    ]  # fmt: skip
    finch = species[0]
    assert finch["scientific"] == "Haemorhous mexicanus"
    assert finch["first"] == "2025-05-01T05:05:00.000-04:00"
    assert finch["last"] == "2025-05-01T07:45:00.000-04:00"
    assert finch["max_confidence"] == 0.9

    _, out, _ = run_log(["log", "summary", "--db", str(scene_db), "--utc"], capsys)
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["species", "scientific", "name"]
    assert lines[1].split()[:5] == ["House", "Finch", "Haemorhous", "mexicanus", "4"]
    assert "2025-05-01 09:05:00  2025-05-01 11:45:00" in lines[1]
    assert lines[-1] == f"{len(SCENE)} detections of 6 species"


def test_filters_before_or_after_the_action(
    scene_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = run_log(
        ["log", "--db", str(scene_db), "--min-conf", "0.6", "summary", "--format", "csv"], capsys
    )[1]
    after = run_log(
        ["log", "summary", "--db", str(scene_db), "--min-conf", "0.6", "--format", "csv"], capsys
    )[1]
    assert before == after
    counts = {r["common"]: int(r["count"]) for r in csv.DictReader(io.StringIO(after))}
    assert counts == {"House Finch": 3, "Black-capped Chickadee": 2, "Dark-eyed Junco": 1}


def test_hourly_chart_for_one_species(scene_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_log(
        ["log", "summary", "--db", str(scene_db), "--species", "house finch", "--hourly"], capsys
    )
    lines = out.splitlines()
    assert lines[0] == (
        "House Finch (Haemorhous mexicanus): 4 detections by hour of the day (local time)"
    )
    chart = {int(line[:2]): int(line.split()[-1]) for line in lines[1:]}
    assert len(chart) == 24
    assert {h: n for h, n in chart.items() if n} == {5: 2, 7: 2}
    assert lines[1 + 5].count("#") == review.CHART_WIDTH

    _, out, _ = run_log(
        ["log", "summary", "--db", str(scene_db), "--species", "HAEMORHOUS", "--hourly", "--utc"],
        capsys,
    )
    lines = out.splitlines()
    assert lines[0].endswith("(UTC)")
    assert {int(x[:2]): int(x.split()[-1]) for x in lines[1:] if x.split()[-1] != "0"} == {
        9: 2, 11: 2,
    }  # fmt: skip


def test_hourly_needs_one_species(scene_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(BirdnetEdgeError, match="--hourly needs --species"):
        run_log(["log", "summary", "--db", str(scene_db), "--hourly"], capsys)
    with pytest.raises(BirdnetEdgeError, match=r"matches 2 species \(American Goldfinch, House"):
        run_log(["log", "summary", "--db", str(scene_db), "--species", "finch", "--hourly"], capsys)


# -- export -----------------------------------------------------------------------------------


def test_export_csv_file_and_json_lines(
    scene_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out.csv"
    code, out, err = run_log(
        ["log", "export", "--db", str(scene_db), "--species", "finch", "-o", str(target)], capsys
    )
    assert code == 0
    assert out == ""
    assert f"5 detections written to {target}" in err
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert [r["common"] for r in rows] == ["House Finch"] * 3 + ["American Goldfinch"] + [
        "House Finch"
    ]
    assert not list(tmp_path.glob("*.part"))

    _, out, _ = run_log(["log", "export", "--db", str(scene_db), "--format", "jsonl"], capsys)
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == len(SCENE)
    assert [x["start"] for x in lines] == sorted(x["start"] for x in lines)
    assert set(lines[0]) == set(record.EXPORT_FIELDS)

    with pytest.raises(BirdnetEdgeError, match="csv or jsonl"):
        run_log(["log", "--format", "table", "export", "--db", str(scene_db)], capsys)


# -- reading while the daemon writes ----------------------------------------------------------


def test_reader_is_read_only_and_never_waits_for_the_writer(scene_db: Path) -> None:
    writer = sqlite3.connect(scene_db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM detections")  # uncommitted: readers keep seeing the rows
    try:
        conn = store.connect(scene_db)
        try:
            assert len(store.recent(conn, store.Filters(), None)) == len(SCENE)
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                conn.execute("DELETE FROM detections")
        finally:
            conn.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


@contextlib.contextmanager
def _following(db: Path, f: store.Filters) -> Iterator[io.StringIO]:
    """``log --follow`` of ``db`` with filters ``f`` in a thread, writing JSON lines to the
    buffer it yields, from the rows after those already there."""
    out = io.StringIO()
    stop = threading.Event()
    started = threading.Event()

    def tail() -> None:
        conn = store.connect(db)
        try:
            last = store.last_rowid(conn)
            started.set()
            review.follow(conn, f, review.row_writer("jsonl", out, True), stop, last, poll=0.05)
        finally:
            conn.close()

    follower = threading.Thread(target=tail)
    follower.start()
    assert started.wait(10)
    try:
        yield out
    finally:
        stop.set()
        follower.join(10)


def test_follow_prints_an_event_once_it_grows_into_the_filter(tmp_path: Path) -> None:
    db = tmp_path / "follow.db"
    sink = LogWriter(db)
    sink.handle(EventChange("opened", make_event(JUNCO)))
    assert sink.flush(10)
    try:
        with _following(db, store.Filters(min_conf=0.8)) as out:
            quiet = make_event(FINCH, confidence=0.75)  # opens below --min-conf 0.8 ...
            sink.handle(EventChange("opened", quiet))
            assert sink.flush(10)
            loud = dataclasses.replace(quiet, confidence=0.93, windows=2)  # ... sings louder
            sink.handle(EventChange("updated", loud))
            assert sink.flush(10)
            wait_until(lambda: bool(out.getvalue()), timeout=10, what="the finch printed")
            sink.handle(EventChange("updated", dataclasses.replace(loud, windows=3)))
            # A later detection, printed after the update: the follower has seen the update.
            sink.handle(EventChange("opened", make_event(GOLDFINCH, confidence=0.95)))
            assert sink.flush(10)
            wait_until(lambda: "Goldfinch" in out.getvalue(), timeout=10, what="the goldfinch")
    finally:
        sink.close()
    printed = [json.loads(line) for line in out.getvalue().splitlines()]
    # Not printed while under --min-conf, printed once when it rose above, not again.
    assert [(p["common"], p["confidence"]) for p in printed] == [
        ("House Finch", 0.93),
        ("American Goldfinch", 0.95),
    ]


def test_follow_prints_new_detections_as_they_are_written(tmp_path: Path) -> None:
    db = tmp_path / "follow.db"
    sink = LogWriter(db)
    sink.handle(EventChange("opened", make_event(JUNCO)))
    assert sink.flush(10)

    def printed() -> list[str]:
        return [json.loads(line)["common"] for line in out.getvalue().splitlines()]

    try:
        with _following(db, store.Filters(species="finch")) as out:
            for label in (FINCH, JUNCO, GOLDFINCH):
                sink.handle(EventChange("opened", make_event(label)))
                assert sink.flush(10)
            # The goldfinch came last: once it is printed, the junco had its chance.
            wait_until(lambda: len(printed()) >= 2, timeout=10, what="two finches printed")
    finally:
        sink.close()
    assert printed() == ["House Finch", "American Goldfinch"]


# -- the real command line (once cli.py registers `log`) --------------------------------------


def _cli_has_log() -> bool:
    from birdnet_edge.cli.main import build_parser

    return any(
        isinstance(a, argparse._SubParsersAction) and "log" in a.choices
        for a in build_parser()._actions
    )


@pytest.mark.skipif(not _cli_has_log(), reason="`log` is not yet registered in cli.py")
def test_cli_log_commands(scene_db: Path) -> None:
    done = run_cli(["log", "--db", str(scene_db), "--utc", "--limit", "2"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("2025-05-01 12:00:00  Grauhäubchenmeise")
    done = run_cli(["log", "summary", "--db", str(scene_db), "--format", "csv"])
    assert done.stdout.splitlines()[1].startswith("House Finch,Haemorhous mexicanus,4,")
    done = run_cli(["log", "--db", str(scene_db.parent / "nothing.db")])
    assert done.returncode == 2
    assert "no detection database" in done.stderr


def test_output_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    # `birdnet-edge log export | head -1`: more output than a pipe holds, reader gone.
    db = tmp_path / "many.db"
    sink = LogWriter(db)
    start = dt.datetime(2025, 5, 1, 9, 0, tzinfo=UTC)
    for i in range(2000):
        sink.handle(EventChange("opened", make_event(FINCH, start + dt.timedelta(minutes=i))))
    assert sink.flush(30)
    sink.close()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as in a shell
    for args in ("log --limit 100", "log export"):  # fits in the pipe / does not
        done = subprocess.run(
            f"{sys.executable} -m birdnet_edge {args} --db {db} | head -1 >/dev/null; "
            "echo ${PIPESTATUS[0]}",
            shell=True,
            executable="/bin/bash",
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        assert done.stdout.strip() == "0", done.stderr
        assert "BrokenPipeError" not in done.stderr


def test_analyze_output_problems_are_found_before_the_work(tmp_path: Path) -> None:
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"")
    done = run_cli(["analyze", str(audio), "-o", str(tmp_path / "no" / "out.csv")])
    assert done.returncode == 2
    assert done.stderr.strip().endswith("does not exist: create it or choose another --output")
    done = run_cli(["analyze", str(audio), "-o", str(tmp_path)])
    assert "is a folder: give --output a file name" in done.stderr
    done = run_cli(["analyze", str(tmp_path)])
    assert "is a folder: give the audio files in it" in done.stderr
    done = run_cli(["analyze", str(audio), "--threads", "-3"])
    assert done.stderr.strip() == "birdnet-edge: error: --threads: must be between 0 and 64, got -3"
    done = run_cli(["analyze", str(audio), "--lat", "95", "--lon", "0"])
    assert done.stderr.strip() == "birdnet-edge: error: --lat: must be between -90 and 90, got 95.0"
    assert list(tmp_path.iterdir()) == [audio], "nothing is left behind"


def test_a_database_not_yet_migrated_reads_with_the_new_fields_defaults(tmp_path: Path) -> None:
    """`log` after an upgrade, before the daemon restarted and migrated the file."""
    from birdnet_edge.log.schema import MIGRATIONS, _statements

    path = tmp_path / "v3.db"
    conn = sqlite3.connect(path)
    for number, script in enumerate(MIGRATIONS[:3], 1):
        for statement in _statements(script):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
    e = make_event(CHICKADEE, dt.datetime(2025, 5, 1, 9, 0, tzinfo=UTC), windows=1, confidence=0.8)
    row = record.to_row(dataclasses.replace(e, closed=True))
    columns = record.COLUMNS[:17]  # the columns of schema versions 1 to 3
    conn.execute(
        f"INSERT INTO detections ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        row[:17],
    )
    conn.commit()
    conn.close()
    reader = store.connect(path)
    (back,) = store.recent(reader, store.Filters(), limit=None)
    reader.close()
    assert (back.id, back.kind, back.first_in_days, back.first_ever) == (e.id, "bird", None, False)


def test_export_as_ebirds_record_format(scene_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_log(["log", "export", "--db", str(scene_db), "--format", "ebird"], capsys)
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert all(len(r) == 19 for r in rows)
    assert rows[0][:4] == ["Blue Jay", "Cyanocitta", "cristata", "X"]
    assert rows[0][8:10] == ["04/30/2025", "19:30"]  # New York time: the evening before
    finches = [r for r in rows if r[0] == "House Finch"]
    assert len(finches) == 1  # one row a species a day
    finch = finches[0]
    assert finch[4].startswith("4 BirdNET detections, best confidence 0.90")
    assert finch[8:10] == ["05/01/2025", "05:05"]
    assert (
        finch[12:16] == ["Stationary", "1", str(round((11 * 60 + 45 + 12 - 5 * 60 - 5) / 1)), "N"]
        or finch[12] == "Stationary"
    )
