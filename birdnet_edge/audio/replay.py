"""A recording replayed through the live path, paced at real time or as fast as possible."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from birdnet_edge.audio.clock import SampleClock
from birdnet_edge.audio.decode import iter_audio
from birdnet_edge.audio.format import SAMPLE_RATE, WINDOW_SAMPLES
from birdnet_edge.audio.ring import FloatArray, RingBuffer
from birdnet_edge.audio.source import SourceStats
from birdnet_edge.errors import AudioError

REPLAY_BLOCK = SAMPLE_RATE // 10  # samples per write of a real-time replay, like a sound card


class FileSource:
    """Replays a recording through the live path, paced at real time or as fast as possible.

    ``fast`` replay never drops audio: the reader thread waits while the ring is full of
    samples the pipeline still needs. Sample 0 is stamped with ``start_time``.
    """

    def __init__(
        self,
        path: Path,
        ring: RingBuffer,
        *,
        fast: bool = False,
        start_time: float | None = None,
        repeat: int = 1,
    ) -> None:
        """``repeat`` plays the file that many times back to back (soak tests)."""
        self.path = path
        self.repeat = repeat
        self.ring = ring
        self.fast = fast
        self.block_seconds: float | None = None if fast else REPLAY_BLOCK / SAMPLE_RATE
        self.last_block = 0.0
        self.clock = SampleClock()
        self.stats = SourceStats()
        self.start_time = time.time() if start_time is None else start_time
        self.error: AudioError | None = None
        self._done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="replay", daemon=True)
        self._chunks: Iterator[FloatArray] = iter_audio(path, block_seconds=1.0)
        # Open the file now, so a missing or unreadable file fails at start, not later.
        self._first: FloatArray | None = next(self._chunks, None)

    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def start(self) -> None:
        self.clock.anchor(0, self.start_time)
        self._thread.start()

    def _run(self) -> None:
        t0 = time.monotonic()
        # Real time comes in a sound card's 0.1 s blocks; full speed in the decoder's 1 s, as
        # long as a window and a block fit in the ring.
        block = min(SAMPLE_RATE, self.ring.capacity - WINDOW_SAMPLES) if self.fast else REPLAY_BLOCK
        try:
            first = [] if self._first is None else [self._first]
            replays = (iter_audio(self.path, block_seconds=1.0) for _ in range(self.repeat - 1))
            chunks = itertools.chain(first, self._chunks, itertools.chain.from_iterable(replays))
            for chunk in chunks:
                for i in range(0, len(chunk), block):
                    piece = chunk[i : i + block]
                    if not self._wait_for_room(len(piece)):
                        return
                    if not self.fast:
                        due = t0 + (self.ring.written + len(piece)) / SAMPLE_RATE
                        if self._stop.wait(max(0.0, due - time.monotonic())):
                            return
                    self.ring.write(piece)
                    self.last_block = time.monotonic()
        except AudioError as exc:
            decoded = self.ring.written > 0
            self.error = AudioError(f"{exc}; the audio before it was analysed") if decoded else exc
        finally:
            self._done.set()

    def _wait_for_room(self, samples: int) -> bool:
        """Wait until ``samples`` fit in the ring; False when stopped meanwhile.

        Backpressure without polling: the pipeline sets ``room_freed`` when it frees room.
        """
        ring = self.ring
        while ring.room() < samples:
            ring.room_freed.clear()
            if ring.room() >= samples:  # freed between the check and the clear
                break
            if self._stop.is_set():
                return False
            ring.room_freed.wait(1.0)
        return not self._stop.is_set()

    def poll(self) -> bool:
        # A decode error ends the replay like the file's end: the audio decoded before it is
        # still scored, and the daemon reports the error once it has been (see ``error``).
        return self._done.is_set()

    def gap(self) -> int | None:
        return None

    def stop(self) -> None:
        self._stop.set()
        self.ring.room_freed.set()  # wake a reader waiting for room
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
