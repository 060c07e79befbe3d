"""BirdNET-Analyzer's flat sigmoid, species filters and per-window hits."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from birdnet_edge.detect.filters import allowed_mask, week_of_year, window_hits
from birdnet_edge.model.scoring import confidences


@pytest.mark.parametrize("sensitivity", [0.5, 0.75, 1.0, 1.25, 1.5])
def test_confidences_follow_the_formula(sensitivity: float) -> None:
    logits = np.linspace(-30, 30, 6522, dtype=np.float32).reshape(1, -1)
    got = confidences(logits, sensitivity)
    x = np.clip(logits.astype(np.float64) + 10 * (sensitivity - 1), -20, 20)
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-x)), rtol=1e-6, atol=1e-7)
    assert got.dtype == np.float32


def test_sensitivity_is_clamped() -> None:
    logits = np.zeros((1, 4), dtype=np.float32)
    np.testing.assert_array_equal(confidences(logits, 3.0), confidences(logits, 1.5))
    np.testing.assert_array_equal(confidences(logits, 0.0), confidences(logits, 0.5))


def test_confidences_can_write_into_a_preallocated_array() -> None:
    logits = np.ones((2, 3), dtype=np.float32)
    out = np.empty_like(logits)
    result = confidences(logits, 1.0, out=out)
    assert result is out
    assert logits[0, 0] == 1.0  # input untouched


def test_window_hits_are_sorted_and_filtered() -> None:
    conf = np.array([0.1, 0.9, 0.3, 0.5], dtype=np.float32)
    assert [i for i, _ in window_hits(conf, 0.25, None)] == [1, 3, 2]
    mask = allowed_mask(4, species=[frozenset({2, 3})])
    assert [i for i, _ in window_hits(conf, 0.25, mask)] == [3, 2]
    assert window_hits(conf, 0.95, None) == []


def test_allowed_mask_intersects_and_excludes() -> None:
    assert allowed_mask(5) is None
    mask = allowed_mask(
        5, species=[frozenset({0, 1, 2}), frozenset({1, 2, 3})], exclude=frozenset({2})
    )
    assert mask is not None
    assert mask.tolist() == [False, True, False, False, False]


@pytest.mark.parametrize(
    ("day", "week"),
    [
        (dt.date(2026, 1, 1), 1),
        (dt.date(2026, 1, 22), 4),
        (dt.date(2026, 1, 31), 4),
        (dt.date(2026, 2, 8), 6),
        (dt.date(2026, 12, 31), 48),
    ],
)
def test_week_of_year(day: dt.date, week: int) -> None:
    assert week_of_year(day) == week


def test_top_n_takes_the_best_allowed_labels_whatever_their_score() -> None:
    from birdnet_edge.detect.filters import window_hits

    conf = np.array([0.01, 0.5, 0.02, 0.9, 0.03], dtype=np.float32)
    allowed = np.array([True, True, True, False, True])
    assert window_hits(conf, 0.7, allowed) == []
    hits = window_hits(conf, 0.7, allowed, top_n=3)
    assert [i for i, _ in hits] == [1, 4, 2]  # best first, label 3 not allowed
    assert hits[0][1] == pytest.approx(0.5)
    assert [i for i, _ in window_hits(conf, 0.7, None, top_n=2)] == [3, 1]
