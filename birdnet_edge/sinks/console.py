"""One readable line per detection event on stdout."""

from __future__ import annotations

import sys
from typing import TextIO

from birdnet_edge.events import EventChange
from birdnet_edge.record import Detection, console_line


class ConsoleSink:
    """Prints each event when it opens (local time, common and scientific name, confidence)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def handle(self, change: EventChange) -> None:
        if change.kind != "opened":
            return
        self.out.write(console_line(Detection.of(change.event, closed=False)) + "\n")
        self.out.flush()

    def close(self, timeout: float = 5.0) -> None:
        self.out.flush()
