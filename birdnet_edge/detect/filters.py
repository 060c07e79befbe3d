"""Which labels may become detections: species lists, the range model, exclusions, thresholds.

Pure functions over label indices and numpy arrays; the model calls live elsewhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from birdnet_edge.model.labels import Label, species_indices

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float32]


def week_of_year(day: dt.date) -> int:
    """BirdNET's week (1..48): four weeks a month, days 1-7, 8-14, 15-21 and 22-end."""
    return (day.month - 1) * 4 + min(4, (day.day - 1) // 7 + 1)


def allowed_mask(
    num_labels: int,
    *,
    species: Iterable[frozenset[int]] = (),
    exclude: frozenset[int] = frozenset(),
) -> BoolArray | None:
    """A boolean mask of the labels allowed: in every given species set and not excluded.

    ``None`` means every label is allowed (no list, no range filter, nothing excluded), which
    lets the hot path skip the mask altogether.
    """
    mask: BoolArray | None = None
    for chosen in species:
        allowed = np.zeros(num_labels, dtype=bool)
        allowed[list(chosen)] = True
        mask = allowed if mask is None else mask & allowed
    if exclude:
        if mask is None:
            mask = np.ones(num_labels, dtype=bool)
        mask[list(exclude)] = False
    return mask


def excluded(labels: Sequence[Label], names: Iterable[str]) -> frozenset[int]:
    """Label indices of the names to exclude (scientific, common or full label)."""
    return species_indices(labels, names, source="filters.exclude")


def window_hits(
    confidences: FloatArray,
    min_confidence: float,
    allowed: BoolArray | None,
    top_n: int | None = None,
    per_label: FloatArray | None = None,
) -> list[tuple[int, float]]:
    """``(label, confidence)`` of one window's labels at or above the threshold (``per_label``:
    each label's own), best first.

    With ``top_n`` (BirdNET-Analyzer's ``--top_n``), the ``top_n`` best allowed labels instead,
    whatever their score.
    """
    if top_n:
        above = np.ones(len(confidences), dtype=bool)
    elif per_label is not None:
        above = confidences >= per_label
    else:
        above = confidences >= np.float32(min_confidence)
    if allowed is not None:
        above &= allowed
    idx = np.flatnonzero(above)
    if len(idx) == 0:
        return []
    order = idx[np.argsort(-confidences[idx], kind="stable")]
    if top_n:
        order = order[:top_n]
    return [(int(i), float(confidences[i])) for i in order]
