"""The INT8 path: a tiny quantized fixture runs through the same runtime code as BirdNET.

``tests/fixtures/int8_tiny.tflite`` is built by ``tests/fixtures/make_int8_model.py`` (no
TensorFlow): int8 input ``[-1, 144000]``, STRIDED_SLICE of the first 6522 samples, QUANTIZE to a
different scale and zero point, int8 output ``[-1, 6522]``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.typing as npt
import pytest

from birdnet_edge.audio.format import WINDOW_SAMPLES
from birdnet_edge.model.birdnet import Classifier
from birdnet_edge.model.files import NUM_CLASSES
from birdnet_edge.model.graph_info import summarize
from birdnet_edge.model.runtime import TFLiteModel, available_runtimes

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MODEL = FIXTURES / "int8_tiny.tflite"
SCRIPT = FIXTURES / "make_int8_model.py"
RUNTIMES = available_runtimes()


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_int8_model", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _expected(model: TFLiteModel, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """quantize -> keep the first 6522 samples -> requantize -> dequantize, in numpy."""
    s_in, z_in = np.float32(model.input.scale), model.input.zero_point
    s_out, z_out = np.float32(model.output.scale), model.output.zero_point
    q_in = np.clip(np.round(x / s_in) + z_in, -128, 127)[:, :NUM_CLASSES]
    real = (q_in.astype(np.float64) - z_in) * float(s_in)
    q_out = np.clip(np.round(real / float(s_out)) + z_out, -128, 127)
    out: npt.NDArray[np.float32] = ((q_out - z_out).astype(np.float32) * s_out).astype(np.float32)
    return out


def _windows(n: int, seed: int) -> npt.NDArray[np.float32]:
    # Standard deviation 1 at scale 0.01 also drives some samples into int8 saturation.
    return np.random.default_rng(seed).normal(0.0, 1.0, (n, WINDOW_SAMPLES)).astype(np.float32)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_fixture_is_quantized_with_distinct_input_and_output_parameters(runtime: str) -> None:
    model = TFLiteModel(MODEL, runtime, threads=1)
    model.check_shape(WINDOW_SAMPLES, NUM_CLASSES)
    assert model.input.quantized
    assert model.output.quantized
    assert model.input.dtype == np.int8
    assert model.output.dtype == np.int8
    assert model.input.shape == (-1, WINDOW_SAMPLES)
    assert model.output.shape == (-1, NUM_CLASSES)
    assert model.input.scale != pytest.approx(model.output.scale)
    assert model.input.zero_point != model.output.zero_point


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("batch", [1, 3])
def test_int8_scores_are_dequantized(runtime: str, batch: int) -> None:
    classifier = Classifier(MODEL, runtime, threads=1)
    x = _windows(batch, seed=batch)
    logits = classifier.logits(x)
    assert logits.dtype == np.float32
    assert logits.shape == (batch, NUM_CLASSES)
    expected = _expected(classifier.model, x)
    if runtime == "litert":
        np.testing.assert_array_equal(logits, expected)
    else:
        # tflite-runtime 2.14 requantizes with a fixed-point multiplier that rounds some
        # values the other way: at most one output step apart, never a wrong scale or offset.
        step = np.float32(classifier.model.output.scale)
        assert np.max(np.abs(logits - expected)) <= step * 1.001
        assert np.mean(logits == expected) > 0.5
    # Dequantized, not raw int8: values are multiples of the output scale, not integers.
    assert np.any(np.abs(logits - np.round(logits)) > 1e-3)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_dynamic_batch_resizes_both_ways(runtime: str) -> None:
    classifier = Classifier(MODEL, runtime, threads=1)
    x = _windows(3, seed=7)
    three = classifier.logits(x)
    one = classifier.logits(x[1:2])
    again = classifier.logits(x)
    np.testing.assert_array_equal(one[0], three[1])
    np.testing.assert_array_equal(again, three)


def test_summary_reports_int8() -> None:
    summary = summarize(MODEL)
    assert summary.precision == "INT8"
    assert summary.input_dtype == "int8"
    assert summary.output_shape[-1] == NUM_CLASSES
    assert summary.operators == {"STRIDED_SLICE": 1, "QUANTIZE": 1}


def test_script_rebuilds_the_committed_bytes(tmp_path: Path) -> None:
    pytest.importorskip("flatbuffers", reason="the fixture script needs the test extras")
    pytest.importorskip("ai_edge_litert", reason="the fixture script uses LiteRT's schema")
    assert _script().build() == MODEL.read_bytes()
    out = tmp_path / "again.tflite"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(out)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == MODEL.read_bytes()
