"""Refinement: the windows between grid windows, scored where a species nears the threshold."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from birdnet_edge.audio.decode import iter_audio
from birdnet_edge.audio.format import SAMPLE_RATE
from birdnet_edge.audio.replay import FileSource
from birdnet_edge.audio.ring import FloatArray, RingBuffer
from birdnet_edge.audio.windows import WindowSpan
from birdnet_edge.config import AnalysisConfig, Config, ModelConfig
from birdnet_edge.detect.detector import Detector, ScoredWindow, scan
from birdnet_edge.detect.events import EventTracker
from birdnet_edge.detect.listener import Listener
from birdnet_edge.detect.refine import Refinement, best_per_label, extra_starts
from birdnet_edge.detect.stack import load_detector
from birdnet_edge.log.record import DetectionContext
from tests.conftest import run_cli
from tests.listsink import ListSink

SR = SAMPLE_RATE


def _window(start: int, hits: list[tuple[int, float]]) -> ScoredWindow:
    return ScoredWindow(WindowSpan(start, 3 * SR), np.zeros(3, dtype=np.float32), hits)


def test_extra_starts_lie_between_the_grid_windows_and_after_the_origin() -> None:
    assert extra_starts(0, 72_000, 4_800, 0) == list(range(4_800, 72_000, 4_800))
    assert len(extra_starts(0, 72_000, 4_800, 0)) == 14  # with the grid: one every 0.1 s
    # Nothing before the start of the audio (or a restart after a gap).
    assert extra_starts(-72_000, 0, 4_800, 0) == []
    assert extra_starts(0, 72_000, 4_800, 50_000) == [52_800, 57_600, 62_400, 67_200]


def test_each_label_is_reported_once_on_its_best_window() -> None:
    group = [
        _window(0, [(1, 0.8)]),
        _window(100, [(1, 0.9), (2, 0.75)]),
        _window(200, [(2, 0.75)]),  # a tie: the earlier window keeps it
        _window(300, [(1, 0.71)]),  # the grid window: always kept, without the lost hits
    ]
    kept = best_per_label(group)
    assert [(w.span.start, w.hits) for w in kept] == [(100, [(1, 0.9), (2, 0.75)]), (300, [])]


class _RecordingDetector(Detector):
    """The real detector, remembering every window it scored."""

    def __init__(self, inner: Detector) -> None:
        super().__init__(inner.classifier, inner.labels, inner.thresholds)
        self.seen: dict[int, FloatArray] = {}

    def score(self, windows: FloatArray, spans: Sequence[WindowSpan]) -> list[ScoredWindow]:
        scored = super().score(windows, spans)
        for w in scored:
            self.seen[w.span.start] = w.confidences
        return scored


@pytest.fixture(scope="module")
def detector(model_dir: Path) -> Detector:
    cfg = Config(model=ModelConfig(dir=model_dir), analysis=AnalysisConfig(min_confidence=0.7))
    return load_detector(cfg)


@pytest.fixture(scope="module")
def soundscape_audio(soundscape: Path) -> FloatArray:
    return np.concatenate(list(iter_audio(soundscape)))


@pytest.mark.model
def test_refinement_finds_a_call_that_straddles_the_grid(
    detector: Detector, soundscape_audio: FloatArray
) -> None:
    # A House Finch song from the soundscape (best window 71.8-74.8 s, 0.9531) placed into quiet
    # noise so that it starts 0.8 s after a grid window (overlap 1.5: a window every 1.5 s).
    call = soundscape_audio[round(71.8 * SR) : round(74.8 * SR)]
    audio = (np.random.default_rng(1).standard_normal(12 * SR) * 0.002).astype(np.float32)
    audio[round(3.8 * SR) : round(3.8 * SR) + len(call)] = call
    finch = next(i for i, label in enumerate(detector.labels) if label.common == "House Finch")

    grid = list(scan([audio], detector, 1.5))
    assert [w.span.start for w in grid] == [round(s * SR) for s in (0, 1.5, 3, 4.5, 6, 7.5, 9)]
    assert all(w.hits == [] for w in grid), "the grid alone must miss the call"
    assert max(float(w.confidences[finch]) for w in grid) >= 0.2  # a candidate, not a hit

    refined = [w for w in scan([audio], detector, 1.5, refinement=Refinement()) if w.hits]
    assert len(refined) == 1
    (best,) = refined
    assert best.span.start == round(3.8 * SR)  # the call's own window, found on the 0.1 s steps
    assert best.hits[0][0] == finch
    assert best.hits[0][1] == pytest.approx(0.9531, abs=2e-3)


@pytest.mark.model
def test_refinement_reports_only_windows_it_scored(
    detector: Detector, soundscape_audio: FloatArray
) -> None:
    recording = _RecordingDetector(detector)
    reported = list(scan([soundscape_audio], recording, 1.5, refinement=Refinement()))
    grid_only = list(scan([soundscape_audio], detector, 1.5))
    # More windows were scored than the grid's, every reported one among them, with the
    # confidences it was scored with, and each hit at or above the threshold.
    assert len(recording.seen) > len(grid_only)
    assert sum(bool(w.hits) for w in reported) > sum(bool(w.hits) for w in grid_only)
    for w in reported:
        assert w.span.start in recording.seen
        np.testing.assert_array_equal(w.confidences, recording.seen[w.span.start])
        for label, confidence in w.hits:
            assert confidence == pytest.approx(float(recording.seen[w.span.start][label]))
            assert confidence >= 0.7
    # Every grid window is still reported, in stream order.
    starts = [w.span.start for w in reported]
    assert starts == sorted(starts)
    assert {w.span.start for w in grid_only} <= set(starts)


@pytest.mark.model
def test_analyze_refine_prints_the_refined_windows(soundscape: Path, model_dir: Path) -> None:
    common = ["analyze", str(soundscape), "--model-dir", str(model_dir), "--min-conf", "0.7"]
    grid = run_cli([*common, "--overlap", "1.5"])
    refined = run_cli([*common, "--overlap", "1.5", "--refine"])
    assert grid.returncode == 0, grid.stderr
    assert refined.returncode == 0, refined.stderr
    grid_rows = grid.stdout.splitlines()[1:]
    refined_rows = refined.stdout.splitlines()[1:]
    assert len(refined_rows) > len(grid_rows)
    starts = {float(r.split(",")[0]) for r in refined_rows}
    assert any(round(s / 1.5) * 1.5 != s for s in starts)  # windows off the grid
    # Without a config and --overlap, analyze keeps BirdNET-Analyzer's 3 s grid.
    plain = run_cli(common)
    assert plain.returncode == 0, plain.stderr
    assert all(float(r.split(",")[0]) % 3 == 0 for r in plain.stdout.splitlines()[1:])


@pytest.mark.model
def test_a_live_source_the_model_lags_behind_goes_unrefined(
    soundscape: Path, detector: Detector
) -> None:
    def listen(block_seconds: float | None) -> Listener:
        source = FileSource(soundscape, RingBuffer(SR * 60), fast=True)
        source.block_seconds = block_seconds  # None: a replay that waits for the model
        context = DetectionContext("test", None, None, "m", "FP32", 1.0, 1.5, 0.7)
        listener = Listener(
            source,
            detector,
            EventTracker(context),
            ListSink(),
            overlap=1.5,
            refinement=Refinement(),
        )
        listener.run(threading.Event())
        return listener

    waiting = listen(None)
    assert waiting.stats.unrefined == 0
    assert waiting.refiner is not None
    assert waiting.refiner.scored > 0
    # The same audio arriving faster than the model scores it, as from a live source on a
    # board too slow for refinement: the grid goes on, the extra windows are left out.
    lagging = listen(0.1)
    assert lagging.stats.unrefined > 0
    assert lagging.stats.windows < waiting.stats.windows
    assert lagging.windower.dropped_samples == 0
