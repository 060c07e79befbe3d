"""TFLite runtimes (LiteRT or tflite-runtime) and a thin, typed wrapper around an interpreter.

Both runtimes expose the same ``Interpreter`` class; this module imports whichever is asked for
(or the first one installed, LiteRT first), handles the model's dynamic batch dimension and
converts quantized input and output tensors through their scale and zero point, so FP32, FP16
and INT8 models all take and give float32.
"""

from __future__ import annotations

import importlib
import logging
import os
import typing
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from birdnet_edge.daemon.memory import release_mapped_file
from birdnet_edge.errors import BirdnetEdgeError, ModelError
from birdnet_edge.model.files import missing_model
from birdnet_edge.model.tflite_check import check_tflite_file

_LOGGER = logging.getLogger(__name__)

#: Runtime name -> module that holds its ``Interpreter``; the order is the ``auto`` preference.
RUNTIME_MODULES: dict[str, str] = {
    "litert": "ai_edge_litert.interpreter",
    "tflite-runtime": "tflite_runtime.interpreter",
}

FloatArray = npt.NDArray[np.float32]


def available_runtimes() -> list[str]:
    """Names of the runtimes that import on this machine, in ``auto`` preference order."""
    found = []
    for name in RUNTIME_MODULES:
        try:
            _import(name)
        except BirdnetEdgeError:
            continue
        found.append(name)
    return found


def _import(name: str) -> Any:
    try:
        return importlib.import_module(RUNTIME_MODULES[name])
    except KeyError:
        raise BirdnetEdgeError(
            f"unknown runtime {name!r}: use auto, {' or '.join(RUNTIME_MODULES)}"
        ) from None
    except ImportError as exc:
        hint = (
            'pip install "ai-edge-litert==2.1.6"'
            if name == "litert"
            else 'pip install "tflite-runtime==2.14.0" "numpy<2" (Python 3.11 or older)'
        )
        raise BirdnetEdgeError(f"runtime {name} is not installed ({exc}): {hint}") from None


def resolve_runtime(preference: str = "auto") -> str:
    """The runtime to use for ``preference`` (``auto``: the first installed one)."""
    if preference != "auto":
        _import(preference)
        return preference
    found = available_runtimes()
    if not found:
        raise BirdnetEdgeError(
            'no TFLite runtime is installed: pip install "ai-edge-litert==2.1.6"'
        )
    return found[0]


def default_threads() -> int:
    """One interpreter thread per CPU core available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class TensorInfo:
    """What a model's input or output tensor looks like."""

    index: int
    shape: tuple[int, ...]
    dtype: type[np.generic]
    scale: float
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0 and np.issubdtype(self.dtype, np.integer)


def _tensor_info(detail: dict[str, Any]) -> TensorInfo:
    signature = detail.get("shape_signature", detail["shape"])
    scale, zero = detail.get("quantization", (0.0, 0))
    return TensorInfo(
        index=int(detail["index"]),
        shape=tuple(int(d) for d in signature),
        dtype=detail["dtype"],
        scale=float(scale),
        zero_point=int(zero),
    )


def precision_of(tensors: list[dict[str, Any]]) -> str:
    """FP32, FP16 or INT8, from the types of the model's weight tensors."""
    kinds = Counter(np.dtype(t["dtype"]).name for t in tensors)
    if kinds.get("int8") or kinds.get("uint8"):
        return "INT8"
    if kinds.get("float16"):
        return "FP16"
    return "FP32"


