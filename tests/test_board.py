"""What this board affords: analysis.overlap: auto and check-config's warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from birdnet_edge.config import AnalysisConfig, RefineConfig, load_config
from birdnet_edge.detect.board import (
    BOARD_FILE,
    BoardBenchmark,
    fitting_overlap,
    overlap_warning,
    remember,
    remembered,
    resolve_overlap,
    windows_per_second,
)
from birdnet_edge.errors import ConfigError
from tests.conftest import run_cli


def test_the_chorus_load_matches_the_recall_benchmark() -> None:
    # bench.recall on the soundscape: 0.66 / 3.91 / 4.00 / 4.17 windows per audio second.
    assert windows_per_second(1.5, refine=False) == pytest.approx(0.667, abs=0.01)
    for overlap, measured in ((1.0, 3.91), (1.5, 4.00), (2.0, 4.17)):
        assert windows_per_second(overlap, refine=True) == pytest.approx(measured, rel=0.1)


def test_the_fitting_overlap_prefers_refinement_then_the_largest_grid() -> None:
    assert fitting_overlap(0.010, refine=True) == 1.5  # this machine: a chorus fits easily
    assert fitting_overlap(0.170, refine=True) == 1.5  # 3.9 windows/s x 170 ms < 70 %
    # Too slow for a refined chorus: the largest grid within the headroom, at most 1.5 s.
    assert fitting_overlap(0.5, refine=True) == 1.5  # 0.67 windows/s x 0.5 s = 33 %
    assert fitting_overlap(1.4, refine=True) == 1.0
    assert fitting_overlap(2.5, refine=True) == 0.0


def _board(ms: float) -> BoardBenchmark:
    return BoardBenchmark(ms, "optimized", "litert", 2, "2026-12-01")


def test_auto_uses_the_remembered_benchmark(tmp_path: Path) -> None:
    auto = AnalysisConfig(overlap="auto")
    assert resolve_overlap(auto, tmp_path) == 1.5  # nothing remembered yet
    assert remember(tmp_path, _board(1400.0)) == tmp_path / BOARD_FILE
    assert remembered(tmp_path) == _board(1400.0)
    assert resolve_overlap(auto, tmp_path) == 1.0
    assert resolve_overlap(AnalysisConfig(overlap=2.5), tmp_path) == 2.5  # a number is kept
    (tmp_path / BOARD_FILE).write_text("{not json", encoding="utf-8")
    assert remembered(tmp_path) is None
    assert resolve_overlap(auto, tmp_path) == 1.5


def test_check_config_warns_when_the_overlap_needs_more_than_the_board_has(
    tmp_path: Path,
) -> None:
    remember(tmp_path, _board(250.0))
    refined = AnalysisConfig(overlap=2.0, refine=RefineConfig(enabled=True))
    warning = overlap_warning(refined, tmp_path)
    assert warning is not None
    assert "analysis.overlap 2 needs" in warning
    assert "1 keeps 30% headroom" in warning or "keeps 30% headroom" in warning
    assert (
        overlap_warning(AnalysisConfig(overlap=2.0, refine=RefineConfig(enabled=False)), tmp_path)
        is None
    )
    assert overlap_warning(AnalysisConfig(overlap="auto"), tmp_path) is None

    config = tmp_path / "config.yaml"
    config.write_text(f"analysis: {{overlap: 2.5}}\nmodel: {{dir: {tmp_path}}}\n")
    proc = run_cli(["check-config", str(config)])
    assert proc.returncode == 0, proc.stderr
    assert "warning: analysis.overlap 2.5 needs" in proc.stderr
    config.write_text(f"analysis: {{overlap: auto}}\nmodel: {{dir: {tmp_path}}}\n")
    proc = run_cli(["check-config", str(config)])
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr


def test_overlap_takes_a_number_or_auto(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("analysis: {overlap: auto}\n")
    assert load_config(config).analysis.overlap == "auto"
    config.write_text("analysis: {overlap: 2}\n")
    assert load_config(config).analysis.overlap == 2.0
    config.write_text("analysis: {overlap: fast}\n")
    with pytest.raises(ConfigError, match=r"analysis\.overlap: must be one of auto, got 'fast'"):
        load_config(config)
    config.write_text("analysis: {overlap: 3.5}\n")
    with pytest.raises(ConfigError, match=r"analysis.overlap: must be between 0 and 2.9"):
        load_config(config)


def test_the_benchmark_file_is_plain_json(tmp_path: Path) -> None:
    remember(tmp_path, _board(21.5))
    data = json.loads((tmp_path / BOARD_FILE).read_text(encoding="utf-8"))
    assert data == {
        "per_window_ms": 21.5,
        "variant": "optimized",
        "runtime": "litert",
        "threads": 2,
        "measured": "2026-12-01",
    }
