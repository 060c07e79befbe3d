"""Refinement: where a species comes near the threshold, score the windows between grid windows.

BirdNET scores 3 s windows, and a call's score swings with where its window starts: moving a
window by 0.1 s can take a species from 0.77 to 0.46 and back. A regular grid therefore finds a
different share of the birds depending on where it happens to fall. Refinement keeps the grid
(a window every ``3 - overlap`` s) and, when a grid window has an allowed label at or above
``candidate`` but below the threshold, also scores the windows that start every ``step``
samples between the previous grid window and this one. Each label is then reported on the one
window of that stretch where it scored best, so an event carries that window's start, end and
confidence.

Every window scored is an ordinary BirdNET window (cut from the same ring, scored exactly as
``analyze`` does); only its start differs. The extra windows lie before the grid window that
asked for them, so their audio is already there: latency grows only by the time they take to
score, and quiet audio costs what the grid costs. The same code runs in the daemon and in
``analyze --refine``, so both report the same windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from birdnet_edge.audio.format import SAMPLE_RATE, WINDOW_SAMPLES
from birdnet_edge.audio.ring import FloatArray
from birdnet_edge.audio.windows import Windower, WindowSpan
from birdnet_edge.config import RefineConfig
from birdnet_edge.detect.detector import Detector, ScoredWindow


@dataclass(frozen=True)
class Refinement:
    """When and how finely to refine."""

    #: A grid window with an allowed label at or above this (and below the threshold) is refined.
    candidate: float = 0.2
    #: Seconds between the starts of the extra windows (the dense analysis' resolution).
    step: float = 0.1

    @property
    def step_samples(self) -> int:
        return max(1, round(self.step * SAMPLE_RATE))


def refinement_of(config: RefineConfig) -> Refinement | None:
    """The refinement ``analysis.refine`` asks for; None when it is off."""
    return Refinement(config.candidate, config.step) if config.enabled else None


def extra_starts(previous: int, start: int, step: int, first: int) -> list[int]:
    """Starts of the extra windows between grid windows ``previous`` and ``start``.

    Every ``step`` samples after ``previous``, strictly before ``start``, and none before
    ``first`` (where the audio began, or restarted after a gap).
    """
    return [s for s in range(previous + step, start, step) if s >= first]


def is_candidate(window: ScoredWindow, detector: Detector, candidate: float) -> bool:
    """Whether an allowed label scores at least ``candidate`` but below the threshold."""
    t = detector.thresholds
    if t.per_label is None and candidate >= t.min_confidence:
        return False
    conf = window.confidences
    threshold = t.per_label if t.per_label is not None else np.float32(t.min_confidence)
    near = (conf >= np.float32(candidate)) & (conf < threshold)
    if t.allowed is not None:
        near &= t.allowed
    return bool(near.any())


def best_per_label(group: Sequence[ScoredWindow]) -> list[ScoredWindow]:
    """Each label's hit kept only on the window of ``group`` where it scores best.

    ``group`` is in stream order and ends with its grid window, which is always kept (it moves
    the event tracker's clock on); the other windows are kept only where they carry a hit.
    On equal scores the earliest window wins.
    """
    best: dict[int, tuple[float, int]] = {}
    for position, window in enumerate(group):
        for label, confidence in window.hits:
            if label not in best or confidence > best[label][0]:
                best[label] = (confidence, position)
    kept: list[ScoredWindow] = []
    last = len(group) - 1
    for position, window in enumerate(group):
        hits = [(label, c) for label, c in window.hits if best[label][1] == position]
        if hits or position == last:
            kept.append(ScoredWindow(window.span, window.confidences, hits))
    return kept


class Refiner:
    """Scores the extra windows a grid window asks for, from the windower's ring."""

    def __init__(
        self, detector: Detector, windower: Windower, batch: FloatArray, refinement: Refinement
    ) -> None:
        self.detector = detector
        self.windower = windower
        self.batch = batch
        self.refinement = refinement
        #: Extra windows scored, and those whose audio had already left the ring.
        self.scored = 0
        self.missed = 0
        # The extra windows lie up to a hop before the first grid window of a batch: keep that
        # audio from a producer that waits for room (a file replayed at full speed).
        windower.keep_hops = len(batch) + 1

    def apply(self, grid: Sequence[ScoredWindow]) -> list[ScoredWindow]:
        """The windows to report for ``grid`` (just scored, in stream order)."""
        reported: list[ScoredWindow] = []
        for window in grid:
            if not is_candidate(window, self.detector, self.refinement.candidate):
                reported.append(window)
                continue
            group = [*self._score_extras(window.span), window]
            reported.extend(best_per_label(group))
        return reported

    def _score_extras(self, span: WindowSpan) -> list[ScoredWindow]:
        windower = self.windower
        stream_end = span.start + span.audio  # a padded last window ends the stream
        starts = extra_starts(
            span.start - windower.hop, span.start, self.refinement.step_samples, windower.origin
        )
        scored: list[ScoredWindow] = []
        spans: list[WindowSpan] = []
        for start in starts:
            audio = min(WINDOW_SAMPLES, stream_end - start)
            if not windower.cut(start, audio, self.batch[len(spans)]):
                self.missed += 1
                continue
            spans.append(WindowSpan(start, audio))
            if len(spans) == len(self.batch):
                scored.extend(self.detector.score(self.batch, spans))
                spans = []
        scored.extend(self.detector.score(self.batch, spans))
        self.scored += len(scored)
        return scored
