"""``model optimize``: rewrite, check, and keep the variant only when it is equivalent; and the
install-time policy (derive it unless an accepted one is there)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from birdnet_edge.errors import ModelError
from birdnet_edge.model.birdnet import Classifier
from birdnet_edge.model.files import AUDIO_MODEL, PINNED_SHA256
from birdnet_edge.model.install import sha256_of
from birdnet_edge.model.optimize.equivalence import (
    MAX_DELTA_P,
    RECORDED_LIKE,
    EdgeCheck,
    Equivalence,
    audio_windows,
    compare,
    edge_checks,
    generated_windows,
    structure_problem,
)
from birdnet_edge.model.optimize.folding import rewrite
from birdnet_edge.model.optimize.framing import Framing
from birdnet_edge.model.optimize.graph import RewriteError
from birdnet_edge.model.runtime import TFLiteModel
from birdnet_edge.model.variants import OPTIMIZED_MODEL, OPTIMIZED_REPORT, optimized_problem

Say = Callable[[str], None]

REFERENCE_THRESHOLD = 0.25


@dataclass(frozen=True)
class OptimizeResult:
    """The outcome of ``model optimize``."""

    accepted: bool
    reason: str
    path: Path | None
    original: Path
    generated: Equivalence | None = None
    real: Equivalence | None = None
    real_audio: Path | None = None
    branches: tuple[Framing, ...] = field(default_factory=tuple)
    edges: tuple[EdgeCheck, ...] = field(default_factory=tuple)

    def lines(self) -> list[str]:
        out = [
            f"front end: {len(self.branches)} RFFT2D branches "
            + ", ".join(f"N={b.length} hop={b.hop} frames={b.frames}" for b in self.branches)
        ]
        if self.generated is not None:
            out.append("generated signals: " + self.generated.lines()[0])
            out += self.generated.lines()[1:]
        if self.real is not None:
            out.append(f"{self.real_audio}: " + self.real.lines()[0])
            out += self.real.lines()[1:]
        out += [edge.line() for edge in self.edges]
        verdict = (
            f"accepted: {self.path}" if self.accepted else "rejected, the original stays in use"
        )
        out.append(f"{verdict} ({self.reason})")
        return out

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("path", "original", "real_audio"):
            data[key] = str(data[key]) if data[key] is not None else None
        return data


def optimize_model(
    model_dir: Path,
    runtime: str = "auto",
    *,
    real_audio: Path | None = None,
    say: Say = print,
    threshold: float = 0.7,
    sensitivity: float = 1.0,
    threads: int = 0,
) -> OptimizeResult:
    """Write the optimised variant next to the FP32 model, keep it only if it is equivalent."""
    original = model_dir / AUDIO_MODEL
    target = model_dir / OPTIMIZED_MODEL
    report = model_dir / OPTIMIZED_REPORT
    if not original.is_file():
        raise ModelError(f"model file {original} is missing: run `birdnet-edge model install`")
    # A variant already in place stays until this run decides: a failure to run the check
    # (an exception) leaves it, a rejection removes it, an acceptance replaces it.
    say(f"rewriting the spectrogram front end of {original.name}")
    try:
        data, framings = rewrite(original, runtime)
    except RewriteError as exc:
        return _rejected(model_dir, original, f"graph not recognised: {exc}", say)
    tmp = _temp_beside(target)
    try:
        tmp.write_bytes(data)
        result = _check(
            original,
            tmp,
            runtime=runtime,
            real_audio=real_audio,
            say=say,
            threshold=threshold,
            sensitivity=sensitivity,
            threads=threads,
        )
        result = OptimizeResult(**{**vars(result), "branches": framings})
        if result.accepted and sha256_of(original) != PINNED_SHA256[AUDIO_MODEL]:
            reason = (
                f"{original.name} is not the pinned BirdNET V2.4 model: run "
                "`birdnet-edge model install --force` to restore it"
            )
            result = OptimizeResult(**{**vars(result), "accepted": False, "reason": reason})
        if result.accepted:
            tmp.replace(target)
            result = OptimizeResult(**{**vars(result), "path": target})
            stored = {**result.to_json(), "sha256": sha256_of(target)}
            stored["original_sha256"] = PINNED_SHA256[AUDIO_MODEL]  # checked just above
            staged = _temp_beside(report)
            staged.write_text(json.dumps(stored, indent=2) + "\n", encoding="utf-8")
            staged.replace(report)
        else:
            _remove_variant(model_dir)
    finally:
        tmp.unlink(missing_ok=True)
    for line in result.lines():
        say(line)
    return result


def _temp_beside(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    return Path(name)


def _remove_variant(model_dir: Path) -> None:
    for stale in (model_dir / OPTIMIZED_REPORT, model_dir / OPTIMIZED_MODEL):
        stale.unlink(missing_ok=True)


def _rejected(model_dir: Path, original: Path, reason: str, say: Say) -> OptimizeResult:
    _remove_variant(model_dir)
    result = OptimizeResult(False, reason, None, original)
    for line in result.lines()[-1:]:
        say(line)
    return result


def _check(
    original: Path,
    candidate: Path,
    *,
    runtime: str,
    real_audio: Path | None,
    say: Say,
    threshold: float,
    sensitivity: float,
    threads: int,
) -> OptimizeResult:
    """Load both models, check shapes and equivalence; the verdict as an OptimizeResult."""
    from birdnet_edge.model.probe import choose_runtime

    runtime = choose_runtime(runtime, original, threads=threads)
    base = TFLiteModel(original, runtime, threads)
    try:
        # As the daemon runs it: windows the variant cannot score exactly go to the original.
        scoring = Classifier(candidate, runtime, threads, original=base)
    except ModelError as exc:
        return OptimizeResult(False, f"the rewritten model does not load: {exc}", None, original)
    problem = structure_problem(base, scoring.model)
    if problem:
        return OptimizeResult(False, problem, None, original)
    thresholds = (REFERENCE_THRESHOLD, threshold)
    say("checking equivalence on generated signals")
    signals = generated_windows()
    generated = compare(base, scoring, signals, thresholds, sensitivity)
    real = None
    source = signals[RECORDED_LIKE]
    if real_audio is not None:
        say(f"checking equivalence on {real_audio}")
        source = audio_windows(real_audio)
        real = compare(base, scoring, source, thresholds, sensitivity)
    say("checking equivalence on padded, silent and very quiet windows")
    edges = edge_checks(base, scoring, source, thresholds, sensitivity)
    checked = [generated, real, *(edge.scored for edge in edges)]
    failures = [e.failure() for e in checked if e is not None]
    reason = next((f for f in failures if f), None)
    return OptimizeResult(
        accepted=reason is None,
        reason=reason or f"equivalent within |Δp| ≤ {MAX_DELTA_P:g}, same detections",
        path=None,
        original=original,
        generated=generated,
        real=real,
        real_audio=real_audio,
        edges=edges,
    )


def ensure_optimized(
    directory: Path,
    runtime: str = "auto",
    *,
    force: bool = False,
    say: Say = print,
    threshold: float = REFERENCE_THRESHOLD,
    sensitivity: float = 1.0,
    threads: int = 0,
) -> None:
    """What ``model install`` does after installing: derive the optimised variant unless an
    accepted one is already there. Failing to make it is not fatal: the original stays in use."""
    if not force and optimized_problem(directory) is None:
        say(f"{OPTIMIZED_MODEL} already derived and accepted")
        return
    try:
        optimize_model(
            directory, runtime, say=say, threshold=threshold, sensitivity=sensitivity,
            threads=threads,
        )  # fmt: skip
    except ModelError as exc:  # e.g. no flatbuffer schema with tflite-runtime
        say(f"optimised variant not made, the original stays in use: {exc}")
    except OSError as exc:  # e.g. the disk filled up while writing it
        say(
            f"optimised variant not made, the original stays in use: {exc.strerror}: free some "
            "space and run `birdnet-edge model optimize`"
        )
