"""Ring buffer and windowing: BirdNET-Analyzer 2.4's window positions and tail rule."""

from __future__ import annotations

import numpy as np
import pytest

from birdnet_edge.audio.format import SAMPLE_RATE, WINDOW_SAMPLES
from birdnet_edge.audio.ring import RingBuffer
from birdnet_edge.audio.windows import Windower, hop_samples, make_batch


def _cut(total: int, overlap: float, chunk: int = 50_000) -> list[tuple[int, int, np.ndarray]]:
    """Feed ``total`` samples (value = sample number) in chunks; return every window cut."""
    ring = RingBuffer(WINDOW_SAMPLES * 4)
    windower = Windower(ring, overlap)
    batch = make_batch(3)
    signal = np.arange(total, dtype=np.float32)
    out = []
    for start in range(0, total, chunk):
        ring.write(signal[start : start + chunk])
        while spans := windower.take(batch):
            out += [(s.start, s.audio, batch[i].copy()) for i, s in enumerate(spans)]
    while spans := windower.take(batch, final=True):
        out += [(s.start, s.audio, batch[i].copy()) for i, s in enumerate(spans)]
    assert windower.dropped_samples == 0
    return out


def test_overlap_zero_on_two_minutes() -> None:
    windows = _cut(120 * SAMPLE_RATE, 0.0)
    assert [w[0] for w in windows] == [i * 3 * SAMPLE_RATE for i in range(40)]
    assert all(w[1] == WINDOW_SAMPLES for w in windows)


def test_overlap_one_and_a_half_stops_at_the_first_window_reaching_the_end() -> None:
    windows = _cut(120 * SAMPLE_RATE, 1.5)
    starts = [w[0] / SAMPLE_RATE for w in windows]
    assert starts[:3] == [0.0, 1.5, 3.0]
    assert len(windows) == 79
    assert starts[-1] == 117.0  # 117..120 reaches the end; 118.5 is not cut


def test_window_contents_are_the_stream_samples() -> None:
    for start, audio, row in _cut(10 * SAMPLE_RATE + 123, 0.7):
        expected = np.arange(start, start + audio, dtype=np.float32)
        np.testing.assert_array_equal(row[:audio], expected)
        assert not row[audio:].any()


@pytest.mark.parametrize(
    ("seconds", "expected_tail"),
    [
        (7.5, (6 * SAMPLE_RATE, int(1.5 * SAMPLE_RATE))),  # tail of 1.5 s: padded and kept
        (6.5, None),  # tail of 0.5 s (< 1 s): dropped
        (2.0, (0, 2 * SAMPLE_RATE)),  # shorter than one window, at least 1 s: one padded window
    ],
)
def test_tail_rule(seconds: float, expected_tail: tuple[int, int] | None) -> None:
    windows = _cut(int(seconds * SAMPLE_RATE), 0.0)
    tails = [(w[0], w[1]) for w in windows if w[1] < WINDOW_SAMPLES]
    assert tails == ([expected_tail] if expected_tail else [])


def test_shorter_than_one_second_gives_nothing() -> None:
    assert _cut(SAMPLE_RATE - 1, 0.0) == []


def test_overwritten_windows_are_skipped_and_counted() -> None:
    ring = RingBuffer(WINDOW_SAMPLES * 2)
    windower = Windower(ring, 0.0)
    ring.write(np.zeros(WINDOW_SAMPLES * 5, dtype=np.float32))  # the reader fell far behind
    batch = make_batch(8)
    spans = windower.take(batch)
    assert spans[0].start >= ring.oldest()
    assert windower.dropped_samples == spans[0].start
    assert [s.start for s in spans] == [3 * WINDOW_SAMPLES, 4 * WINDOW_SAMPLES]


def test_ring_wraps_around() -> None:
    ring = RingBuffer(10)
    ring.write(np.arange(7, dtype=np.float32))
    ring.write(np.arange(7, 14, dtype=np.float32))
    out = np.zeros(6, dtype=np.float32)
    assert ring.read(8, out)
    np.testing.assert_array_equal(out, np.arange(8, 14, dtype=np.float32))
    assert not ring.read(2, out)  # overwritten


@pytest.mark.parametrize("overlap", [-0.1, 3.0])
def test_hop_rejects_bad_overlap(overlap: float) -> None:
    with pytest.raises(ValueError, match="overlap"):
        hop_samples(overlap)


def test_a_read_overlapping_a_write_in_progress_is_torn() -> None:
    ring = RingBuffer(10)
    ring.write(np.arange(10, dtype=np.float32))
    out = np.zeros(4, dtype=np.float32)
    assert ring.read(2, out)
    # The producer has begun a write of samples 10..13 (over slots of samples 0..3) but has
    # not advanced `written` yet: a copy of samples 2..5 made now may hold new data.
    ring._writing_end = 14
    assert not ring.read(2, out)
    assert ring.read(4, out)  # samples 4..7 are not touched by that write


@pytest.mark.parametrize("hop", [3.0, 2.5, 2.0, 1.75, 1.5, 1.0, 0.5, 0.25, 2.3, 0.1])
def test_capture_blocks_end_where_windows_end(hop: float) -> None:
    """Every window ends 3 s + k x hop after the stream starts: a block that divides both ends
    on each window's end, so a window is complete the moment its last block arrives."""
    from birdnet_edge.audio.microphone import BLOCK_SECONDS, aligned_block

    block = round(aligned_block(hop) * 48_000)
    assert block <= BLOCK_SECONDS * 48_000
    assert 144_000 % block == 0
    assert round(hop * 48_000) % block == 0
    if hop in (3.0, 2.5, 2.0, 1.5, 1.0, 0.5):
        assert block == 24_000, "the longest block where one fits"


def test_a_hop_without_a_long_common_block_gets_short_blocks() -> None:
    from birdnet_edge.audio.microphone import aligned_block

    assert aligned_block(2.37) == 0.1  # 2 880 samples would divide both: too many wake-ups
