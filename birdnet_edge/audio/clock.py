"""The sample clock: the wall-clock time of every sample number a source delivered."""

from __future__ import annotations

import bisect

from birdnet_edge.audio.format import SAMPLE_RATE


class SampleClock:
    """Maps sample numbers to wall-clock time through anchors set when audio (re)starts."""

    def __init__(self) -> None:
        self._samples: list[int] = []
        self._times: list[float] = []

    def anchor(self, sample: int, wall_time: float) -> None:
        """Sample ``sample`` was captured at ``wall_time`` (seconds since the epoch)."""
        if self._samples and sample <= self._samples[-1]:
            self._samples[-1], self._times[-1] = sample, wall_time
            return
        self._samples.append(sample)
        self._times.append(wall_time)
        if len(self._samples) > 64:  # old anchors are never asked for again
            del self._samples[:32], self._times[:32]

    def time_of(self, sample: int) -> float:
        """Wall-clock time of ``sample``, from the latest anchor at or before it."""
        i = max(0, bisect.bisect_right(self._samples, sample) - 1)
        return self._times[i] + (sample - self._samples[i]) / SAMPLE_RATE
