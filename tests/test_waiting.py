"""When the pipeline sleeps: the listener until a window is due, a full-speed replay until the
ring has room (both woken by data or the consumer, not by a fast tick)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from birdnet_edge.audio.format import SAMPLE_RATE, WINDOW_SAMPLES
from birdnet_edge.audio.replay import FileSource
from birdnet_edge.audio.ring import RingBuffer
from birdnet_edge.detect.listener import ARRIVAL_MARGIN, MAX_WAIT, POLL_SECONDS, wait_seconds
from tests.waiting import wait_until


@pytest.mark.parametrize(
    ("block", "have_seconds", "expected"),
    [
        (0.1, 0.0, MAX_WAIT),  # 3 s to go: at most MAX_WAIT at a time
        (0.1, 2.5, 0.5 + ARRIVAL_MARGIN),  # five more blocks, due 0.5 s after the last one
        (0.1, 2.95, 0.1 + ARRIVAL_MARGIN),  # the next block completes it
        (0.1, 3.0, POLL_SECONDS),  # complete (the loop takes it before it would wait)
        (0.5, 2.5, 0.5 + ARRIVAL_MARGIN),  # one 0.5 s block to go
        (0.5, 1.5, MAX_WAIT),  # three blocks (1.5 s) to go: capped
    ],
)
def test_a_realtime_source_is_looked_at_when_the_block_completing_a_window_is_due(
    block: float, have_seconds: float, expected: float
) -> None:
    need = WINDOW_SAMPLES - round(have_seconds * SAMPLE_RATE)
    assert wait_seconds(need, block, last_block=100.0, now=100.0) == pytest.approx(expected)


def test_before_the_first_block_the_wait_assumes_the_ring_is_a_block_behind() -> None:
    need = WINDOW_SAMPLES - round(2.5 * SAMPLE_RATE)
    assert wait_seconds(need, 0.1, last_block=0.0, now=100.0) == pytest.approx(0.4)


def test_a_full_speed_replay_is_looked_at_every_step() -> None:
    assert wait_seconds(WINDOW_SAMPLES, None, last_block=0.0, now=100.0) == POLL_SECONDS


def test_a_full_speed_replay_waits_for_room_never_overwrites_and_stops(tmp_path: Path) -> None:
    audio = np.random.default_rng(5).uniform(-0.5, 0.5, 10 * SAMPLE_RATE).astype(np.float32)
    path = tmp_path / "ten.wav"
    soundfile.write(str(path), audio, SAMPLE_RATE, subtype="FLOAT")
    ring = RingBuffer(4 * SAMPLE_RATE)  # one window and one 1 s block
    source = FileSource(path, ring, fast=True)
    source.start()
    try:
        wait_until(lambda: ring.written == 4 * SAMPLE_RATE, timeout=20, every=0.01)
        time.sleep(0.3)
        assert ring.written == 4 * SAMPLE_RATE  # full of what the consumer needs: it waits
        window = np.empty(WINDOW_SAMPLES, dtype=np.float32)
        assert ring.read(0, window)
        assert np.array_equal(window, audio[:WINDOW_SAMPLES])
        ring.free_until(3 * SAMPLE_RATE)  # the consumer is done with the first 3 s
        wait_until(lambda: ring.written == 7 * SAMPLE_RATE, timeout=20, every=0.01)
        assert ring.read(3 * SAMPLE_RATE, window)
        assert np.array_equal(window, audio[3 * SAMPLE_RATE : 6 * SAMPLE_RATE])
        assert source.running
    finally:
        source.stop()  # while it waits for room
    wait_until(lambda: not source.running, timeout=5.0)
    assert ring.written == 7 * SAMPLE_RATE
