"""Measuring each branch's framing (frame length, hop, frame count) on the original model."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from birdnet_edge.audio.format import WINDOW_SAMPLES
from birdnet_edge.model.optimize.graph import RewriteError, _Branch
from birdnet_edge.model.runtime import RUNTIME_MODULES, resolve_runtime


@dataclass(frozen=True)
class Framing:
    """How one branch cuts the signal: ``frames`` frames of ``length`` samples every ``hop``."""

    length: int
    hop: int
    frames: int


def probe_framing(path: Path, runtime: str, branches: Sequence[_Branch]) -> list[Framing]:
    """Read each branch's frames from the original model and check they are plain slices."""
    module = importlib.import_module(RUNTIME_MODULES[resolve_runtime(runtime)])
    interp = module.Interpreter(
        model_path=str(path),
        num_threads=1,
        experimental_op_resolver_type=module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        experimental_preserve_all_tensors=True,
    )
    interp.allocate_tensors()
    x = np.random.default_rng(1234).normal(0.0, 0.1, (1, WINDOW_SAMPLES)).astype(np.float32)
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    found = []
    for branch in branches:
        signal = np.asarray(interp.get_tensor(branch.signal))
        frames = np.asarray(interp.get_tensor(branch.frames_tensor))
        n = branch.frame_length
        if signal.shape != (1, WINDOW_SAMPLES) or frames.ndim != 3 or frames.shape[2] != n:
            raise RewriteError(
                f"unexpected framing shapes {signal.shape} -> {frames.shape} for frame length {n}"
            )
        count = frames.shape[1]
        sig = signal[0]
        hop = next((h for h in range(1, n + 1) if np.array_equal(frames[0, 1], sig[h : h + n])), 0)
        if count < 2 or not hop:
            raise RewriteError(f"cannot find the hop of the {n}-sample frames")
        if (count - 1) * hop + n > WINDOW_SAMPLES or not all(
            np.array_equal(frames[0, f], sig[f * hop : f * hop + n]) for f in range(count)
        ):
            raise RewriteError(f"the {n}-sample frames are not plain slices every {hop} samples")
        found.append(Framing(n, hop, count))
    return found


def folded_kernel(
    mel_weights: npt.NDArray[Any], window: npt.NDArray[Any], reverse: bool
) -> npt.NDArray[np.float64]:
    """``[mels, N]``: mel weights · real DFT · window (mel rows flipped when ``reverse``)."""
    n = int(window.shape[0])
    k = np.arange(n // 2 + 1, dtype=np.int64)[:, None]
    t = np.arange(n, dtype=np.int64)[None, :]
    cosine = np.cos(2.0 * np.pi * ((k * t) % n) / n)  # exact argument reduction
    kernel = mel_weights.astype(np.float64) @ (cosine * window.astype(np.float64)[None, :])
    return kernel[::-1] if reverse else kernel
