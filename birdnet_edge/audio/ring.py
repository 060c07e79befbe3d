"""A single-producer, single-consumer ring buffer of audio samples, addressed by sample number.

The producer (the PortAudio callback, or a file reader) calls :meth:`RingBuffer.write`, which
copies into preallocated memory and then advances :attr:`written`; it takes no lock and
allocates nothing. The consumer reads any span that has not been overwritten yet by its absolute
sample numbers, so windows can overlap and are stamped by sample count, not by reading time.
"""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


class RingBuffer:
    """Holds the most recent ``capacity`` samples of a stream."""

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        # Written now, so every page is in memory: the first lap's page faults would otherwise
        # land in the audio callback (np.zeros maps its pages lazily).
        self._data = np.full(self.capacity, 0.0, dtype=np.float32)
        #: Samples written since the start (only the producer changes it, after copying).
        self.written = 0
        #: Where the write in progress ends: set before copying, so a reader can tell that
        #: its span was being overwritten while it copied.
        self._writing_end = 0
        #: The oldest sample the consumer still needs (only the consumer changes it, through
        #: :meth:`free_until`); a producer that must not lose audio (a file replay) waits on
        #: :attr:`room_freed` while writing would pass it.
        self.needed = 0
        self.room_freed = threading.Event()

    def write(self, samples: FloatArray) -> None:
        """Append samples (1-D float32); old samples are overwritten when full."""
        n = len(samples)
        self._writing_end = self.written + n
        if n > self.capacity:
            samples = samples[n - self.capacity :]
            self.written += n - self.capacity
            n = self.capacity
        pos = self.written % self.capacity
        first = min(n, self.capacity - pos)
        self._data[pos : pos + first] = samples[:first]
        if first < n:
            self._data[: n - first] = samples[first:]
        self.written += n

    def free_until(self, sample: int) -> None:
        """The consumer no longer needs the samples before ``sample``: wake a waiting producer."""
        self.needed = sample
        self.room_freed.set()

    def room(self) -> int:
        """Samples that can be written without overwriting what the consumer still needs."""
        return self.capacity - (self.written - self.needed)

    def oldest(self) -> int:
        """The first sample number still held."""
        return max(0, self.written - self.capacity)

    def read(self, start: int, out: FloatArray) -> bool:
        """Copy samples ``start .. start+len(out)`` into ``out``.

        Samples past :attr:`written` are left as they are in ``out`` (callers zero-pad).
        Returns False when any of the span was overwritten before or during the copy.
        """
        end = min(start + len(out), self.written)
        if start < self.oldest():
            return False
        n = end - start
        if n > 0:
            pos = start % self.capacity
            first = min(n, self.capacity - pos)
            out[:first] = self._data[pos : pos + first]
            if first < n:
                out[first:n] = self._data[: n - first]
        # The producer may have lapped us while copying, or be writing over the span right
        # now (it advances `written` only after copying): then the copy is torn.
        return start >= max(self.written, self._writing_end) - self.capacity
