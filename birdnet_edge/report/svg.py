"""Bar charts as inline SVG, drawn from the counts: pure functions returning markup.

Each chart is an accessible image: ``role="img"`` labelled by its ``<title>`` and ``<desc>``
(what a screen reader says: the peak and how spread the counts are), and each bar carries a
``<title>`` of its own (a tooltip with its count). Colours come from the page's CSS classes, so
the charts follow its light or dark scheme. The drawing scales with the width of its container.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape

WIDTH = 240  # the plot's width in user units; the page scales the SVG to its container
HEIGHT = 56  # the plot's height
PAD = 10  # left and right margin (room for the first and last tick labels)
AXIS = 14  # room for the tick labels below the plot
TOP = 4


def _n(x: float) -> str:
    """A coordinate, short."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def bars(
    values: Sequence[int],
    *,
    ident: str,
    title: str,
    desc: str,
    bar_titles: Sequence[str],
    ticks: Sequence[tuple[float, str]],
) -> str:
    """A bar chart of ``values``: ``ident`` makes its element ids unique in the page;
    ``bar_titles``: each bar's tooltip; ``ticks``: (position in bars from the left, label)."""
    step = WIDTH / max(1, len(values))
    gap = step * 0.2 if step >= 4 else 0.0
    top = max(values, default=0) or 1
    base = TOP + HEIGHT
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH + 2 * PAD} {base + AXIS}" role="img" '
        f'aria-labelledby="{ident}-t {ident}-d" focusable="false">',
        f'<title id="{ident}-t">{escape(title)}</title><desc id="{ident}-d">{escape(desc)}</desc>',
    ]
    for i, (v, tip) in enumerate(zip(values, bar_titles, strict=True)):
        if v <= 0:
            continue
        h = max(1.0, v / top * HEIGHT)
        parts.append(
            f'<rect class="bar" x="{_n(PAD + i * step + gap / 2)}" y="{_n(base - h)}" '
            f'width="{_n(max(step - gap, 0.6))}" height="{_n(h)}">'
            f"<title>{escape(tip)}</title></rect>"
        )
    parts.append(f'<line class="axis" x1="{PAD}" y1="{base}" x2="{PAD + WIDTH}" y2="{base}"/>')
    for at, label in ticks:
        x = PAD + at * step
        half = len(label) * 2.7  # about half the label's width at the CSS font size
        middle = min(max(x, half + 1), WIDTH + 2 * PAD - half - 1)  # inside the picture
        parts.append(
            f'<line class="axis" x1="{_n(x)}" y1="{base}" x2="{_n(x)}" y2="{base + 3}"/>'
            f'<text x="{_n(middle)}" y="{base + AXIS - 2}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def by_hour(hours: Sequence[int], *, ident: str, name: str) -> str:
    """Detections by hour of the day (24 counts, station time)."""
    total = sum(hours)
    peak = max(range(len(hours)), key=lambda h: hours[h])
    heard = sum(1 for n in hours if n)
    desc = (
        f"{_plural(total, 'detection')}; most at {peak:02d}:00 to {peak + 1:02d}:00 "
        f"({hours[peak]}); heard in {heard} of 24 hours."
    )
    return bars(
        hours,
        ident=ident,
        title=f"{name}: detections by hour of the day",
        desc=desc,
        bar_titles=[f"{h:02d}:00 to {h + 1:02d}:00: {n}" for h, n in enumerate(hours)],
        ticks=[(h, f"{h:02d}") for h in (0, 6, 12, 18)] + [(24, "24")],
    )


def by_day(days: Sequence[dt.date], counts: Sequence[int], *, ident: str, name: str) -> str:
    """Detections by day over the period (one count a day)."""
    total = sum(counts)
    peak = max(range(len(counts)), key=lambda i: counts[i])
    heard = sum(1 for n in counts if n)
    desc = (
        f"{_plural(total, 'detection')} over {_plural(len(days), 'day')}, "
        f"{days[0]:%Y-%m-%d} to {days[-1]:%Y-%m-%d}; most on {days[peak]:%Y-%m-%d} "
        f"({counts[peak]}); heard on {heard} of them."
    )
    last = len(days) - 1
    ticks = [(0.5, f"{days[0]:%m-%d}")]
    if last >= 1:
        ticks.append((last + 0.5, f"{days[last]:%m-%d}"))
    if last >= 8:
        ticks.insert(1, (last // 2 + 0.5, f"{days[last // 2]:%m-%d}"))
    return bars(
        counts,
        ident=ident,
        title=f"{name}: detections by day",
        desc=desc,
        bar_titles=[f"{d:%Y-%m-%d} ({d:%a}): {n}" for d, n in zip(days, counts, strict=True)],
        ticks=ticks,
    )
