"""The microphone source's resampling path (a device that refuses 48 kHz), fed directly.

The PortAudio callback only writes into the capture ring; everything tested here runs on the
pipeline thread, so the capture ring is written as the callback would write it.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from birdnet_edge.audio.microphone import MicrophoneSource, MicState
from birdnet_edge.audio.ring import RingBuffer

RATE = 44_100


def _source() -> tuple[MicrophoneSource, RingBuffer]:
    source = MicrophoneSource(RingBuffer(48_000 * 30))
    source._prepare(RATE, RATE // 10)
    assert source._capture is not None
    return source, source._capture


def test_resampled_audio_keeps_its_length() -> None:
    source, capture = _source()
    tone = np.sin(np.arange(2 * RATE) * 2 * np.pi * 1000 / RATE).astype(np.float32)
    for i in range(0, len(tone), RATE // 10):
        capture.write(tone[i : i + RATE // 10])
        source._resample(time.monotonic())
    # soxr holds back its filter's delay; everything else arrives at 48 kHz.
    assert 2 * 48_000 - 2_000 < source.ring.written <= 2 * 48_000
    assert source.stats.overflows == 0
    assert source.gap() is None


def test_a_capture_ring_overrun_is_a_gap_stamped_with_its_capture_time() -> None:
    source, capture = _source()
    capture.write(np.zeros(RATE, dtype=np.float32))
    source._resample(time.monotonic())
    # The pipeline thread stalls while 12 s arrive: the capture ring holds only the last 10 s.
    capture.write(np.zeros(12 * RATE, dtype=np.float32))
    source._last_capture_end = time.time()  # as the callback notes each block's capture time
    before = source.ring.written
    source._resample(time.monotonic())
    assert source.stats.overflows == 1
    assert source.gap() == before, "the windows restart after the lost audio"
    # The oldest sample still in the capture ring was captured 10 s ago, not now.
    assert abs(source.clock.time_of(before) - (time.time() - 10.0)) < 0.5
    source._resample(time.monotonic())
    assert source.ring.written - before > 9.9 * 48_000, "the 10 s left are resampled"
    source._keep_clock(time.monotonic())  # the overrun is already accounted for
    assert abs(source.clock.time_of(before) - (time.time() - 10.0)) < 0.5


def test_the_drift_check_moves_stamps_by_the_drift_only_and_from_the_first_block_on() -> None:
    source = MicrophoneSource(RingBuffer(48_000 * 120))
    source._prepare(48_000, 4_800)
    start = time.time() - 90.0
    # The stream was opened (a provisional anchor), its first block was captured 1.5 s later.
    source.clock.anchor(0, start - 1.5)
    source._first_capture = start
    source._last_callback = time.monotonic()  # audio flows through an open, active stream

    class _Stream:
        active = True

    source._stream = _Stream()
    source.state = MicState.WAITING  # opened, the first block in
    source.poll()
    assert source.state is MicState.LISTENING
    assert source.clock.time_of(0) == start, "stamped from the first block's capture time"
    # 60 s later the sound card's clock has run 0.6 s slow against the system's.
    source.ring.write(np.zeros(60 * 48_000, dtype=np.float32))
    source._last_capture_end = start + 60.6
    before = [source.clock.time_of(n * 48_000) for n in (0, 30, 60, 61)]
    source._keep_clock(source._next_clock_check)
    after = [source.clock.time_of(n * 48_000) for n in (0, 30, 60, 61)]
    assert after[:2] == before[:2], "audio already stamped keeps its stamps"
    assert after[2] - before[2] == pytest.approx(0.6), "later stamps move by the drift"
    assert after[3] - before[3] == pytest.approx(0.6)
    # A drift within block jitter is left alone.
    source.ring.write(np.zeros(60 * 48_000, dtype=np.float32))
    source._last_capture_end = start + 120.6 + 0.1
    source._keep_clock(source._next_clock_check)
    assert source.clock.time_of(120 * 48_000) == pytest.approx(start + 120.6)
