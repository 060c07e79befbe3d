"""Writing the new graph: each branch's front end folded into one convolution."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from birdnet_edge.audio.format import WINDOW_SAMPLES
from birdnet_edge.model.optimize.framing import Framing, folded_kernel, probe_framing
from birdnet_edge.model.optimize.graph import (
    RewriteError,
    _Branch,
    _flatbuffers,
    _Graph,
    _ints,
    _schema,
    find_branches,
)

_ALIGNMENT = 16  # constant buffers are 16-byte aligned, as the TFLite converter writes them


class _Writer:
    """Adds tensors, buffers and operators to an unpacked ``ModelT``."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.s = _schema()
        self.graph = model.subgraphs[0]

    def opcode(self, code: int) -> int:
        for i, oc in enumerate(self.model.operatorCodes):
            if max(oc.builtinCode, oc.deprecatedBuiltinCode) == code:
                return i
        oc = self.s.OperatorCodeT()
        oc.builtinCode = code
        oc.deprecatedBuiltinCode = min(code, 127)
        oc.version = 1
        self.model.operatorCodes.append(oc)
        return len(self.model.operatorCodes) - 1

    def constant(self, name: str, value: npt.NDArray[Any]) -> int:
        kinds = {"float32": self.s.TensorType.FLOAT32, "int32": self.s.TensorType.INT32}
        buf = self.s.BufferT()
        buf.data = np.frombuffer(np.ascontiguousarray(value).tobytes(), dtype=np.uint8)
        self.model.buffers.append(buf)
        return self._tensor(
            name, list(value.shape), kinds[value.dtype.name], len(self.model.buffers) - 1
        )

    def activation(self, name: str, shape: list[int]) -> int:
        buf = self.s.BufferT()
        self.model.buffers.append(buf)
        t = self._tensor(
            name, [1, *shape[1:]], self.s.TensorType.FLOAT32, len(self.model.buffers) - 1
        )
        self.graph.tensors[t].shapeSignature = [-1, *shape[1:]]
        return t

    def _tensor(self, name: str, shape: list[int], kind: int, buffer: int) -> int:
        t = self.s.TensorT()
        t.name = name
        t.shape = shape
        t.type = kind
        t.buffer = buffer
        self.graph.tensors.append(t)
        return len(self.graph.tensors) - 1

    def op(self, code: int, inputs: list[int], outputs: list[int], kind: str, options: Any) -> Any:
        """An operator; ``kind`` names its options table (``Conv2D`` for Conv2DOptions)."""
        op = self.s.OperatorT()
        op.opcodeIndex = self.opcode(code)
        op.inputs = inputs
        op.outputs = outputs
        op.builtinOptionsType = getattr(self.s.BuiltinOptions, f"{kind}Options")
        op.builtinOptions = options
        return op


