"""Reading the BirdNET graph: its flatbuffer schema, tensors and the two spectrogram branches."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from birdnet_edge.errors import ModelError


class RewriteError(ModelError):
    """The model's graph is not the BirdNET front end this rewrite knows."""


def _schema() -> Any:
    try:
        return importlib.import_module("ai_edge_litert.schema_py_generated")
    except ImportError:
        raise ModelError(
            "optimising the model needs LiteRT's flatbuffer schema module: "
            'pip install "ai-edge-litert==2.1.6"'
        ) from None


def _flatbuffers() -> Any:
    try:
        return importlib.import_module("flatbuffers")
    except ImportError:
        raise ModelError(
            'optimising the model needs the flatbuffers package: pip install "flatbuffers>=24"'
        ) from None


@dataclass(frozen=True)
class _Branch:
    """One spectrogram branch as found in the graph (tensor and operator indices)."""

    rfft: int  #: the RFFT2D operator
    frame_length: int
    frames_tensor: int  #: framed signal [1, F, N] (input of the Hann multiply)
    hann: int  #: constant window [N]
    signal: int  #: the normalised signal [-1, 144000] the frames are cut from
    mel_weights: int  #: FULLY_CONNECTED weights [96, N/2 + 1]
    exponent: int  #: POW's constant exponent
    reverse: bool  #: the mel axis is flipped
    output: int  #: [-1, 96, F, 1], the branch's result fed to the CONCATENATION
    output_op: int  #: the operator that produces ``output``


