"""Where detection events go: the console, the SQLite log, MQTT.

A sink receives every :class:`~birdnet_edge.events.EventChange` in order from the pipeline
thread. ``handle`` must return quickly (a sink that does I/O queues the change for its own
thread); ``close`` flushes and stops within ``timeout`` seconds.
"""

from __future__ import annotations

from typing import Protocol

from birdnet_edge.events import EventChange


class Sink(Protocol):
    """The interface every sink implements."""

    def handle(self, change: EventChange) -> None:
        """Take one event change; never blocks the pipeline for long."""

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued, then stop."""
