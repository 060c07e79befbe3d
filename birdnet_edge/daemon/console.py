"""One readable line per detection event on stdout, once the log has it."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from birdnet_edge.log.feed import HeldMessage
from birdnet_edge.log.record import Detection, console_line


class Console:
    """Follows the detection log (:class:`~birdnet_edge.log.feed.LogFeed`) and prints each
    event it wrote when the event opened (local time, common and scientific name, confidence):
    a SIGKILL never loses an event the console showed."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    def written(self, opened: Sequence[Detection], outboxed: int) -> None:
        if opened:
            self.out.write("".join(console_line(d) + "\n" for d in opened))
            self.out.flush()

    def unstored(self, messages: Sequence[HeldMessage]) -> None:
        pass
