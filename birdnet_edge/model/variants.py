"""Which FP32 audio model is active: the original, or the optimised variant once accepted.

``model optimize`` writes the variant and, only when the equivalence check accepts it, a JSON
report beside it holding the check's figures and both files' sha256. The variant is used
(``model.variant: auto``) only while that report says accepted, was made from the pinned
original, and still matches the variant file byte for byte; anything else falls back to the
original, and ``model info`` says why.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from birdnet_edge.config import ModelConfig
from birdnet_edge.errors import ModelError
from birdnet_edge.model.files import AUDIO_MODEL, PINNED_SHA256, ModelPaths
from birdnet_edge.model.install import sha256_of

#: The optimised variant of the FP32 audio model, written next to it.
OPTIMIZED_MODEL = AUDIO_MODEL.removesuffix(".tflite") + ".optimized.tflite"
#: The equivalence report of the variant (JSON), written only when the check accepts it.
OPTIMIZED_REPORT = AUDIO_MODEL.removesuffix(".tflite") + ".optimized.json"

_RUN_OPTIMIZE = "run `birdnet-edge model optimize`"


@dataclass(frozen=True)
class ActiveModel:
    """The audio model a config selects, and why."""

    paths: ModelPaths
    why: str
    #: What to load instead if this model does not load: the original, when the variant was
    #: chosen by ``variant: auto`` rather than asked for.
    fallback: ModelPaths | None = None

    @property
    def optimized(self) -> bool:
        return self.paths.audio_name == OPTIMIZED_MODEL


def read_report(model_dir: Path) -> dict[str, Any] | None:
    """The stored equivalence report of the optimised variant, if both files are there."""
    report = model_dir / OPTIMIZED_REPORT
    if not (model_dir / OPTIMIZED_MODEL).is_file() or not report.is_file():
        return None
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return typing.cast(dict[str, Any], data) if isinstance(data, dict) else None


def optimized_problem(model_dir: Path) -> str | None:
    """Why the optimised variant in ``model_dir`` cannot be used, or None when it can."""
    variant = model_dir / OPTIMIZED_MODEL
    if not variant.is_file():
        return f"no optimised variant is installed ({_RUN_OPTIMIZE} for a faster, exact one)"
    report = read_report(model_dir)
    if report is None or report.get("accepted") is not True:
        return f"the optimised variant has no accepted equivalence report ({_RUN_OPTIMIZE})"
    if report.get("original_sha256") != PINNED_SHA256[AUDIO_MODEL]:
        return (
            "the optimised variant was not derived from the pinned V2.4 model (run "
            "`birdnet-edge model install --force`: it restores the model and derives it again)"
        )
    try:
        digest = sha256_of(variant)
    except OSError as exc:
        return f"cannot read {variant} ({exc.strerror or exc}): check its owner and permissions"
    if report.get("sha256") != digest:
        return f"the optimised variant changed since it was checked ({_RUN_OPTIMIZE})"
    return None


def report_figure(report: dict[str, Any], key: str, figure: str) -> float | None:
    """A figure of the report's ``generated`` or ``real`` check (e.g. ``max_delta_p``), if it
    holds a number."""
    return check_figure(report.get(key), figure)


def check_figure(check: object, figure: str) -> float | None:
    """A figure of one check stored in the report (a JSON object), if it holds a number: the
    report is a file on disk, and an odd value must not break ``model info`` or start-up."""
    value = check.get(figure) if isinstance(check, dict) else None
    return float(value) if isinstance(value, int | float) else None


def active_model(model: ModelConfig) -> ActiveModel:
    """The audio model ``model`` selects: ``file`` if set, else by ``variant``."""
    paths = ModelPaths.at(model.dir)
    variant = model.variant
    if model.file is not None:
        if variant != "auto":
            raise ModelError(
                f"model.file ({model.file}) and model.variant ({variant}) are both set: "
                "remove one of them"
            )
        if model.file != OPTIMIZED_MODEL:
            return ActiveModel(ModelPaths.at(paths.dir, model.file), "model.file is set")
        variant = "optimized"  # named by file: still only once its check accepted it
    if variant == "original":
        return ActiveModel(paths, "model.variant is original")
    problem = optimized_problem(paths.dir)
    if problem is None:
        delta = report_figure(read_report(paths.dir) or {}, "generated", "max_delta_p")
        figure = f" (max |Δp| {delta:.1e} on generated signals)" if delta is not None else ""
        return ActiveModel(
            ModelPaths.at(paths.dir, OPTIMIZED_MODEL),
            f"optimised variant, accepted by its equivalence check{figure}",
            fallback=paths if model.variant == "auto" else None,
        )
    if variant == "optimized":
        raise ModelError(f"the optimised model is asked for, but {problem}")
    return ActiveModel(paths, f"original: {problem}")
