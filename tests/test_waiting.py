"""When the pipeline sleeps: the listener until a window is due, a full-speed replay until the
ring has room (both woken by data or the consumer, not by a fast tick)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from birdnet_edge.audio.ring import RingBuffer
from birdnet_edge.audio.sources import FileSource, SampleClock, SourceStats
from birdnet_edge.listener import MAX_WAIT, POLL_SECONDS, Listener
from birdnet_edge.model.files import SAMPLE_RATE, WINDOW_SAMPLES


@dataclass
class _Ring:
    """Just enough of a source for the listener's arithmetic."""

    ring: RingBuffer
    block_seconds: float | None
    clock: SampleClock = field(default_factory=SampleClock)
    stats: SourceStats = field(default_factory=SourceStats)


def _listener(block: float | None) -> tuple[Listener, RingBuffer]:
    ring = RingBuffer(WINDOW_SAMPLES * 4)
    source: Any = _Ring(ring, block)
    return Listener(source, detector=None, tracker=None, sinks=[]), ring  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("have_seconds", "expected"),
    [
        (0.0, MAX_WAIT),  # 3 s to go: at most MAX_WAIT at a time
        (2.5, 0.4),  # 0.5 s to go, woken one 0.1 s block early
        (2.95, POLL_SECONDS),  # inside the last block: short steps
        (3.0, POLL_SECONDS),  # complete (the loop takes it before it would wait)
    ],
)
def test_a_realtime_source_is_looked_at_when_its_next_window_is_due(
    have_seconds: float, expected: float
) -> None:
    listener, ring = _listener(block=0.1)
    ring.write(np.zeros(round(have_seconds * SAMPLE_RATE), dtype=np.float32))
    assert listener._wait_seconds() == pytest.approx(expected)


def test_a_full_speed_replay_is_looked_at_every_step() -> None:
    listener, _ = _listener(block=None)
    assert listener._wait_seconds() == POLL_SECONDS


def _until(condition: Any, timeout: float = 20.0) -> bool:
    """Liveness, not speed: True once ``condition()`` holds (generous timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())


def test_a_full_speed_replay_waits_for_room_never_overwrites_and_stops(tmp_path: Path) -> None:
    audio = np.random.default_rng(5).uniform(-0.5, 0.5, 10 * SAMPLE_RATE).astype(np.float32)
    path = tmp_path / "ten.wav"
    soundfile.write(str(path), audio, SAMPLE_RATE, subtype="FLOAT")
    ring = RingBuffer(4 * SAMPLE_RATE)  # one window and one 1 s block
    source = FileSource(path, ring, fast=True)
    source.start()
    try:
        assert _until(lambda: ring.written == 4 * SAMPLE_RATE)
        time.sleep(0.3)
        assert ring.written == 4 * SAMPLE_RATE  # full of what the consumer needs: it waits
        window = np.empty(WINDOW_SAMPLES, dtype=np.float32)
        assert ring.read(0, window)
        assert np.array_equal(window, audio[:WINDOW_SAMPLES])
        ring.free_until(3 * SAMPLE_RATE)  # the consumer is done with the first 3 s
        assert _until(lambda: ring.written == 7 * SAMPLE_RATE)
        assert ring.read(3 * SAMPLE_RATE, window)
        assert np.array_equal(window, audio[3 * SAMPLE_RATE : 6 * SAMPLE_RATE])
        assert source.running
    finally:
        source.stop()  # while it waits for room
    assert _until(lambda: not source.running, timeout=5.0)
    assert ring.written == 7 * SAMPLE_RATE
