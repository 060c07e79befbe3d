"""Where detection events go: the SQLite log, the MQTT publisher, the daemon's day count.

The pipeline thread hands every :class:`~birdnet_edge.detect.events.EventChange` to one
:class:`Fanout`, which stamps it with what it announces over MQTT (when MQTT is on) and passes it
to each sink in order. ``handle`` must return quickly (a sink that does I/O queues the change
for its own thread); ``close`` flushes and stops within ``timeout`` seconds. No sink calls
another: what
depends on a change being on disk (the console line, the MQTT outbox) follows the log's
:class:`~birdnet_edge.log.feed.LogFeed` instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from birdnet_edge.detect.events import EventChange


class Sink(Protocol):
    """The interface every sink implements."""

    def handle(self, change: EventChange) -> None:
        """Take one event change; never blocks the pipeline for long."""

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued, then stop."""


class Fanout:
    """The sinks a change goes to, and the step that stamps it first; fixed once made (a reload
    builds a new one and swaps it in with one assignment)."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        stamp: Callable[[EventChange], EventChange] | None = None,
    ) -> None:
        self.sinks = tuple(sinks)
        self.stamp = stamp

    def handle(self, change: EventChange) -> None:
        if self.stamp is not None:
            change = self.stamp(change)
        for sink in self.sinks:
            sink.handle(change)

    def close(self, timeout: float = 5.0) -> None:
        """Close the sinks in order (the log first: its last commits feed the MQTT outbox)."""
        deadline = time.monotonic() + timeout
        for sink in self.sinks:
            sink.close(timeout=max(0.2, deadline - time.monotonic()))
