"""Windows of audio to scored windows: the model, BirdNET's scoring and the species filter.

This is the one place where audio becomes confidences, shared by ``analyze`` and the daemon.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from birdnet_edge.audio.format import WINDOW_SAMPLES
from birdnet_edge.audio.ring import RingBuffer
from birdnet_edge.audio.windows import Windower, WindowSpan, make_batch
from birdnet_edge.detect.filters import BoolArray, FloatArray, window_hits
from birdnet_edge.detect.sounds import SoundRules
from birdnet_edge.model.labels import Label
from birdnet_edge.model.runtime import TFLiteModel
from birdnet_edge.model.scoring import confidences

if TYPE_CHECKING:
    from birdnet_edge.detect.refine import Refinement


@dataclass(frozen=True)
class Thresholds:
    """The settings that turn logits into detections (reloadable as one value)."""

    min_confidence: float = 0.25
    sensitivity: float = 1.0
    allowed: BoolArray | None = field(default=None, compare=False)
    #: Report each window's ``top_n`` best allowed labels whatever their score (analyze only).
    top_n: int | None = None
    #: Per-label thresholds where some species have their own (``filters.thresholds``).
    per_label: FloatArray | None = field(default=None, compare=False)
    #: The species filter's parts, for explaining a label left out: (why, labels it allows).
    left_out: tuple[tuple[str, frozenset[int]], ...] = field(default=(), compare=False)
    #: Privacy and noise rules, applied window by window by the listener's gate.
    sounds: SoundRules | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ScoredWindow:
    """One window's place in the stream, its confidences and the labels detected in it."""

    span: WindowSpan
    confidences: FloatArray
    hits: list[tuple[int, float]]


class WindowClassifier(Protocol):
    """What the detector needs of a model (:class:`~birdnet_edge.model.birdnet.Classifier`, or
    a stand-in that wraps one): logits for a batch of windows, and the model file it runs."""

    @property
    def model(self) -> TFLiteModel: ...

    def logits(self, windows: FloatArray) -> FloatArray: ...


class Detector:
    """Runs the classifier on batches of windows and applies scoring and filters."""

    def __init__(
        self, classifier: WindowClassifier, labels: Sequence[Label], thresholds: Thresholds
    ) -> None:
        self.classifier = classifier
        self.labels = labels
        self.thresholds = thresholds

    def score(self, windows: FloatArray, spans: Sequence[WindowSpan]) -> list[ScoredWindow]:
        """Score ``windows[:len(spans)]``; each result owns its confidence row."""
        n = len(spans)
        if n == 0:
            return []
        t = self.thresholds  # read once: a reload swaps the whole value
        conf = confidences(self.classifier.logits(windows[:n]), t.sensitivity)
        return [
            ScoredWindow(
                span,
                conf[i],
                window_hits(conf[i], t.min_confidence, t.allowed, t.top_n, t.per_label),
            )
            for i, span in enumerate(spans)
        ]


def scan(
    chunks: Iterable[FloatArray],
    detector: Detector,
    overlap: float = 0.0,
    batch_size: int = 8,
    refinement: Refinement | None = None,
) -> Iterator[ScoredWindow]:
    """Score every window of a finite stream of 48 kHz mono chunks, in order.

    With ``refinement`` the windows between grid windows are scored where a species comes near
    the threshold, and the windows to report come out (see :mod:`birdnet_edge.detect.refine`).
    """
    from birdnet_edge.detect.refine import Refiner  # refine builds on this module

    # Room for a batch, the window being written, and the hop that refinement reads back.
    ring = RingBuffer(WINDOW_SAMPLES * (batch_size + 3))
    windower = Windower(ring, overlap)
    batch = make_batch(batch_size)
    refiner = None if refinement is None else Refiner(detector, windower, batch, refinement)

    def score(spans: list[WindowSpan]) -> list[ScoredWindow]:
        scored = detector.score(batch, spans)
        return scored if refiner is None else refiner.apply(scored)

    for chunk in chunks:
        for start in range(0, len(chunk), WINDOW_SAMPLES):
            ring.write(chunk[start : start + WINDOW_SAMPLES])
            while windower.pending() >= batch_size:
                yield from score(windower.take(batch))
    while spans := windower.take(batch, final=True):
        yield from score(spans)
    assert windower.dropped_samples == 0, "scan() must not drop audio"
    assert refiner is None or refiner.missed == 0, "scan() must not lose refinement audio"
