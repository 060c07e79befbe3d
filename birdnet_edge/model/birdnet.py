"""The BirdNET V2.4 classifier and range (meta) model on top of a TFLite runtime."""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np

from birdnet_edge.errors import ModelError
from birdnet_edge.model.files import NUM_CLASSES, WINDOW_SAMPLES, ModelPaths
from birdnet_edge.model.labels import Label, read_labels, translate
from birdnet_edge.model.runtime import FloatArray, TFLiteModel


def load_labels(paths: ModelPaths, locale: str | None = None) -> list[Label]:
    """The model's labels, with common names in ``locale`` when given."""
    labels = read_labels(paths.labels)
    if len(labels) != NUM_CLASSES:
        raise ModelError(
            f"label file {paths.labels} has {len(labels)} labels, expected {NUM_CLASSES}: "
            "reinstall with `birdnet-edge model install`"
        )
    if locale and locale != "en":
        path = paths.locale(locale)
        if not path.is_file():
            raise ModelError(
                f"no {locale!r} labels installed: "
                f"run `birdnet-edge model install --locale {locale}`"
            )
        labels = translate(labels, read_labels(path))
    return labels


class Classifier:
    """The audio model: 3 s windows of 48 kHz audio in, 6522 logits out."""

    def __init__(self, path: Path, runtime: str = "auto", threads: int = 0) -> None:
        self.model = TFLiteModel(path, runtime, threads)
        self.model.check_shape(WINDOW_SAMPLES, NUM_CLASSES)

    @property
    def runtime(self) -> str:
        return self.model.runtime

    def logits(self, windows: FloatArray) -> FloatArray:
        """Logits for a batch of windows ([n, 144000] float32 -> [n, 6522] float32)."""
        return self.model.predict(windows)


class RangeModel:
    """The meta model: which species occur at a place in a week of the year."""

    def __init__(self, path: Path, runtime: str = "auto", threads: int = 1) -> None:
        self.model = TFLiteModel(path, runtime, threads)
        self.model.check_shape(3, NUM_CLASSES)

    def occurrence(self, lat: float, lon: float, week: int) -> FloatArray:
        """Occurrence score per label for ``[lat, lon, week]`` (week 1..48 or -1 = all year)."""
        x = np.array([[lat, lon, week]], dtype=np.float32)
        return typing.cast(FloatArray, self.model.predict(x)[0])

    def species(self, lat: float, lon: float, week: int, threshold: float = 0.03) -> frozenset[int]:
        """Label indices whose occurrence is at least ``threshold`` (BirdNET-Analyzer's rule)."""
        scores = self.occurrence(lat, lon, week)
        return frozenset(int(i) for i in np.flatnonzero(scores >= np.float32(threshold)))