class _Graph:
    """Producer/consumer lookup over the first subgraph of an unpacked ``ModelT``."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.schema = _schema()
        self.graph = model.subgraphs[0]
        self.names = {
            v: k for k, v in vars(self.schema.BuiltinOperator).items() if not k.startswith("_")
        }
        self.producer: dict[int, int] = {}
        self.consumers: dict[int, list[int]] = {}
        for i, op in enumerate(self.graph.operators):
            for t in _ints(op.outputs):
                self.producer[t] = i
            for t in dict.fromkeys(_ints(op.inputs)):
                self.consumers.setdefault(t, []).append(i)

    def op_name(self, op_index: int) -> str:
        op = self.graph.operators[op_index]
        code = self.model.operatorCodes[op.opcodeIndex]
        return str(self.names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?"))

    def inputs(self, op_index: int) -> list[int]:
        return _ints(self.graph.operators[op_index].inputs)

    def outputs(self, op_index: int) -> list[int]:
        return _ints(self.graph.operators[op_index].outputs)

    def constant(self, tensor: int) -> npt.NDArray[Any] | None:
        """The value of a constant tensor, or None when it is computed."""
        if tensor < 0:
            return None
        t = self.graph.tensors[tensor]
        data = self.model.buffers[t.buffer].data if t.buffer else None
        if data is None or len(data) == 0:
            return None
        dtype = {
            self.schema.TensorType.FLOAT32: "<f4",
            self.schema.TensorType.INT32: "<i4",
            self.schema.TensorType.INT64: "<i8",
        }.get(t.type)
        if dtype is None:
            return None
        shape = [int(d) for d in t.shape] if t.shape is not None else []
        return np.frombuffer(bytes(np.asarray(data, np.uint8)), dtype=dtype).reshape(shape)

    def only_consumer(self, tensor: int, name: str) -> int:
        found = [c for c in self.consumers.get(tensor, []) if self.op_name(c) == name]
        if len(found) != 1:
            raise RewriteError(f"expected one {name} after tensor {tensor}, found {len(found)}")
        return found[0]

    def expect(self, op_index: int | None, name: str) -> int:
        if op_index is None or self.op_name(op_index) != name:
            got = "nothing" if op_index is None else self.op_name(op_index)
            raise RewriteError(f"expected {name} in the spectrogram branch, found {got}")
        return op_index


def _ints(values: Any) -> list[int]:
    return [int(v) for v in values] if values is not None else []


def find_branches(model: Any) -> list[_Branch]:
    """The RFFT2D spectrogram branches of an unpacked BirdNET ``ModelT``, checked op by op."""
    g = _Graph(model)
    branches = []
    for i in range(len(g.graph.operators)):
        if g.op_name(i) == "RFFT2D":
            branches.append(_branch(g, i))
    if not branches:
        raise RewriteError("the model has no RFFT2D operator: it is not BirdNET's FP32 model")
    return branches


def _branch(g: _Graph, rfft: int) -> _Branch:
    fft_length = g.constant(g.inputs(rfft)[1])
    if fft_length is None or fft_length.shape != (2,) or int(fft_length[0]) != 1:
        raise RewriteError("RFFT2D with a computed or two-dimensional FFT length")
    n = int(fft_length[1])
    # Backwards: EXPAND_DIMS <- MUL(frames, hann) <- framing (RESHAPE/GATHER/STRIDED_SLICE).
    expand = g.expect(g.producer.get(g.inputs(rfft)[0]), "EXPAND_DIMS")
    window_mul = g.expect(g.producer.get(g.inputs(expand)[0]), "MUL")
    a, b = g.inputs(window_mul)
    frames, hann = (a, b) if g.constant(b) is not None else (b, a)
    window = g.constant(hann)
    if window is None or window.shape != (n,):
        raise RewriteError(f"no constant window of length {n} before RFFT2D")
    signal = frames
    while (p := g.producer.get(signal)) is not None and g.op_name(p) in {
        "RESHAPE",
        "GATHER",
        "STRIDED_SLICE",
    }:
        signal = g.inputs(p)[0]
    mel_weights, exponent, reverse, output_op = _mel_chain(g, rfft, n)
    return _Branch(
        rfft=rfft,
        frame_length=n,
        frames_tensor=frames,
        hann=hann,
        signal=signal,
        mel_weights=mel_weights,
        exponent=exponent,
        reverse=reverse,
        output=g.outputs(output_op)[0],
        output_op=output_op,
    )


def _mel_chain(g: _Graph, rfft: int, n: int) -> tuple[int, int, bool, int]:
    """After RFFT2D: SQUEEZE, CAST, RESHAPE, FULLY_CONNECTED (mel), RESHAPE, MUL(x, x), POW,
    REVERSE_V2, TRANSPOSE, EXPAND_DIMS; returns (mel weights, exponent, flipped, last op)."""
    squeeze = g.only_consumer(g.outputs(rfft)[0], "SQUEEZE")
    cast = g.only_consumer(g.outputs(squeeze)[0], "CAST")
    reshape = g.only_consumer(g.outputs(cast)[0], "RESHAPE")
    fc = g.only_consumer(g.outputs(reshape)[0], "FULLY_CONNECTED")
    fc_in = g.inputs(fc)
    weights = g.constant(fc_in[1])
    if weights is None or weights.ndim != 2 or weights.shape[1] != n // 2 + 1:
        raise RewriteError("the mel FULLY_CONNECTED has no constant [mels, N/2+1] weights")
    bias = g.constant(fc_in[2]) if len(fc_in) > 2 else None
    if len(fc_in) > 2 and fc_in[2] >= 0 and (bias is None or np.any(bias != 0)):
        raise RewriteError("the mel FULLY_CONNECTED has a bias")
    options = g.graph.operators[fc].builtinOptions
    if options is not None and getattr(options, "fusedActivationFunction", 0) != 0:
        raise RewriteError("the mel FULLY_CONNECTED has a fused activation")
    reshape2 = g.only_consumer(g.outputs(fc)[0], "RESHAPE")
    square = g.only_consumer(g.outputs(reshape2)[0], "MUL")
    if len(set(g.inputs(square))) != 1:
        raise RewriteError("expected the mel spectrogram to be squared (MUL x, x)")
    power = g.only_consumer(g.outputs(square)[0], "POW")
    exponent = g.inputs(power)[1]
    if g.constant(exponent) is None:
        raise RewriteError("POW with a computed exponent")
    nxt = g.consumers.get(g.outputs(power)[0], [])
    reverse = len(nxt) == 1 and g.op_name(nxt[0]) == "REVERSE_V2"
    last = g.outputs(power)[0]
    if reverse:
        axis = g.constant(g.inputs(nxt[0])[1])
        if axis is None or [int(x) % 3 for x in axis.ravel()] != [2]:
            raise RewriteError("REVERSE_V2 over an axis other than the mel axis")
        last = g.outputs(nxt[0])[0]
    transpose = g.only_consumer(last, "TRANSPOSE")
    perm = g.constant(g.inputs(transpose)[1])
    if perm is None or perm.tolist() != [0, 2, 1]:
        raise RewriteError("expected TRANSPOSE [0, 2, 1] after the mel spectrogram")
    out_expand = g.only_consumer(g.outputs(transpose)[0], "EXPAND_DIMS")
    axis = g.constant(g.inputs(out_expand)[1])
    if axis is None or int(axis.ravel()[0]) not in (-1, 3):
        raise RewriteError("expected EXPAND_DIMS on the last axis after the mel spectrogram")
    return fc_in[1], exponent, reverse, out_expand
