"""What the detection log's writer tells those who follow it: the console and the MQTT publisher.

The log is the one place a detection becomes durable; what depends on that follows the log
instead of the pipeline. After every write attempt the writer hands its followers the events
opened since the last attempt (the console prints them, so a line on screen means a row on
disk) and whether new outbox rows were committed (the publisher wakes up to send them). While
the disk fails, the writer hands over the outbox messages it could not write, and the publisher
sends them from memory.

Followers are called on the writer's thread and must return at once. The MQTT publisher starts
and stops following as it is created and closed (a config reload makes a new one), so the writer
never holds a reference to a particular publisher.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

from birdnet_edge.log.record import Detection

_LOGGER = logging.getLogger(__name__)

#: An outbox message the writer could not store: (event id, topic, payload).
HeldMessage = tuple[str, str, str]


class Follower(Protocol):
    """One who follows the log's writes."""

    def written(self, opened: Sequence[Detection], outboxed: int) -> None:
        """After a write attempt: the events opened since the last one, in order of start
        (written, or kept in memory when the disk fails), and the outbox rows committed."""

    def unstored(self, messages: Sequence[HeldMessage]) -> None:
        """Outbox messages that could not be written (full or failing disk)."""


class LogFeed:
    """The writer's side calls :meth:`written`/:meth:`unstored`; followers come and go."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._followers: tuple[Follower, ...] = ()  # replaced whole: the writer reads it unlocked

    def follow(self, follower: Follower) -> None:
        with self._lock:
            self._followers = (*self._followers, follower)

    def unfollow(self, follower: Follower) -> None:
        with self._lock:
            self._followers = tuple(f for f in self._followers if f is not follower)

    @property
    def followed(self) -> bool:
        """Whether anyone follows (without followers, unwritten messages are just dropped)."""
        return bool(self._followers)

    def written(self, opened: Sequence[Detection], outboxed: int) -> None:
        for follower in self._followers:
            try:
                follower.written(opened, outboxed)
            except Exception:
                _LOGGER.exception("a follower of the detection log failed")

    def unstored(self, messages: Sequence[HeldMessage]) -> None:
        for follower in self._followers:
            try:
                follower.unstored(messages)
            except Exception:
                _LOGGER.exception("handing unstored MQTT messages over failed")
