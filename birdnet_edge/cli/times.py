"""Times the user types for ``--since``/``--until``: absolute or relative to now.

Accepted (like ``journalctl``): ``2025-05-01``, ``2025-05-01 06:30``, ``2025-05-01T06:30:15``
(optionally with ``Z`` or ``+02:00``), a time of day ``06:30`` (today), ``now``, ``today``,
``yesterday`` (both at midnight), and an age ``90s``, ``30m``, ``2h``, ``3d``, ``1w``. A date
means its midnight. Times without a zone are local, or UTC when ``utc`` is true.
"""

from __future__ import annotations

import datetime as dt
import re

from birdnet_edge.errors import BirdnetEdgeError

_AGE = re.compile(r"^-?(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)$")
_UNIT = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_CLOCK = re.compile(r"^\d{1,2}:\d{2}(:\d{2})?$")
_ONE_DIGIT_HOUR = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d:)")  # 2025-05-01 6:30


def parse_when(
    text: str, *, now: dt.datetime | None = None, utc: bool = False, option: str = "--since"
) -> dt.datetime:
    """The aware datetime ``text`` means, relative to ``now`` (aware; default the current time)."""
    try:
        return _parse(text, now or dt.datetime.now(dt.timezone.utc), utc)
    except (ValueError, OverflowError):  # not a time, or one out of the calendar's range
        raise BirdnetEdgeError(
            f"{option} {text!r}: not a time; use a date (2025-05-01), a date and time "
            "('2025-05-01 06:30'), a time today (06:30), or an age (30m, 2h, 3d), today, yesterday"
        ) from None


def _parse(text: str, now: dt.datetime, utc: bool) -> dt.datetime:
    value = text.strip().lower()
    age = _AGE.match(value)
    if age:
        return now - dt.timedelta(seconds=float(age.group(1)) * _UNIT[age.group(2)])
    if value == "now":
        return now
    if value in ("today", "yesterday"):
        day = _in_zone(now, utc).date()
        if value == "yesterday":
            day -= dt.timedelta(days=1)
        return _zoned(dt.datetime(day.year, day.month, day.day), utc)
    if _CLOCK.match(value):
        hour, rest = value.split(":", 1)
        value = f"{_in_zone(now, utc).date().isoformat()}T{int(hour):02d}:{rest}"
    iso = _ONE_DIGIT_HOUR.sub(r"\1T0\2", value.upper().replace(" ", "T", 1))
    if iso.endswith("Z"):
        iso = iso[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(iso)
    return parsed if parsed.tzinfo is not None else _zoned(parsed, utc)


def _in_zone(t: dt.datetime, utc: bool) -> dt.datetime:
    return t.astimezone(dt.timezone.utc) if utc else t.astimezone()


def _zoned(naive: dt.datetime, utc: bool) -> dt.datetime:
    """A wall-clock time in UTC or in the system's local zone (with its DST rules)."""
    return naive.replace(tzinfo=dt.timezone.utc) if utc else naive.astimezone()
