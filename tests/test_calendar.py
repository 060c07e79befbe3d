"""The station's days by an injected clock: local midnight, daylight saving time, the week."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from birdnet_edge.config import Config, FiltersConfig, StationConfig
from birdnet_edge.daemon.calendar_days import Calendar, day_line
from birdnet_edge.daemon.service import range_week
from birdnet_edge.detect.sounds import GateStats

BERLIN = ZoneInfo("Europe/Berlin")
LOCATED = Config(station=StationConfig(latitude=52.52, longitude=13.405))


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, *times: dt.datetime) -> None:
        self.times: Iterator[dt.datetime] = iter(times)
        self.now = next(self.times)

    def __call__(self) -> dt.datetime:
        return self.now

    def tick(self) -> None:
        self.now = next(self.times)


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=BERLIN)


def test_the_day_turns_once_at_local_midnight_and_not_at_a_dst_change() -> None:
    clock = Clock(
        _at("2026-03-28T23:59:59"),  # Saturday before clocks go forward
        _at("2026-03-29T00:00:01"),  # local midnight (23:00 UTC)
        _at("2026-03-29T01:59:59"),
        (_at("2026-03-29T01:59:59") + dt.timedelta(seconds=2)).astimezone(BERLIN),  # 03:00:01 CEST
        _at("2026-03-29T23:59:59"),  # a 23-hour day
        _at("2026-03-30T00:00:00"),
    )
    calendar = Calendar(clock)
    turns = []
    for _ in range(5):
        clock.tick()
        turns.append(calendar.turned())
    assert turns == [dt.date(2026, 3, 28), None, None, None, dt.date(2026, 3, 29)]
    assert clock.now.hour == 0


def test_the_range_filters_week_follows_the_local_date() -> None:
    # BirdNET's weeks: days 1-7, 8-14, 15-21 and 22-end of each month.
    assert range_week(LOCATED, dt.date(2026, 3, 21)) == 11
    assert range_week(LOCATED, dt.date(2026, 3, 22)) == 12
    assert range_week(LOCATED, dt.date(2026, 3, 31)) == 12
    assert range_week(LOCATED, dt.date(2026, 4, 1)) == 13
    # A clock at 23:30 UTC on the 21st is already the 22nd in Berlin: the local date decides.
    late = dt.datetime(2026, 3, 21, 23, 30, tzinfo=dt.timezone.utc).astimezone(BERLIN)
    assert range_week(LOCATED, Calendar(lambda: late).today) == 12
    fixed = Config(station=LOCATED.station, filters=FiltersConfig(week=20))
    assert range_week(fixed, dt.date(2026, 3, 22)) is None  # a fixed week does not follow


def test_the_days_counts_are_said_once_the_day_is_over() -> None:
    start = GateStats(private_windows=3, dropped_private=1, suppressed=0, by_day=2)
    end = GateStats(private_windows=10, dropped_private=1, suppressed=4, by_day=2)
    line = day_line(dt.date(2026, 5, 1), end, start)
    assert line == (
        "2026-05-01: 7 windows with human sounds (no audio kept); bird hits held back: "
        "0 by privacy, 4 by noise rules, 0 by daylight"
    )
    assert day_line(dt.date(2026, 5, 2), end, end) is None
