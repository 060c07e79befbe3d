"""What is inside a ``.tflite`` model, read from the loaded graph (for ``model info``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from birdnet_edge.audio.format import SAMPLE_RATE
from birdnet_edge.model.install import sha256_of
from birdnet_edge.model.runtime import TFLiteModel


@dataclass(frozen=True)
class ModelSummary:
    """Facts about one model file."""

    path: Path
    size: int
    sha256: str
    runtime: str
    precision: str
    input_shape: tuple[int, ...]
    input_dtype: str
    output_shape: tuple[int, ...]
    operators: dict[str, int]
    embedding_size: int | None
    global_pooling: bool

    def lines(self) -> list[str]:
        seconds = self.input_shape[-1] / SAMPLE_RATE
        ops = ", ".join(f"{name} {count}" for name, count in self.operators.items())
        lines = [
            f"file:        {self.path}",
            f"size:        {self.size / 1e6:.1f} MB",
            f"sha256:      {self.sha256}",
            f"precision:   {self.precision}",
            f"input:       {list(self.input_shape)} {self.input_dtype}"
            + (f" ({seconds:g} s at {SAMPLE_RATE} Hz)" if self.input_shape[-1] > 3 else ""),
            f"classes:     {self.output_shape[-1]}",
            f"runtime:     {self.runtime}",
            f"operators:   {sum(self.operators.values())} ({ops})",
        ]
        if self.embedding_size is not None:
            pooling = "global average pooling" if self.global_pooling else "no global pooling"
            lines.append(
                f"classifier:  {pooling} -> {self.embedding_size}-d embedding -> "
                f"FULLY_CONNECTED -> {self.output_shape[-1]} logits"
            )
        return lines


def summarize(path: Path, runtime: str = "auto") -> ModelSummary:
    """Load ``path`` and describe it."""
    model = TFLiteModel(path, runtime, threads=1, delegates=False)
    interp = model.interpreter
    tensors = interp.get_tensor_details()
    ops: list[dict[str, Any]] = interp._get_ops_details()  # both runtimes have it
    counts = Counter(str(op["op_name"]) for op in ops)
    shapes = {int(t["index"]): tuple(int(d) for d in t["shape"]) for t in tensors}
    embedding: int | None = None
    fc = [op for op in ops if op["op_name"] == "FULLY_CONNECTED"]
    if fc:
        inputs = [int(i) for i in fc[-1]["inputs"]]
        embedding = shapes.get(inputs[0], (0,))[-1] if inputs else None
    pooling = bool(counts.get("MEAN") or counts.get("AVERAGE_POOL_2D"))
    return ModelSummary(
        path=path,
        size=path.stat().st_size,
        sha256=sha256_of(path),
        runtime=model.runtime,
        precision=model.precision,
        input_shape=model.input.shape,
        input_dtype=np.dtype(model.input.dtype).name,
        output_shape=model.output.shape,
        operators=dict(counts.most_common()),
        embedding_size=embedding,
        global_pooling=pooling,
    )
