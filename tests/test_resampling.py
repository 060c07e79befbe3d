"""The microphone source's resampling path (a device that refuses 48 kHz), fed directly.

The PortAudio callback only writes into the capture ring; everything tested here runs on the
pipeline thread, so the capture ring is written as the callback would write it.
"""

from __future__ import annotations

import time

import numpy as np

from birdnet_edge.audio.ring import RingBuffer
from birdnet_edge.audio.sources import MicrophoneSource

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
