"""An exact, faster FP32 BirdNET: the spectrogram front end folded into one convolution per branch.

BirdNET V2.4 turns the 3 s signal into two mel spectrograms (frame lengths 2048 and 1024). Each
branch frames the signal, multiplies by a Hann window, takes an RFFT2D, keeps the real part (the
layer casts the complex STFT to float), applies the mel matrix, squares, raises to a learnt
power and flips the mel axis. Everything up to the squaring is linear in the frame, so framing,
window, real DFT, mel weights and flip fold into one matrix ``K = flip(W_mel · cos(2πkn/N) ·
hann)`` of shape ``[96, N]``. Cut the signal into hop-sized blocks and that matrix becomes a
single CONV_2D (kernel ``[96, 1, ceil(N/hop), hop]``), which XNNPACK runs multi-threaded, where
the two RFFT2D operators run single-threaded in reference kernels.

The rewrite reads the graph with the TFLite flatbuffer schema that ships inside the LiteRT
wheel and writes it back with ``flatbuffers`` (no TensorFlow). Frame length, hop and frame count
are not guessed: they are read from the original model's own intermediate tensors on a probe
signal, and the framing is verified sample for sample. The variant is then accepted only after an
equivalence check against the original on fixed windows (generated signals plus, when given,
real audio, and the edge cases: zero-padded, silent and very quiet windows): max |Δp| ≤ 1e-4 and
identical detections at 0.25 and at the configured threshold.

One class of window is not the variant's: where a long stretch of one value sits next to
other audio (a file's zero-padded end, a moment of digital silence), the original's float32 FFT
leaves rounding noise that exact arithmetic cannot reproduce (|Δp| up to 2e-3). The classifier
scores those with the original (:class:`~birdnet_edge.model.birdnet.Classifier`), and the check
measures the pair as the daemon runs it, with the variant's own figure beside it.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import tempfile
import typing
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from birdnet_edge.errors import ModelError
from birdnet_edge.model.birdnet import Classifier
from birdnet_edge.model.files import (
    AUDIO_MODEL,
    NUM_CLASSES,
    PINNED_SHA256,
    SAMPLE_RATE,
    WINDOW_SAMPLES,
)
from birdnet_edge.model.install import sha256_of
from birdnet_edge.model.runtime import RUNTIME_MODULES, FloatArray, TFLiteModel, resolve_runtime
from birdnet_edge.model.scoring import confidences
from birdnet_edge.model.variants import OPTIMIZED_MODEL, OPTIMIZED_REPORT

_LOGGER = logging.getLogger(__name__)

Say = Callable[[str], None]

MAX_DELTA_P = 1e-4
REFERENCE_THRESHOLD = 0.25
_ALIGNMENT = 16  # constant buffers are 16-byte aligned, as the TFLite converter writes them


class RewriteError(ModelError):
    """The model's graph is not the BirdNET front end this rewrite knows."""


# --------------------------------------------------------------------------------------------
# Reading the graph


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


# --------------------------------------------------------------------------------------------
# Measuring the framing on the original model


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


# --------------------------------------------------------------------------------------------
# Writing the new graph


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


# --------------------------------------------------------------------------------------------
# Equivalence


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


# --------------------------------------------------------------------------------------------
# The command


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
