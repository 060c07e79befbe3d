"""A sink that keeps every event change it is handed, for tests to look at."""

from __future__ import annotations

from birdnet_edge.detect.events import EventChange


class ListSink:
    def __init__(self) -> None:
        self.changes: list[EventChange] = []

    def handle(self, change: EventChange) -> None:
        self.changes.append(change)

    def close(self, timeout: float = 5.0) -> None:
        pass
