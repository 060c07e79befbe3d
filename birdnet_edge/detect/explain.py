"""Why a window's labels were reported or not: one line a window (``run --explain``, ``-v``)."""

from __future__ import annotations

import numpy as np

from birdnet_edge.detect.detector import Thresholds
from birdnet_edge.detect.filters import FloatArray
from birdnet_edge.model.labels import Label

FLOOR = 0.1  # labels scoring below this (and below the threshold) are not worth a word
MOST = 6  # labels named a window at the most


def explain(
    confidences: FloatArray,
    thresholds: Thresholds,
    labels: list[Label] | tuple[Label, ...],
    reported: list[tuple[int, float]],
    dropped: list[tuple[int, str]],
) -> str:
    """The labels of one window worth a word, best first, each with what became of it:
    reported, below its threshold, left out by a part of the species filter, or dropped by a
    window rule (privacy, noise, daylight) with ``dropped``'s reason."""
    t = thresholds
    floor = np.float32(min(FLOOR, t.min_confidence))
    candidates = np.flatnonzero(confidences >= floor)
    order = candidates[np.argsort(-confidences[candidates], kind="stable")][:MOST]
    kept = {index for index, _ in reported}
    why_dropped = dict(dropped)
    words = []
    for index in (int(i) for i in order):
        threshold = float(t.per_label[index]) if t.per_label is not None else t.min_confidence
        if index in kept:
            fate = "reported"
        elif index in why_dropped:
            fate = f"not reported: {why_dropped[index]}"
        elif confidences[index] < np.float32(threshold):
            fate = f"below {threshold:.2f}"
        else:
            fate = next(
                (f"left out: {why}" for why, allows in t.left_out if index not in allows),
                "left out",
            )
        words.append(f"{labels[index].common} {confidences[index]:.2f} {fate}")
    return "; ".join(words) if words else f"nothing at {floor:.2f} or more"
