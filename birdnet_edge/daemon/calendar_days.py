"""The station's calendar: when a local day ends, by a clock that tests can inject.

The daemon looks every turn of its main loop (four times a second); when the local date has
changed it logs the day's counts (windows with human sounds, bird hits held back) and, with
``filters.week: 0``, moves the range filter to the new day's week, so both happen within a
fraction of a second of local midnight, also on the days daylight saving time starts or ends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from birdnet_edge.detect.sounds import GateStats

Clock = Callable[[], dt.datetime]


def local_now() -> dt.datetime:
    """Now, aware, in the station's (the process's) local time."""
    return dt.datetime.now().astimezone()


class Calendar:
    """Tells once when the local day has turned."""

    def __init__(self, clock: Clock = local_now) -> None:
        self.clock = clock
        self.day = clock().date()

    @property
    def today(self) -> dt.date:
        return self.clock().date()

    def turned(self) -> dt.date | None:
        """The day that ended since the last call (None while it is the same day)."""
        today = self.today
        if today == self.day:
            return None
        ended, self.day = self.day, today
        return ended


def day_line(day: dt.date, now: GateStats, at_start: GateStats) -> str | None:
    """The log line for what the window rules did on ``day`` (None if they did nothing)."""
    voices = now.private_windows - at_start.private_windows
    privacy = now.dropped_private - at_start.dropped_private
    noise = now.suppressed - at_start.suppressed
    daylight = now.by_day - at_start.by_day
    if not (voices or privacy or noise or daylight):
        return None
    return (
        f"{day:%Y-%m-%d}: {voices} windows with human sounds (no audio kept); bird hits held "
        f"back: {privacy} by privacy, {noise} by noise rules, {daylight} by daylight"
    )
