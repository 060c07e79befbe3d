"""Logits to confidences exactly as BirdNET-Analyzer 2.4 (``flat_sigmoid``), in float32."""

from __future__ import annotations

import typing

import numpy as np
import numpy.typing as npt

SENSITIVITY_MIN = 0.5
SENSITIVITY_MAX = 1.5

FloatArray = npt.NDArray[np.float32]


def confidences(
    logits: FloatArray, sensitivity: float = 1.0, out: FloatArray | None = None
) -> FloatArray:
    """``1 / (1 + exp(-clip(logit + 10 (s - 1), -20, 20)))`` in float32.

    ``sensitivity`` is clamped to [0.5, 1.5] as BirdNET-Analyzer does. ``out`` may be the
    caller's preallocated array (of ``logits``' shape) so the live path allocates nothing.
    """
    s = min(max(float(sensitivity), SENSITIVITY_MIN), SENSITIVITY_MAX)
    bias = np.float32((s - 1.0) * 10.0)
    x = np.add(logits, bias, out=out, dtype=np.float32)
    np.clip(x, -20.0, 20.0, out=x)
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += np.float32(1.0)
    np.reciprocal(x, out=x)
    return typing.cast(FloatArray, x)
