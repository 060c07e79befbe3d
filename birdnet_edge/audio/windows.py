"""Cut a sample stream held in a :class:`RingBuffer` into BirdNET's 3 s windows.

Windows start at 0, hop, 2·hop, … samples (hop = ``3 - overlap`` seconds). While the stream
runs only complete windows are cut; at its end, :meth:`Windower.take` with ``final=True`` adds
the windows up to and including the first one that reaches the end, zero-padded, and drops that
last one if it holds less than 1 s of audio (BirdNET-Analyzer 2.4's rule). The same code serves
``analyze`` and the live daemon, so both see exactly the same windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from birdnet_edge.audio.format import SAMPLE_RATE, WINDOW_SAMPLES
from birdnet_edge.audio.ring import FloatArray, RingBuffer

MIN_TAIL_SAMPLES = SAMPLE_RATE  # a last window with less than 1 s of audio is dropped


def hop_samples(overlap: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Samples between window starts for ``overlap`` seconds of overlap (0 <= overlap < 3)."""
    if not 0.0 <= overlap < 3.0:
        raise ValueError(f"overlap must be at least 0 and less than 3 s, got {overlap}")
    return round((3.0 - overlap) * sample_rate)


@dataclass(frozen=True)
class WindowSpan:
    """Where one window lies in the stream, in samples."""

    start: int
    #: Samples of real audio in it (less than 144000 only for a zero-padded last window).
    audio: int


class Windower:
    """Tracks the next window to cut and copies ready windows out of the ring."""

    def __init__(self, ring: RingBuffer, overlap: float = 0.0, start: int = 0) -> None:
        self.ring = ring
        self.hop = hop_samples(overlap)
        self.next_start = start
        self.dropped_samples = 0
        #: Where the audio began, or restarted after a gap: no window starts before it.
        self.origin = start
        #: Hops before the next window whose audio stays in the ring (refinement reads them).
        self.keep_hops = 0
        #: Samples before that which stay too (a clip's audio before its event's first window).
        self.keep_before = 0
        #: The oldest sample another reader still needs (the clips being cut), if any.
        self.hold: int | None = None
        self._last_end = start  # end of the last window cut

    def set_overlap(self, overlap: float) -> None:
        """Change the hop from the next window on (a config reload)."""
        self.hop = hop_samples(overlap)

    def pending(self) -> int:
        """Complete windows ready to be cut now."""
        available = self.ring.written - WINDOW_SAMPLES - self.next_start
        return 0 if available < 0 else available // self.hop + 1

    def samples_until_ready(self) -> int:
        """Samples still to be written before the next window is complete (0 once it is)."""
        return max(0, self.next_start + WINDOW_SAMPLES - self.ring.written)

    def take(
        self, out: FloatArray, *, final: bool = False, until: int | None = None
    ) -> list[WindowSpan]:
        """Copy up to ``len(out)`` ready windows into the rows of ``out``.

        With ``final=True`` the stream has ended, and the padded tail windows are cut too.
        ``until`` cuts only windows that end by that sample (the audio before a gap).
        Windows whose audio was already overwritten in the ring are skipped and counted in
        :attr:`dropped_samples`.
        """
        spans: list[WindowSpan] = []
        end = self.ring.written if until is None else min(until, self.ring.written)
        while len(spans) < len(out):
            if final and self._last_end >= end:
                break  # the last window cut already reached the end of the stream
            start = self.next_start
            audio = min(WINDOW_SAMPLES, end - start)
            if audio < WINDOW_SAMPLES and not (final and audio >= MIN_TAIL_SAMPLES):
                break
            if not self.cut(start, audio, out[len(spans)]):
                self._skip_overwritten()
                continue
            spans.append(WindowSpan(start, audio))
            self.next_start = start + self.hop
            self._free()
            self._last_end = start + WINDOW_SAMPLES
        return spans

    def cut(self, start: int, audio: int, row: FloatArray) -> bool:
        """Copy the window at ``start`` with ``audio`` samples of audio into ``row``, zero-padded;
        False when its audio has already left the ring."""
        if audio < WINDOW_SAMPLES:
            row[audio:] = 0.0
        return self.ring.read(start, row[:audio])

    def _free(self) -> None:
        needed = self.next_start - self.keep_hops * self.hop - self.keep_before
        if self.hold is not None:
            needed = min(needed, self.hold)
        self.ring.free_until(max(self.origin, needed))

    def _skip_overwritten(self) -> None:
        oldest = self.ring.oldest()
        skipped = -(-(oldest - self.next_start) // self.hop)  # ceil
        self.dropped_samples += skipped * self.hop
        self.next_start += skipped * self.hop
        self._free()

    def restart_at(self, sample: int) -> None:
        """Continue with a window starting at ``sample`` (after a gap in the audio)."""
        self.next_start = self.origin = sample
        self._free()
        self._last_end = sample


def make_batch(size: int) -> FloatArray:
    """A zeroed ``[size, 144000]`` float32 array to cut windows into."""
    return np.zeros((size, WINDOW_SAMPLES), dtype=np.float32)
