"""The BirdNET V2.4 classifier and range (meta) model on top of a TFLite runtime."""

from __future__ import annotations

import logging
import time
import typing
from pathlib import Path

import numpy as np
import numpy.typing as npt

from birdnet_edge.audio.format import WINDOW_SAMPLES
from birdnet_edge.errors import ModelError
from birdnet_edge.model.files import NUM_CLASSES, ModelPaths, missing_model
from birdnet_edge.model.labels import Label, read_labels, translate
from birdnet_edge.model.runtime import FloatArray, TFLiteModel

_LOGGER = logging.getLogger(__name__)


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


#: Samples in a row of one value that make a window one the optimised variant cannot score
#: exactly. A whole STFT frame (1024 samples) of one value is where the original's FFT noise
#: shows most, but next to a pure tone a run of 512 already comes close to the bound; recorded
#: audio never holds 256 equal samples in a row unless it is digital silence or padding.
CONSTANT_RUN = 256
_BLOCK = 125  # divides a window; a run of 2 * 125 - 1 samples or more covers a whole block


class Classifier:
    """The audio model: 3 s windows of 48 kHz audio in, 6522 logits out.

    With ``original`` (the FP32 model an optimised variant was derived from), windows holding a
    stretch of one value (:data:`CONSTANT_RUN` samples or more) next to other audio (the
    zero-padded end of a file, a microphone that sent digital silence for a moment) are scored
    by the original. The model normalises each window to [-1, 1], which maps such a stretch to
    a constant; the original's float32 FFT leaves rounding noise in the bands where that
    constant has no energy, the spectrogram's small power exponent magnifies it, and the
    variant's exact arithmetic cannot reproduce the noise (|Δp| up to 2e-3 there, twenty times
    the bound it meets everywhere else). The original is loaded the first time such a window
    comes, so a live station that never sees one never pays its memory, and released when
    none has come for :attr:`KEEP_ORIGINAL` seconds.
    """

    KEEP_ORIGINAL = 300.0

    def __init__(
        self,
        path: Path,
        runtime: str = "auto",
        threads: int = 0,
        *,
        original: Path | TFLiteModel | None = None,
    ) -> None:
        self.model = TFLiteModel(path, runtime, threads)
        self.model.check_shape(WINDOW_SAMPLES, NUM_CLASSES)
        self._original = original if isinstance(original, TFLiteModel) else None
        self._original_path = original.path if isinstance(original, TFLiteModel) else original
        self._given = self._original  # a model handed in stays; one loaded here is released
        self._original_until = 0.0
        self._released = False
        if self._original_path is not None and not self._original_path.is_file():
            raise ModelError(missing_model(self._original_path))
        #: Windows scored by the original because the variant cannot score them exactly.
        self.scored_by_original = 0

    @property
    def runtime(self) -> str:
        return self.model.runtime

    @property
    def holds_original(self) -> bool:
        """Whether the original model is loaded beside the variant."""
        return self._original is not None

    def logits(self, windows: FloatArray) -> FloatArray:
        """Logits for a batch of windows ([n, 144000] float32 -> [n, 6522] float32)."""
        if self._original_path is None:
            return self.model.predict(windows)
        exact = constant_stretches(windows)
        if not exact.any() or (original := self._load_original()) is None:
            if self._original is not self._given and time.monotonic() > self._original_until:
                self._original = None  # unused for a while: give its memory back
                _LOGGER.debug("unloaded the original model")
            return self.model.predict(windows)
        self._original_until = time.monotonic() + self.KEEP_ORIGINAL
        out = np.empty((len(windows), NUM_CLASSES), dtype=np.float32)
        if not exact.all():
            out[~exact] = self.model.predict(windows[~exact])
        out[exact] = original.predict(windows[exact])
        if original is not self._given and not self._released:
            self._released = True
            original.release_file_pages()  # as for the variant: XNNPACK holds its own copy
        self.scored_by_original += int(exact.sum())
        return out

    def predict(self, windows: FloatArray) -> FloatArray:
        """The same as :meth:`logits` (so a classifier compares like a :class:`TFLiteModel`)."""
        return self.logits(windows)

    def _load_original(self) -> TFLiteModel | None:
        if self._original is None and self._original_path is not None:
            log = _LOGGER.debug if self.scored_by_original else _LOGGER.info
            log(
                "a window holds a stretch of digital silence or zero padding: scoring such "
                "windows with the original model %s (the optimised variant matches it "
                "everywhere else)",
                self._original_path.name,
            )
            try:
                self._original = TFLiteModel(self._original_path, self.runtime, self.model.threads)
                self._released = False
            except ModelError as exc:
                # Scores from the variant are off by at most 2e-3 on these windows: better
                # than stopping a station over it.
                _LOGGER.warning("%s; scoring those windows with the optimised variant", exc)
                self._original_path = None
        return self._original


def constant_stretches(windows: FloatArray) -> npt.NDArray[np.bool_]:
    """Per window: whether it holds :data:`CONSTANT_RUN` or more equal samples in a row and is
    not one value throughout (a constant window normalises to exactly -1, which both models
    score alike). Costs two passes over the audio; the exact search runs only on windows with
    a constant block."""
    n, size = windows.shape
    blocks = windows[:, : size - size % _BLOCK].reshape(n, -1, _BLOCK)
    flat = (blocks.max(axis=2) == blocks.min(axis=2)).any(axis=1)
    found = np.zeros(n, dtype=np.bool_)
    for i in np.flatnonzero(flat):
        found[i] = CONSTANT_RUN <= longest_run(windows[i]) < size
    return found


def longest_run(x: FloatArray) -> int:
    """The length of the longest stretch of equal values in ``x``."""
    if len(x) == 0:
        return 0
    changes = np.flatnonzero(x[1:] != x[:-1])
    edges = np.concatenate(([-1], changes, [len(x) - 1]))
    return int(np.diff(edges).max())


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