def _branch_ops(
    w: _Writer, branch: _Branch, framing: Framing, kernel: npt.NDArray[np.float64], tag: str
) -> list[Any]:
    """The branch as: hop-sized blocks, block offsets split off, two CONV_2Ds, square, power.

    Each block's mean is subtracted before the big convolution and its contribution added back
    through a small one (``K·x = K·(x - d) + K·d``, with ``d`` constant per block). In float32
    that keeps constant stretches (digital silence, a zero-padded tail) exact: their residual is
    zero, where a float32 sum over thousands of large, cancelling products would leave noise
    that the spectrogram's small power exponent then magnifies.
    """
    s = w.s
    ops = []
    mels = kernel.shape[0]
    hop, count = framing.hop, framing.frames
    taps = -(-framing.length // hop)  # blocks per frame
    blocks = count + taps - 1
    length = blocks * hop
    padded = np.zeros((mels, taps * hop), dtype=np.float64)
    padded[:, : framing.length] = kernel
    filt = padded.reshape(mels, 1, taps, hop)
    signal = branch.signal
    if length != WINDOW_SAMPLES:
        cut = w.activation(f"birdnet_edge/{tag}/signal", [-1, length])
        if length > WINDOW_SAMPLES:
            extra = length - WINDOW_SAMPLES
            pads = w.constant(f"birdnet_edge/{tag}/pad", np.array([[0, 0], [0, extra]], np.int32))
            ops.append(w.op(s.BuiltinOperator.PAD, [signal, pads], [cut], "Pad", s.PadOptionsT()))
        else:
            begin = w.constant(f"birdnet_edge/{tag}/begin", np.array([0, 0], np.int32))
            size = w.constant(f"birdnet_edge/{tag}/size", np.array([-1, length], np.int32))
            ops.append(
                w.op(
                    s.BuiltinOperator.SLICE,
                    [signal, begin, size],
                    [cut],
                    "Slice",
                    s.SliceOptionsT(),
                )
            )
        signal = cut
    shape = [-1, 1, blocks, hop]
    blocked = w.activation(f"birdnet_edge/{tag}/blocks", shape)
    new_shape = w.constant(f"birdnet_edge/{tag}/blocks_shape", np.array(shape, np.int32))
    reshape = s.ReshapeOptionsT()
    reshape.newShape = shape
    ops.append(w.op(s.BuiltinOperator.RESHAPE, [signal, new_shape], [blocked], "Reshape", reshape))
    offsets = w.activation(f"birdnet_edge/{tag}/block_mean", [-1, 1, blocks, 1])
    axis = w.constant(f"birdnet_edge/{tag}/block_axis", np.array([3], np.int32))
    reducer = s.ReducerOptionsT()
    reducer.keepDims = True
    ops.append(w.op(s.BuiltinOperator.MEAN, [blocked, axis], [offsets], "Reducer", reducer))
    residual = w.activation(f"birdnet_edge/{tag}/residual", shape)
    ops.append(w.op(s.BuiltinOperator.SUB, [blocked, offsets], [residual], "Sub", s.SubOptionsT()))
    mel = _mel_ops(w, ops, residual=residual, offsets=offsets, filt=filt, count=count, tag=tag)
    squared = w.activation(f"birdnet_edge/{tag}/power", [-1, 1, count, mels])
    ops.append(w.op(s.BuiltinOperator.MUL, [mel, mel], [squared], "Mul", s.MulOptionsT()))
    scaled = w.activation(f"birdnet_edge/{tag}/magnitude", [-1, 1, count, mels])
    ops.append(
        w.op(s.BuiltinOperator.POW, [squared, branch.exponent], [scaled], "Pow", s.PowOptionsT())
    )
    perm = w.constant(f"birdnet_edge/{tag}/perm", np.array([0, 3, 2, 1], np.int32))
    out = w.graph.tensors[branch.output]
    out.shape = [1, mels, count, 1]
    out.shapeSignature = [-1, mels, count, 1]
    ops.append(
        w.op(
            s.BuiltinOperator.TRANSPOSE,
            [scaled, perm],
            [branch.output],
            "Transpose",
            s.TransposeOptionsT(),
        )
    )
    return ops


def _mel_ops(
    w: _Writer,
    ops: list[Any],
    *,
    residual: int,
    offsets: int,
    filt: npt.NDArray[np.float64],
    count: int,
    tag: str,
) -> int:
    """``K·(x - d) + K·d``, the second part as ``R·d_f + Σ_i T_i·(d_{f+i+1} - d_{f+i})``.

    ``r_b`` is the kernel's sum over tap ``b``, ``R = Σ_b r_b`` and ``T_i = Σ_{b>i} r_b``, all in
    float64; with the offsets written as first differences a constant signal meets a single
    rounding (``R·d``) instead of a float32 sum of cancelling per-tap terms.
    """
    s = w.s
    mels, _, taps, _ = filt.shape
    row = filt.sum(axis=(1, 3))  # r_b: [mels, taps]
    total = np.zeros((mels, 1, taps, 1))
    total[:, 0, 0, 0] = row.sum(axis=1)
    tails = np.cumsum(row[:, ::-1], axis=1)[:, ::-1][:, 1:]  # T_i = sum_{b>i} r_b
    bias = w.constant(f"birdnet_edge/{tag}/zero_bias", np.zeros(mels, np.float32))
    diff_bias = w.constant(f"birdnet_edge/{tag}/zero_bias_1", np.zeros(1, np.float32))
    diff_kernel = w.constant(
        f"birdnet_edge/{tag}/diff_kernel", np.array([-1.0, 1.0], np.float32).reshape(1, 1, 2, 1)
    )
    blocks = count + taps - 1
    diffs = w.activation(f"birdnet_edge/{tag}/block_mean_diff", [-1, 1, blocks - 1, 1])
    conv = _conv_options(s)
    ops.append(
        w.op(s.BuiltinOperator.CONV_2D, [offsets, diff_kernel, diff_bias], [diffs], "Conv2D", conv)
    )
    parts = []
    for name, x, weights in (
        ("mel_dft_kernel", residual, filt),
        ("mel_dft_offsets", offsets, total),
        ("mel_dft_offset_steps", diffs, tails.reshape(mels, 1, taps - 1, 1)),
    ):
        k = w.constant(f"birdnet_edge/{tag}/{name}", weights.astype(np.float32))
        y = w.activation(f"birdnet_edge/{tag}/{name}_out", [-1, 1, count, mels])
        ops.append(w.op(s.BuiltinOperator.CONV_2D, [x, k, bias], [y], "Conv2D", conv))
        parts.append(y)
    total_out = parts[0]
    for i, part in enumerate(parts[1:]):
        summed = w.activation(f"birdnet_edge/{tag}/mel_sum{i}", [-1, 1, count, mels])
        ops.append(w.op(s.BuiltinOperator.ADD, [total_out, part], [summed], "Add", s.AddOptionsT()))
        total_out = summed
    return total_out


def _conv_options(s: Any) -> Any:
    conv = s.Conv2DOptionsT()
    conv.padding = s.Padding.VALID
    conv.strideW = conv.strideH = 1
    conv.dilationWFactor = conv.dilationHFactor = 1
    conv.fusedActivationFunction = s.ActivationFunctionType.NONE
    return conv


def rewrite(original: Path, runtime: str = "auto") -> tuple[bytes, tuple[Framing, ...]]:
    """The optimised model built from the ``original`` ``.tflite`` file, and its branches."""
    s = _schema()
    data = original.read_bytes()
    model = s.ModelT.InitFromPackedBuf(data, 0)
    if len(model.subgraphs) != 1:
        raise RewriteError(f"the model has {len(model.subgraphs)} subgraphs, BirdNET has one")
    branches = find_branches(model)
    framings = probe_framing(original, runtime, branches)
    g = _Graph(model)
    w = _Writer(model)
    new_ops: list[Any] = []
    for i, (branch, framing) in enumerate(zip(branches, framings, strict=True)):
        kernel = folded_kernel(
            typing.cast(npt.NDArray[Any], g.constant(branch.mel_weights)),
            typing.cast(npt.NDArray[Any], g.constant(branch.hann)),
            branch.reverse,
        )
        new_ops += _branch_ops(w, branch, framing, kernel, f"MEL_SPEC{i + 1}")
    replaced = {b.output_op for b in branches}
    first_use = min(c for b in branches for c in g.consumers.get(b.output, []) if c not in replaced)
    ops = g.graph.operators
    kept = [op for i, op in enumerate(ops[:first_use]) if i not in replaced]
    g.graph.operators = [*kept, *new_ops, *ops[first_use:]]
    _prune(model)
    return _pack(model, len(data)), tuple(framings)


def _prune(model: Any) -> None:
    """Drop operators whose results are unused, then unused tensors and buffers (renumbered)."""
    graph = model.subgraphs[0]
    needed = set(_ints(graph.outputs))
    live = []
    for op in reversed(graph.operators):
        if needed.intersection(_ints(op.outputs)):
            live.append(op)
            needed.update(t for t in _ints(op.inputs) if t >= 0)
    graph.operators = live[::-1]
    used = sorted(
        {*_ints(graph.inputs), *_ints(graph.outputs)}
        | {t for op in graph.operators for t in (*_ints(op.inputs), *_ints(op.outputs)) if t >= 0}
    )
    remap = {old: new for new, old in enumerate(used)}
    graph.tensors = [graph.tensors[i] for i in used]
    graph.inputs = [remap[t] for t in _ints(graph.inputs)]
    graph.outputs = [remap[t] for t in _ints(graph.outputs)]
    for op in graph.operators:
        op.inputs = [remap[t] if t >= 0 else t for t in _ints(op.inputs)]
        op.outputs = [remap[t] for t in _ints(op.outputs)]
        op.intermediates = None
    for sig in model.signatureDefs or []:
        for item in (*(sig.inputs or []), *(sig.outputs or [])):
            item.tensorIndex = remap[item.tensorIndex]
    keep = sorted(
        {0}
        | {t.buffer for t in graph.tensors}
        | {m.buffer for m in model.metadata or []}
        | set(_ints(model.metadataBuffer))
    )
    bremap = {old: new for new, old in enumerate(keep)}
    model.buffers = [model.buffers[i] for i in keep]
    for t in graph.tensors:
        t.buffer = bremap[t.buffer]
    for m in model.metadata or []:
        m.buffer = bremap[m.buffer]
    if model.metadataBuffer is not None:
        model.metadataBuffer = [bremap[b] for b in _ints(model.metadataBuffer)]


class _AlignedBuffer:
    """Stands in for ``BufferT`` when packing: writes its bytes 16-byte aligned."""

    def __init__(self, data: Any, offset: int, size: int) -> None:
        self.data = data
        self.offset = offset
        self.size = size

    def Pack(self, builder: Any) -> Any:  # noqa: N802 (the name the generated code calls)
        s = _schema()
        data = None
        if self.data is not None and len(self.data):
            raw = np.asarray(self.data, dtype=np.uint8).tobytes()
            builder.StartVector(1, len(raw), _ALIGNMENT)
            builder.head -= len(raw)
            builder.Bytes[builder.head : builder.head + len(raw)] = raw
            data = builder.EndVector()
        s.BufferStart(builder)
        if data is not None:
            s.BufferAddData(builder, data)
        s.BufferAddOffset(builder, self.offset)
        s.BufferAddSize(builder, self.size)
        return s.BufferEnd(builder)


def _pack(model: Any, size_hint: int) -> bytes:
    """Serialise ``model`` with every constant buffer 16-byte aligned."""
    flatbuffers = _flatbuffers()

    for i, buf in enumerate(model.buffers):
        model.buffers[i] = _AlignedBuffer(buf.data, buf.offset, buf.size)
    builder = flatbuffers.Builder(size_hint + (1 << 20))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
