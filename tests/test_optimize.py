"""The optimised BirdNET variant: rewrite, structure, equivalence check and its rejections."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from birdnet_edge.audio.format import WINDOW_SAMPLES
from birdnet_edge.config import ModelConfig
from birdnet_edge.errors import ModelError
from birdnet_edge.model import probe
from birdnet_edge.model.files import AUDIO_MODEL, NUM_CLASSES, PINNED_SHA256
from birdnet_edge.model.graph_info import summarize
from birdnet_edge.model.install import sha256_of
from birdnet_edge.model.optimize import command, folding, framing
from birdnet_edge.model.optimize import equivalence as check
from birdnet_edge.model.optimize import graph as read
from birdnet_edge.model.runtime import TFLiteModel, available_runtimes
from birdnet_edge.model.variants import (
    OPTIMIZED_MODEL,
    OPTIMIZED_REPORT,
    active_model,
    read_report,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def rewritten(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data, framings = folding.rewrite(model_dir / AUDIO_MODEL)
    assert [(f.length, f.hop, f.frames) for f in framings] == [(2048, 278, 511), (1024, 280, 511)]
    path = tmp_path_factory.mktemp("optimized") / OPTIMIZED_MODEL
    path.write_bytes(data)
    return path


@pytest.fixture
def model_copy(model_dir: Path, tmp_path: Path) -> Path:
    """A model directory of our own holding (a link to) the installed FP32 model."""
    (tmp_path / AUDIO_MODEL).symlink_to(model_dir / AUDIO_MODEL)
    return tmp_path


def _scaled_kernel(data: bytes, factor: float) -> bytes:
    """The rewritten model with its folded DFT kernels multiplied by ``factor``."""
    schema = read._schema()
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    graph = model.subgraphs[0]
    scaled = 0
    for tensor in graph.tensors:
        if tensor.name.decode().endswith("/mel_dft_kernel"):
            buf = model.buffers[tensor.buffer]
            values = np.frombuffer(bytes(buf.data), "<f4") * np.float32(factor)
            buf.data = np.frombuffer(values.astype("<f4").tobytes(), np.uint8)
            scaled += 1
    assert scaled == 2
    return folding._pack(model, len(data))


def test_rewrite_keeps_shapes_and_dynamic_batch(model_dir: Path, rewritten: Path) -> None:
    original = TFLiteModel(model_dir / AUDIO_MODEL, threads=1)
    candidate = TFLiteModel(rewritten, threads=1)
    candidate.check_shape(WINDOW_SAMPLES, NUM_CLASSES)
    assert candidate.input.shape == (-1, WINDOW_SAMPLES)
    assert candidate.output.shape == original.output.shape == (-1, NUM_CLASSES)
    assert check.structure_problem(original, candidate) is None
    x = check.generated_windows()[:3]
    assert candidate.predict(x).shape == (3, NUM_CLASSES)
    assert candidate.predict(x[:1]).shape == (1, NUM_CLASSES)


def test_rewrite_replaces_the_fft_by_convolutions(model_dir: Path, rewritten: Path) -> None:
    before = summarize(model_dir / AUDIO_MODEL).operators
    after = summarize(rewritten).operators
    assert before["RFFT2D"] == 2
    assert "RFFT2D" not in after
    assert "GATHER" not in after
    assert after["CONV_2D"] == before["CONV_2D"] + 2 * 4  # kernel, offsets, steps, differences
    assert sum(after.values()) < sum(before.values())


def test_rewrite_matches_the_original(model_dir: Path, rewritten: Path) -> None:
    original = TFLiteModel(model_dir / AUDIO_MODEL, threads=1)
    candidate = TFLiteModel(rewritten, threads=1)
    result = check.compare(original, candidate, check.generated_windows(), (0.25, 0.7))
    assert result.failure() is None, result.lines()
    assert result.max_delta_p <= check.MAX_DELTA_P
    assert result.top1_agree == result.windows
    # Digital silence is exact to float32 rounding (the block offsets are split off).
    silence = np.zeros((1, WINDOW_SAMPLES), np.float32)
    np.testing.assert_allclose(
        candidate.predict(silence), original.predict(silence), rtol=0, atol=1e-4
    )


def test_constant_stretches_are_found_only_where_a_frame_is_one_value() -> None:
    from birdnet_edge.model.birdnet import CONSTANT_RUN, constant_stretches

    rng = np.random.default_rng(5)
    noise = rng.normal(0, 0.1, WINDOW_SAMPLES).astype(np.float32)

    def with_run(start: int, length: int, value: float = 0.0) -> npt.NDArray[np.float32]:
        w: npt.NDArray[np.float32] = noise.copy()
        w[start : start + length] = value
        return w

    windows = np.stack(
        [
            noise,  # nothing constant
            np.zeros(WINDOW_SAMPLES, np.float32),  # digital silence throughout: the variant's
            with_run(int(1.5 * 48_000), WINDOW_SAMPLES),  # a file's padded last window
            with_run(WINDOW_SAMPLES - CONSTANT_RUN, CONSTANT_RUN),  # padding just long enough
            with_run(WINDOW_SAMPLES - CONSTANT_RUN + 1, CONSTANT_RUN),  # one sample short
            with_run(70_001, CONSTANT_RUN, 0.3),  # a frame of one value in the middle
            with_run(70_001, CONSTANT_RUN - 1, 0.3),
            with_run(0, 2 * CONSTANT_RUN),  # silence at the start
        ]
    )
    found = constant_stretches(windows)
    assert found.tolist() == [False, False, True, True, False, True, False, True]


def test_windows_with_a_constant_stretch_are_scored_by_the_original(
    model_dir: Path, rewritten: Path, soundscape: Path
) -> None:
    from birdnet_edge.model.birdnet import Classifier
    from birdnet_edge.model.scoring import confidences

    original = TFLiteModel(model_dir / AUDIO_MODEL, threads=1)
    scoring = Classifier(rewritten, threads=1, original=model_dir / AUDIO_MODEL)
    windows = check.edge_windows(check.audio_windows(soundscape, limit=4))["padded"]
    reference = confidences(original.predict(windows))
    alone = confidences(scoring.model.predict(windows))
    scored = confidences(scoring.logits(windows))
    # The variant alone misses the bound on padded windows; scored as the daemon does, the
    # windows with a long run of padding come from the original and the rest meet the bound.
    assert np.abs(alone - reference).max() > check.MAX_DELTA_P
    assert np.abs(scored - reference).max() <= check.MAX_DELTA_P
    assert 0 < scoring.scored_by_original < len(windows)
    # Loaded for those windows only, and given back once none has come for a while.
    recorded = check.audio_windows(soundscape, limit=1)
    assert scoring.holds_original
    scoring.logits(recorded)
    assert scoring.holds_original, "kept for KEEP_ORIGINAL seconds after such a window"
    scoring.KEEP_ORIGINAL = 0.0
    scoring.logits(windows[:1])  # a padded window: scored by the original once more
    scoring.logits(recorded)
    assert not scoring.holds_original


def test_a_broken_rewrite_is_rejected(model_dir: Path, rewritten: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(_scaled_kernel(rewritten.read_bytes(), 1.01))
    original = TFLiteModel(model_dir / AUDIO_MODEL, threads=1)
    candidate = TFLiteModel(broken, threads=1)
    assert check.structure_problem(original, candidate) is None  # it still looks right
    result = check.compare(original, candidate, check.generated_windows(), (0.25, 0.7))
    reason = result.failure()
    assert reason is not None
    assert "Δp" in reason or "detections" in reason


def test_optimize_model_rejects_and_removes_a_broken_variant(
    model_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_rewrite = folding.rewrite

    def broken_rewrite(
        original: Path, runtime: str = "auto"
    ) -> tuple[bytes, tuple[framing.Framing, ...]]:
        data, framings = real_rewrite(original, runtime)
        return _scaled_kernel(data, 0.98), framings

    monkeypatch.setattr(command, "rewrite", broken_rewrite)
    stale = model_copy / OPTIMIZED_MODEL
    stale.write_bytes(b"an older variant")
    said: list[str] = []
    result = command.optimize_model(model_copy, say=said.append)
    assert not result.accepted
    assert result.path is None
    assert not stale.exists()
    assert not (model_copy / OPTIMIZED_REPORT).exists()
    left = sorted(p.name for p in model_copy.iterdir() if p.name != probe.CACHE_FILE)
    assert left == [AUDIO_MODEL]  # no temp file left
    assert "rejected" in said[-1]
    assert result.reason in said[-1]


def test_optimize_model_accepts_the_exact_variant(model_copy: Path, soundscape: Path) -> None:
    said: list[str] = []
    result = command.optimize_model(model_copy, real_audio=soundscape, say=said.append)
    assert result.accepted, result.lines()
    assert result.path == model_copy / OPTIMIZED_MODEL
    assert result.path.is_file()
    assert result.generated is not None
    assert result.real is not None
    assert result.real.windows == 40
    for equivalence in (result.generated, result.real):
        assert equivalence.max_delta_p <= check.MAX_DELTA_P
        assert all(c.lost == c.added == 0 for c in equivalence.checks)
    assert {c.threshold for c in result.real.checks} == {0.25, 0.7}
    # The edge cases, as the daemon scores them, with the variant's own figure beside them.
    edges = {edge.name: edge for edge in result.edges}
    assert set(edges) == {"padded", "silence", "quiet"}
    for edge in edges.values():
        assert edge.scored.max_delta_p <= check.MAX_DELTA_P, edge.line()
        assert edge.scored.top1_agree == edge.scored.windows
    assert edges["padded"].by_original > 0
    assert edges["padded"].variant_max_delta_p > check.MAX_DELTA_P
    assert any(line.startswith("padded: ") for line in said)
    report = read_report(model_copy)
    assert report is not None
    assert report["accepted"] is True
    assert report["real"]["max_delta_p"] == result.real.max_delta_p
    assert [edge["name"] for edge in report["edges"]] == ["padded", "silence", "quiet"]
    assert json.loads((model_copy / OPTIMIZED_REPORT).read_text())["path"] == str(result.path)
    assert any("accepted" in line for line in said)
    assert report["sha256"] == sha256_of(result.path)
    assert report["original_sha256"] == sha256_of(model_copy / AUDIO_MODEL)
    # `model.variant: auto` now runs the variant, and says why.
    active = active_model(ModelConfig(dir=model_copy))
    assert active.paths.audio == result.path
    assert "accepted" in active.why


def test_a_model_without_the_fft_front_end_is_not_rewritten(tmp_path: Path) -> None:
    (tmp_path / AUDIO_MODEL).write_bytes((FIXTURES / "int8_tiny.tflite").read_bytes())
    said: list[str] = []
    result = command.optimize_model(tmp_path, say=said.append)
    assert not result.accepted
    assert "graph not recognised" in result.reason
    assert "RFFT2D" in result.reason
    assert not (tmp_path / OPTIMIZED_MODEL).exists()


def test_max_overlap_keeps_the_headroom() -> None:
    from birdnet_edge.detect.board import max_grid_overlap as max_overlap

    assert max_overlap(0.030) == 2.9  # capped at the configuration's limit
    assert max_overlap(0.7) == 2.0  # 0.7 s per window needs a 1.0 s hop at 30 % headroom
    assert max_overlap(1.4) == 1.0
    assert max_overlap(2.5) == 0.0  # cannot keep up even without overlap


def test_benchmark_measures_variants_side_by_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from birdnet_edge.bench.model_bench import main, measure, variant_files

    fixture = (FIXTURES / "int8_tiny.tflite").read_bytes()
    (tmp_path / AUDIO_MODEL).write_bytes(fixture)
    (tmp_path / OPTIMIZED_MODEL).write_bytes(fixture)
    (tmp_path / "BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite").write_bytes(fixture)
    variants = variant_files(tmp_path)
    assert [name for name, _ in variants] == ["original", "optimized"]  # meta model left out
    runtime = available_runtimes()[0]
    results = measure(variants, runtime, 1, repeats=3, batch=2, batched_repeats=2)
    assert [(m.variant, m.threads, m.batch) for m in results] == [
        ("original", 1, 2),
        ("optimized", 1, 2),
    ]
    assert results[0].vs_original == 1.0
    for m in results:
        assert 0 < m.batch1_median_ms <= m.batch1_p95_ms
        assert m.realtime_factor == pytest.approx(3000.0 / m.batch1_median_ms)
        assert m.startup_s > 0
    assert main(["--model-dir", str(tmp_path), "--threads", "1", "--repeats", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {r["variant"] for r in report["results"]} == {"original", "optimized"}
    assert report["recommendation"].startswith("recommendation: ")
    assert "dawn chorus (analysis.overlap: auto)" in report["recommendation"]
    # Remembered for analysis.overlap: auto.
    board = json.loads((tmp_path / "board.json").read_text(encoding="utf-8"))
    assert board["per_window_ms"] == pytest.approx(
        min(r["batch1_median_ms"] for r in report["results"]), abs=0.01
    )


def test_a_variant_of_a_model_that_is_not_the_pinned_one_is_rejected(
    model_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PINNED_SHA256, AUDIO_MODEL, "0" * 64)
    said: list[str] = []
    result = command.optimize_model(model_copy, say=said.append)
    assert not result.accepted
    assert "not the pinned BirdNET V2.4 model" in result.reason
    assert "model install --force" in result.reason
    assert not (model_copy / OPTIMIZED_MODEL).exists()
    assert not (model_copy / OPTIMIZED_REPORT).exists()


def test_a_check_that_cannot_run_leaves_the_accepted_variant_in_place(
    model_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    variant = model_copy / OPTIMIZED_MODEL
    report = model_copy / OPTIMIZED_REPORT
    variant.write_bytes(b"the variant accepted earlier")
    report.write_text('{"accepted": true}', encoding="utf-8")

    def broken_check(*_args: object, **_kwargs: object) -> command.OptimizeResult:
        raise ModelError("the runtime could not load the model")

    monkeypatch.setattr(command, "_check", broken_check)
    with pytest.raises(ModelError):
        command.optimize_model(model_copy, say=lambda _line: None)
    assert variant.read_bytes() == b"the variant accepted earlier"
    assert report.read_text(encoding="utf-8") == '{"accepted": true}'
    assert sorted(p.name for p in model_copy.iterdir() if p.name.endswith(".part")) == []


def test_auto_falls_back_to_the_original_when_the_variant_does_not_load(
    model_dir: Path, tmp_path: Path
) -> None:
    from birdnet_edge.config import Config
    from birdnet_edge.detect.stack import load_detector

    for name in PINNED_SHA256:
        (tmp_path / name).symlink_to(model_dir / name)
    variant = tmp_path / OPTIMIZED_MODEL
    variant.write_bytes(b"TFL3" + bytes(200))  # accepted once, unloadable now
    report = {
        "accepted": True,
        "sha256": sha256_of(variant),
        "original_sha256": PINNED_SHA256[AUDIO_MODEL],
    }
    (tmp_path / OPTIMIZED_REPORT).write_text(json.dumps(report), encoding="utf-8")
    assert active_model(ModelConfig(dir=tmp_path)).optimized
    detector = load_detector(Config(model=ModelConfig(dir=tmp_path, threads=1)))
    assert detector.classifier.model.path == tmp_path / AUDIO_MODEL
    with pytest.raises(ModelError):  # asked for explicitly, it is an error, not a fallback
        load_detector(Config(model=ModelConfig(dir=tmp_path, variant="optimized", threads=1)))