class TFLiteModel:
    """One loaded ``.tflite`` model with a single input and a single output."""

    def __init__(
        self, path: Path, runtime: str = "auto", threads: int = 0, *, delegates: bool = True
    ) -> None:
        """Load ``path``; ``delegates=False`` keeps the graph as stored (no XNNPACK rewrite)."""
        self.path = Path(path)
        self.runtime = resolve_runtime(runtime)
        self.threads = threads or default_threads()
        if not self.path.is_file():
            raise ModelError(missing_model(self.path))
        check_tflite_file(self.path)
        module = _import(self.runtime)
        options: dict[str, Any] = {}
        if not delegates:
            options["experimental_op_resolver_type"] = (
                module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
        try:
            self.interpreter: Any = module.Interpreter(
                model_path=str(self.path), num_threads=self.threads, **options
            )
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"model file {self.path} cannot be loaded ({first}): it is corrupt or not a "
                "TFLite model; reinstall it with `birdnet-edge model install`"
            ) from None
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(
                f"model file {self.path} has {len(inputs)} inputs and {len(outputs)} outputs; "
                "a BirdNET model has one of each"
            )
        self.input = _tensor_info(inputs[0])
        self.output = _tensor_info(outputs[0])
        self._batch = int(inputs[0]["shape"][0])
        # Read now: get_tensor_details() touches the file's tensor data, which would bring
        # back the pages release_file_pages() drops (about 20 MB of the FP32 model).
        self.precision = precision_of(self.interpreter.get_tensor_details())
        _LOGGER.debug("loaded %s with %s, %d threads", self.path.name, self.runtime, self.threads)

    def release_file_pages(self) -> int:
        """Drop this process's resident pages of the memory-mapped model file (Linux).

        After the first ``invoke()`` XNNPACK holds its own packed copy of the weights, so the
        file's pages are rarely read again; they stay resident and counted in RSS until
        released. The mapping is private and read-only, so a page that is read later is simply
        read from the file again. Returns the bytes of mappings advised (0 where unsupported).
        """
        return release_mapped_file(self.path)

    @property
    def input_size(self) -> int:
        return self.input.shape[-1]

    @property
    def output_size(self) -> int:
        return self.output.shape[-1]

    def check_shape(self, input_size: int, output_size: int) -> None:
        """Raise :class:`ModelError` unless input is ``[*, input_size]`` and output ``[*, n]``."""
        in_ok = len(self.input.shape) == 2 and self.input_size == input_size
        out_ok = len(self.output.shape) == 2 and self.output_size == output_size
        dtype_ok = self.input.dtype == np.float32 or self.input.quantized
        if not (in_ok and out_ok and dtype_ok):
            raise ModelError(
                f"model file {self.path} has input {list(self.input.shape)} "
                f"{np.dtype(self.input.dtype).name} and output {list(self.output.shape)}; "
                f"expected input [*, {input_size}] float and output [*, {output_size}]: "
                "it is not a BirdNET V2.4 model"
            )

    def predict(self, batch: FloatArray) -> FloatArray:
        """Run the model on ``batch`` ([n, input_size] float32); returns float32 [n, outputs]."""
        n = int(batch.shape[0])
        if n != self._batch:
            if self.input.shape[0] != -1 and n != self.input.shape[0]:
                # A fixed-batch model (some converted INT8 files): run one row at a time.
                return np.concatenate([self.predict(batch[i : i + 1]) for i in range(n)])
            self.interpreter.resize_tensor_input(self.input.index, [n, self.input_size])
            self.interpreter.allocate_tensors()
            self._batch = n
        self.interpreter.set_tensor(self.input.index, self._quantize(batch))
        self.interpreter.invoke()
        return self._dequantize(self.interpreter.get_tensor(self.output.index))

    def _quantize(self, x: FloatArray) -> npt.NDArray[Any]:
        info = self.input
        if not info.quantized:
            return np.ascontiguousarray(x, dtype=info.dtype)
        limits = np.iinfo(info.dtype)  # type: ignore[type-var]
        q = np.round(x / np.float32(info.scale)) + info.zero_point
        return typing.cast(npt.NDArray[Any], np.clip(q, limits.min, limits.max).astype(info.dtype))

    def _dequantize(self, y: npt.NDArray[Any]) -> FloatArray:
        info = self.output
        if not info.quantized:
            return np.asarray(y, dtype=np.float32)
        out = (y.astype(np.float32) - np.float32(info.zero_point)) * np.float32(info.scale)
        return typing.cast(FloatArray, out.astype(np.float32))
