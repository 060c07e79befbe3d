"""The equivalence check: the variant against the original on fixed windows, edge cases included."""

from __future__ import annotations

import math
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from birdnet_edge.audio.format import SAMPLE_RATE, WINDOW_SAMPLES
from birdnet_edge.model.birdnet import Classifier
from birdnet_edge.model.files import NUM_CLASSES
from birdnet_edge.model.runtime import FloatArray, TFLiteModel
from birdnet_edge.model.scoring import confidences

MAX_DELTA_P = 1e-4


def generated_windows() -> FloatArray:
    """Fixed 3 s test windows: digital silence and DC, noise, tones, chirps, clicks, a trill.

    Tones, chirps and clicks carry a -100 dBFS noise floor (below 16-bit quantisation noise),
    as any recorded or captured signal does. Mathematically pure tones are left out on purpose:
    in bands far from the tone the original's double-precision FFT yields near-zero values that
    a float32 dot product over 2048 samples cannot reproduce (its rounding is absolute, not
    relative), and the spectrogram's small power exponent (|y|^0.46) magnifies that difference.
    """
    rng = np.random.default_rng(20240924)
    t = np.arange(WINDOW_SAMPLES, dtype=np.float64) / SAMPLE_RATE
    pure: list[npt.NDArray[np.float64]] = [np.zeros_like(t), np.full_like(t, 0.25)]
    pure.append(rng.normal(0.0, 0.3, t.shape))  # white noise
    pure.append(rng.normal(0.0, 1e-4, t.shape))  # very quiet noise
    brown = np.cumsum(rng.normal(0.0, 1.0, t.shape))
    pure.append((brown - brown.mean()) / (np.abs(brown).max() + 1e-9))
    shaped: list[npt.NDArray[np.float64]] = [
        0.5 * np.sin(2 * np.pi * f * t) for f in (440.0, 2500.0, 6000.0, 11000.0)
    ]
    for f0, f1 in ((500.0, 12000.0), (9000.0, 1500.0), (3000.0, 4500.0)):
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * t[-1]))
        shaped.append(0.4 * np.sin(phase) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)))
    clicks = np.zeros_like(t)
    clicks[:: SAMPLE_RATE // 7] = 1.0
    shaped.append(clicks)
    shaped.append(np.clip(3.0 * np.sin(2 * np.pi * 1800 * t), -1, 1))  # clipped tone
    # A trill of short frequency-modulated bursts, the shape of many bird songs.
    trill = np.sin(2 * np.pi * (4000 + 800 * np.sin(2 * np.pi * 40 * t)) * t)
    shaped.append(0.3 * trill * (np.sin(2 * np.pi * 12 * t) > 0.3))
    floor = rng.normal(0.0, 1e-5, (len(shaped), t.size))
    # A 1.4 s recording (background noise) zero-padded to 3 s, as the last window of a file is.
    tail = np.zeros_like(t)
    tail[:67_200] = pure[4][:67_200]
    assert len(pure) == RECORDED_LIKE.start, "RECORDED_LIKE must skip the pure signals"
    return np.concatenate([np.stack(pure), np.stack(shaped) + floor, tail[None]]).astype(np.float32)


#: :func:`generated_windows`' signals with a noise floor (tones, chirps, clicks, a trill): the
#: ones like a recording, which stand in for real audio in the edge checks.
RECORDED_LIKE = slice(5, -1)


def audio_windows(path: Path, limit: int = 40) -> FloatArray:
    """Up to ``limit`` consecutive 3 s windows of an audio file (48 kHz mono)."""
    from birdnet_edge.audio.decode import iter_audio

    wanted = limit * WINDOW_SAMPLES
    parts: list[FloatArray] = []
    have = 0
    for block in iter_audio(path):
        parts.append(block)
        have += len(block)
        if have >= wanted:
            break
    audio = np.concatenate(parts)[:wanted] if parts else np.zeros(0, np.float32)
    count = len(audio) // WINDOW_SAMPLES
    return audio[: count * WINDOW_SAMPLES].reshape(count, WINDOW_SAMPLES).astype(np.float32)


#: Seconds of audio before the zero padding of a file's last window: BirdNET-Analyzer scores a
#: last window with 1 s or more; shorter ones are checked too (a replay keeps them).
PADDED_SECONDS = (0.5, 1.0, 1.5, 2.0, 2.5, 2.9, 2.98, 2.995)


def edge_windows(source: FloatArray) -> dict[str, FloatArray]:
    """The windows where the variant's arithmetic is furthest from the original's FFT, by class.

    ``padded``: windows of ``source`` cut short and zero-padded, as a file's last window is;
    ``silence``: digital silence, whole and for a moment within audio; ``quiet``: very quiet
    noise, unquantised and as a 16-bit microphone delivers it, also zero-padded.
    """
    rng = np.random.default_rng(20251203)
    padded = []
    for window in source[:4]:
        for seconds in PADDED_SECONDS:
            cut = window.copy()
            cut[round(seconds * SAMPLE_RATE) :] = 0.0
            padded.append(cut)
    base = source[0]
    muted_start, muted_middle = base.copy(), base.copy()
    muted_start[: SAMPLE_RATE // 2] = 0.0  # a microphone that starts with silence
    muted_middle[SAMPLE_RATE : SAMPLE_RATE + SAMPLE_RATE // 10] = 0.0  # a 0.1 s dropout
    silence = [np.zeros(WINDOW_SAMPLES), muted_start, muted_middle]
    quiet: list[npt.NDArray[np.float64]] = [
        rng.normal(0.0, level, WINDOW_SAMPLES) for level in (1e-3, 1e-5, 1e-7)
    ]
    quiet += [np.round(rng.normal(0.0, lsb, WINDOW_SAMPLES)) / 32768 for lsb in (0.5, 1.0, 4.0)]
    for i, seconds in enumerate((0.5, 1.5, 2.5)):
        tail = quiet[i + 3].copy()
        tail[round(seconds * SAMPLE_RATE) :] = 0.0
        quiet.append(tail)
    return {
        name: np.stack(windows).astype(np.float32)
        for name, windows in (("padded", padded), ("silence", silence), ("quiet", quiet))
    }


@dataclass(frozen=True)
class ThresholdCheck:
    """Detections (window, species) at one threshold: the original's, and how many changed."""

    threshold: float
    original: int
    kept: int
    lost: int
    added: int


@dataclass(frozen=True)
class Equivalence:
    """How close the candidate's outputs are to the original's on the test windows."""

    windows: int
    max_delta_logit: float
    max_delta_p: float
    top1_agree: int
    checks: tuple[ThresholdCheck, ...]

    def failure(self, max_delta_p: float = MAX_DELTA_P) -> str | None:
        """Why the candidate is not equivalent, or None when it is."""
        if not math.isfinite(self.max_delta_p) or self.max_delta_p > max_delta_p:
            return f"max |Δp| {self.max_delta_p:.2g} exceeds {max_delta_p:g}"
        for c in self.checks:
            if c.lost or c.added:
                return (
                    f"detections at {c.threshold:g} differ ({c.lost} lost, {c.added} added "
                    f"of {c.original})"
                )
        return None

    def lines(self) -> list[str]:
        out = [
            f"{self.windows} windows: max |Δlogit| {self.max_delta_logit:.2g}, "
            f"max |Δp| {self.max_delta_p:.2g}, top-1 {self.top1_agree}/{self.windows}"
        ]
        out += [
            f"  at {c.threshold:g}: {c.kept}/{c.original} detections kept, {c.lost} lost, "
            f"{c.added} added"
            for c in self.checks
        ]
        return out


@dataclass(frozen=True)
class EdgeCheck:
    """One class of edge windows: how the daemon scores them, and the variant alone."""

    name: str
    #: Windows with a long stretch of one value (digital silence, padding), which the daemon
    #: scores with the original (see :class:`birdnet_edge.model.birdnet.Classifier`).
    by_original: int
    variant_max_delta_p: float
    scored: Equivalence

    def line(self) -> str:
        s = self.scored
        return (
            f"{self.name}: {s.windows} windows, max |Δp| {s.max_delta_p:.2g} as scored "
            f"({self.by_original} by the original model; the variant alone "
            f"{self.variant_max_delta_p:.2g}), top-1 {s.top1_agree}/{s.windows}"
        )


class Predicts(typing.Protocol):
    """A model, or a classifier that routes windows between two."""

    def predict(self, batch: FloatArray) -> FloatArray: ...


def _logits(model: Predicts, windows: FloatArray, batch: int = 8) -> FloatArray:
    return np.concatenate(
        [model.predict(windows[i : i + batch]) for i in range(0, len(windows), batch)]
    )


def compare(
    original: Predicts,
    candidate: Predicts,
    windows: FloatArray,
    thresholds: Sequence[float],
    sensitivity: float = 1.0,
) -> Equivalence:
    """Run both models on ``windows`` and compare logits, confidences and detections."""
    return compare_logits(
        _logits(original, windows), _logits(candidate, windows), thresholds, sensitivity
    )


def compare_logits(
    a: FloatArray, b: FloatArray, thresholds: Sequence[float], sensitivity: float = 1.0
) -> Equivalence:
    """Compare the candidate's logits ``b`` with the original's ``a``, window by window."""
    if a.shape != b.shape:
        return Equivalence(len(a), math.inf, math.inf, 0, ())
    pa, pb = confidences(a, sensitivity), confidences(b, sensitivity)
    checks = []
    for threshold in sorted(set(thresholds)):
        da, db = pa >= np.float32(threshold), pb >= np.float32(threshold)
        checks.append(
            ThresholdCheck(
                threshold=float(threshold),
                original=int(da.sum()),
                kept=int((da & db).sum()),
                lost=int((da & ~db).sum()),
                added=int((db & ~da).sum()),
            )
        )
    with np.errstate(invalid="ignore"):
        dl = float(np.nanmax(np.abs(a - b))) if np.isfinite(b).all() else math.inf
        dp = float(np.max(np.abs(pa - pb))) if np.isfinite(pb).all() else math.inf
    return Equivalence(
        windows=len(a),
        max_delta_logit=dl,
        max_delta_p=dp,
        top1_agree=int((a.argmax(axis=1) == b.argmax(axis=1)).sum()),
        checks=tuple(checks),
    )


def edge_checks(
    original: TFLiteModel,
    scoring: Classifier,
    source: FloatArray,
    thresholds: Sequence[float],
    sensitivity: float = 1.0,
) -> tuple[EdgeCheck, ...]:
    """Compare the ``scoring`` classifier (the variant, routing windows with a constant stretch
    to ``original``) with the original on each class of :func:`edge_windows` of ``source``."""
    found = []
    for name, windows in edge_windows(source).items():
        reference = _logits(original, windows)
        before = scoring.scored_by_original
        scored = compare_logits(reference, _logits(scoring, windows), thresholds, sensitivity)
        alone = compare_logits(reference, _logits(scoring.model, windows), thresholds, sensitivity)
        found.append(
            EdgeCheck(name, scoring.scored_by_original - before, alone.max_delta_p, scored)
        )
    return tuple(found)


def structure_problem(original: TFLiteModel, candidate: TFLiteModel) -> str | None:
    """Why ``candidate`` cannot stand in for ``original`` (shapes, batch), or None."""
    if candidate.input.shape != original.input.shape or candidate.input.dtype != np.float32:
        return f"input {list(candidate.input.shape)} differs from {list(original.input.shape)}"
    if candidate.output.shape != original.output.shape:
        return f"output {list(candidate.output.shape)} differs from {list(original.output.shape)}"
    if candidate.input.shape[0] != -1:
        return "the batch dimension is not dynamic"
    x = generated_windows()[1:4]
    three = candidate.predict(x)
    one = candidate.predict(x[1:2])
    if three.shape != (3, NUM_CLASSES) or one.shape != (1, NUM_CLASSES):
        return f"batched output has shape {three.shape}"
    if not np.allclose(three[1], one[0], rtol=0.0, atol=1e-4):
        return "a window scores differently alone and in a batch"
    return None
