"""How new a detection is: first of the day, days since the last, first ever (station time)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from birdnet_edge.detect.events import EventChange, EventTracker
from birdnet_edge.log.history import History, firsts, previous_start
from birdnet_edge.log.writer import LogWriter
from birdnet_edge.model.labels import Label
from tests.conftest import local_time_zone, run_cli
from tests.test_sqlite_sink import CONTEXT, make_event

NY = "America/New_York"
UTC = dt.timezone.utc
ROBIN = Label(0, "Turdus migratorius", "American Robin")
WREN = Label(1, "Troglodytes aedon", "House Wren")


@pytest.fixture
def new_york() -> Iterator[None]:
    with local_time_zone(NY):
        yield


def _local(text: str) -> dt.datetime:
    """A New York wall-clock time as an aware UTC time (the process runs in New York)."""
    return dt.datetime.fromisoformat(text).astimezone().astimezone(UTC)


def test_the_day_turns_at_local_midnight_not_utc(new_york: None) -> None:
    # 23:30 and 00:30 New York time (EDT, UTC-4) are 03:30 and 04:30 UTC: one UTC day.
    before = _local("2026-05-01T23:30:00")
    after = _local("2026-05-02T00:30:00")
    assert before.date() == after.date()  # one UTC day...
    assert firsts(after, before).first_of_day  # ...but two local ones
    assert firsts(after, before).first_in_days == 1
    same = firsts(_local("2026-05-01T23:59:00"), _local("2026-05-01T00:01:00"))
    assert (same.first_of_day, same.first_in_days, same.first_ever) == (False, 0, False)
    assert firsts(after, None) == firsts(after, None).__class__(True, None, True)


def test_days_are_calendar_days_across_a_dst_change(new_york: None) -> None:
    # Clocks go forward at 02:00 on 8 March 2026: that day has 23 hours.
    saturday_late = _local("2026-03-07T23:50:00")
    sunday_early = _local("2026-03-08T00:10:00")
    monday_early = _local("2026-03-09T00:05:00")
    assert firsts(sunday_early, saturday_late).first_in_days == 1
    assert firsts(monday_early, sunday_early).first_in_days == 1
    assert monday_early - sunday_early < dt.timedelta(hours=24)  # less than a day, yet a day
    # And back at 02:00 on 1 November 2026 (25 hours): 00:10 to 23:50 is still the same day.
    night = firsts(_local("2026-11-01T23:50:00"), _local("2026-11-01T00:10:00"))
    assert (night.first_of_day, night.first_in_days) == (False, 0)


def _log(db: Path, detections: list[dt.datetime], label: Label = ROBIN) -> None:
    sink = LogWriter(db)
    for start in detections:
        e = dataclasses.replace(make_event(label, start), closed=True)
        sink.handle(EventChange("closed", e))
    assert sink.flush(10)
    sink.close()


def test_the_log_is_asked_once_a_species_through_its_index(tmp_path: Path, new_york: None) -> None:
    db = tmp_path / "d.db"
    _log(db, [_local("2026-04-01T06:00:00"), _local("2026-04-20T07:00:00")])
    conn = sqlite3.connect(db)
    plan = " ".join(
        str(row[-1])
        for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT max(start_utc) FROM detections WHERE scientific = ? "
            "AND start_utc < ? AND windows >= ?",
            ("Turdus migratorius", "2026-05-01T00:00:00.000Z", 1),
        )
    )
    assert "INDEX detections_species" in plan, plan  # not a scan of the table
    assert previous_start(conn, "Turdus migratorius", _local("2026-04-20T06:00:00")) == _local(
        "2026-04-01T06:00:00"
    )
    conn.close()
    history = History(db)
    may = make_event(ROBIN, _local("2026-05-01T05:30:00"))
    got = history.firsts(may)
    assert (got.first_of_day, got.first_in_days, got.first_ever) == (True, 11, False)
    history.detected(may)
    later = history.firsts(make_event(ROBIN, _local("2026-05-01T18:00:00")))
    assert (later.first_of_day, later.first_in_days) == (False, 0)  # this run's, from memory
    assert history.firsts(make_event(WREN, _local("2026-05-01T06:00:00"))).first_ever
    history.close()


def test_the_tracker_stamps_each_event_and_counts_only_confirmed_ones(new_york: None) -> None:
    tracker = EventTracker(CONTEXT, gap_seconds=3.0, history=History(None), confirm=2)

    def opened(at: str) -> list[EventChange]:
        start = _local(at)
        changes = tracker.window(start, start + dt.timedelta(seconds=3), [(0, 0.9)], [ROBIN])
        return [c for c in changes if c.kind == "opened"]

    (a,) = opened("2026-05-01T05:00:00")  # one window only: never confirmed
    (b,) = opened("2026-05-01T05:10:00")
    assert a.detection.first_of_day
    assert b.detection.first_of_day  # a was not a detection: b is still the day's first
    assert opened("2026-05-01T05:10:03") == []  # b grows to two windows: confirmed
    (c,) = opened("2026-05-01T05:20:00")
    assert (c.detection.first_of_day, c.detection.first_in_days) == (False, 0)
    assert not c.detection.first_ever


def test_log_new_lists_arrivals_and_summary_says_how_new(tmp_path: Path, new_york: None) -> None:
    db = tmp_path / "d.db"
    _log(db, [_local("2026-03-01T06:00:00"), _local("2026-05-02T06:00:00")])  # back after 62 d
    _log(db, [_local("2026-04-28T06:00:00"), _local("2026-05-03T06:00:00")], WREN)  # 5 d
    args = ["--db", str(db), "--since", "2026-05-01", "--until", "2026-05-10"]
    new = run_cli(["log", "new", *args, "--format", "json"])
    assert new.returncode == 0, new.stderr
    arrived = json.loads(new.stdout)
    assert [(a["common"], a["days_away"]) for a in arrived] == [("American Robin", 62)]
    fresh = run_cli(["log", "new", *args, "--away", "3", "--format", "json"])
    assert [a["common"] for a in json.loads(fresh.stdout)] == ["American Robin", "House Wren"]
    table = run_cli(["log", "summary", *args]).stdout
    assert "back after 62 days" in table
    assert "back after 5 days" in table
