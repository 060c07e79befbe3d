"""The whole daemon inside a small board's CPU and memory budget (cgroups), in real time.

A Pi Zero 2 W's four cores are worth about 19 % of one core here (BirdNET's stock window:
~540 ms there, ~25 ms on one core here); 256 MB is its memory. The daemon replays the first
30 s of the soundscape as a microphone would deliver them, inside the cgroup, and must score
exactly the windows (grid and refinement) with exactly the scores of an unconstrained
full-speed replay: no audio lost, every detection kept. ``bench.small_board`` is the long
version that finds the smallest share per overlap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from birdnet_edge.bench.small_board import (
    BoardRun,
    CgroupUnavailableError,
    cgroup,
    excerpt,
    replay,
    write_config,
)

pytestmark = [pytest.mark.model, pytest.mark.slow]

MEMORY_MB = 256


@pytest.fixture(scope="module")
def audio(soundscape: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return excerpt(soundscape, 30.0, tmp_path_factory.mktemp("board") / "excerpt.wav")


@pytest.fixture(scope="module")
def references(audio: Path, model_dir: Path) -> dict[float, BoardRun]:
    work = audio.parent
    runs = {}
    for overlap in (1.5, 2.5):
        cfg = write_config(work / f"ref-{overlap}.yaml", model_dir, overlap, work / "ref.db")
        runs[overlap] = replay(audio, cfg, work / f"ref-{overlap}.npz", fast=True)
        assert runs[overlap].returncode == 0, runs[overlap].stderr
    return runs


def _constrained(audio: Path, model_dir: Path, overlap: float, share: float, tag: str) -> BoardRun:
    work = audio.parent
    cfg = write_config(work / f"{tag}.yaml", model_dir, overlap, work / f"{tag}.db")
    try:
        with cgroup(share, MEMORY_MB) as group:
            return replay(audio, cfg, work / f"{tag}.npz", fast=False, group=group)
    except CgroupUnavailableError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize(
    ("overlap", "share"),
    [(1.5, 0.20), (2.5, 0.20)],
    ids=["defaults-20%", "overlap-2.5-20%"],
)
def test_the_daemon_keeps_up_within_a_small_boards_budget(
    audio: Path,
    model_dir: Path,
    references: dict[float, BoardRun],
    overlap: float,
    share: float,
) -> None:
    reference = references[overlap]
    # The excerpt holds birds at the daemon's threshold, and refinement ran at the defaults.
    assert float(np.max(reference.confidences)) >= 0.7
    run = _constrained(audio, model_dir, overlap, share, f"{overlap}-{share}")
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.oom_kills == 0
    assert 0 < run.peak_memory_mb < MEMORY_MB  # start-up included
    assert "dropped" not in run.stderr
    assert "unrefined" not in run.stderr
    assert run.same_windows_as(reference), (
        f"{len(run.starts)} windows inside the budget, {len(reference.starts)} without"
    )


def test_at_ten_percent_the_defaults_keep_the_grid_and_lose_no_audio(
    audio: Path, model_dir: Path, references: dict[float, BoardRun]
) -> None:
    # A harsher budget: in a dawn chorus refinement may have to step aside now and then, but
    # every grid window is scored, no audio is lost and memory stays under the cap.
    run = _constrained(audio, model_dir, 1.5, 0.10, "defaults-10")
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.oom_kills == 0
    assert 0 < run.peak_memory_mb < MEMORY_MB
    assert "dropped" not in run.stderr
    grid = {s for s in references[1.5].starts if s % 72_000 == 0}  # a window every 1.5 s
    assert grid <= set(run.starts)
    reference = dict(zip(references[1.5].starts, references[1.5].confidences, strict=True))
    for start, confidences in zip(run.starts, run.confidences, strict=True):
        np.testing.assert_array_equal(confidences, reference[start])  # scored exactly


def test_an_overloaded_daemon_degrades_as_documented(
    audio: Path, model_dir: Path, references: dict[float, BoardRun]
) -> None:
    # Refinement of every window (candidate 0.01: a dense analysis) at 3 % of one core: far
    # more than the budget. The daemon must keep the grid, lose no audio, stay within its
    # memory, and say what would fit.
    work = audio.parent
    cfg = write_config(work / "over.yaml", model_dir, 2.5, work / "over.db", candidate=0.01)
    try:
        with cgroup(0.03, MEMORY_MB) as group:
            run = replay(audio, cfg, work / "over.npz", fast=False, group=group)
    except CgroupUnavailableError as exc:
        pytest.skip(str(exc))
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.oom_kills == 0
    assert 0 < run.peak_memory_mb < MEMORY_MB
    assert "dropped" not in run.stderr
    assert "grid windows went unrefined" in run.stderr
    assert "or less keeps up" in run.stderr
    grid = {s for s in references[2.5].starts if s % 24_000 == 0}  # a window every 0.5 s
    assert grid
    assert grid <= set(run.starts)  # every grid window was still scored
