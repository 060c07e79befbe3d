"""What the pipeline needs from an audio source (a microphone, or a recording replayed as if
live): the :class:`Source` protocol, which tests implement to inject audio.

A source fills a :class:`~birdnet_edge.audio.ring.RingBuffer` with 48 kHz mono float32 samples and
knows the wall-clock time of every sample number through a
:class:`~birdnet_edge.audio.clock.SampleClock`. The pipeline thread calls :meth:`Source.poll`
between windows; that is where a source does its housekeeping (reopening a stalled or lost
microphone, resampling), never in the audio callback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from birdnet_edge.audio.clock import SampleClock
from birdnet_edge.audio.ring import RingBuffer


@dataclass
class SourceStats:
    """Counters a source keeps for the logs and the benchmark."""

    overflows: int = 0  # PortAudio input overflow/underflow flags (audio lost before the ring)
    reopens: int = 0  # times the stream was (re)opened after a loss


class Source(Protocol):
    """What the pipeline needs from an audio source."""

    ring: RingBuffer
    clock: SampleClock
    stats: SourceStats

    @property
    def block_seconds(self) -> float | None:
        """Audio arrives in blocks this long (a sound card's); None when it arrives as fast as
        it can be read (a file replayed at full speed)."""

    @property
    def last_block(self) -> float:
        """``time.monotonic()`` when the latest block arrived; 0.0 before the first."""

    def start(self) -> None:
        """Begin delivering audio (may keep retrying in the background)."""

    def poll(self) -> bool:
        """Housekeeping between windows; returns True once a finite source has ended."""

    @property
    def running(self) -> bool:
        """Audio is flowing now."""

    def gap(self) -> int | None:
        """If audio restarted after a gap since the last call: the first new sample number."""

    def stop(self) -> None:
        """Stop delivering audio."""
