"""What this board can afford: the overlap that keeps 30 % headroom, remembered from a benchmark.

``birdnet-edge benchmark`` times the model on this board and remembers the fastest setting's
time per window in ``board.json`` beside the model. ``analysis.overlap: auto`` takes the
overlap from it, and ``check-config`` warns when a configured overlap needs more than the board
has. The load a setting must carry is a dawn chorus: the grid's windows plus, with refinement,
the share of the stretches between grid windows that a chorus makes candidates, scored every
``step`` (35 % of them in the shared soundscape at every overlap from 1 to 2 s:
``python -m birdnet_edge.bench.recall``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from birdnet_edge.audio.format import WINDOW_SECONDS
from birdnet_edge.config import AnalysisConfig

_LOGGER = logging.getLogger(__name__)

BOARD_FILE = "board.json"
HEADROOM = 0.30  # keep 30 % of the time budget free
MAX_OVERLAP = 2.9  # the configuration's upper limit
#: The overlap preferred when the board affords it (the recall benchmark's best per window).
PREFERRED_OVERLAP = 1.5
#: Share of the stretches between grid windows that refinement scores densely in a dawn chorus.
CHORUS_SHARE = 0.35


@dataclass(frozen=True)
class BoardBenchmark:
    """The benchmark's result for this board, as remembered."""

    per_window_ms: float  # batch-1 median of the fastest variant, runtime and thread count
    variant: str
    runtime: str
    threads: int
    measured: str  # ISO date

    def fitting_overlap(self, analysis: AnalysisConfig) -> float:
        refine = analysis.refine
        return fitting_overlap(self.per_window_ms / 1000, refine.enabled, refine.step)


def windows_per_second(overlap: float, refine: bool, step: float = 0.1) -> float:
    """Windows to score per second of audio at ``overlap`` in a dawn chorus."""
    grid = 1.0 / (WINDOW_SECONDS - overlap)
    if not refine:
        return grid
    return grid + CHORUS_SHARE * max(0.0, 1.0 / step - grid)


def max_grid_overlap(per_window_s: float, headroom: float = HEADROOM) -> float:
    """The largest overlap (0.1 s steps) at which the grid alone uses at most ``1 - headroom``."""
    hop = per_window_s / (1.0 - headroom)
    overlap = math.floor((WINDOW_SECONDS - hop) * 10 + 1e-9) / 10
    return max(0.0, min(MAX_OVERLAP, overlap))


def fitting_overlap(per_window_s: float, refine: bool, step: float = 0.1) -> float:
    """The overlap for a board that takes ``per_window_s`` per window, with 30 % headroom.

    The preferred 1.5 s where a chorus fits (with refinement when it is on); else the largest
    overlap whose grid alone fits, up to 1.5 s (refinement then steps aside when the model
    falls behind, see the listener).
    """
    budget = 1.0 - HEADROOM
    if per_window_s * windows_per_second(PREFERRED_OVERLAP, refine, step) <= budget:
        return PREFERRED_OVERLAP
    return min(PREFERRED_OVERLAP, max_grid_overlap(per_window_s))


def remember(model_dir: Path, result: BoardBenchmark) -> Path | None:
    """Write ``board.json``; None (and a warning) when the folder is not writable."""
    path = model_dir / BOARD_FILE
    try:
        path.write_text(json.dumps(asdict(result), indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        _LOGGER.warning(
            "cannot remember the benchmark in %s (%s): analysis.overlap: auto will use %.1f s",
            path,
            exc.strerror,
            PREFERRED_OVERLAP,
        )
        return None
    return path


def remembered(model_dir: Path) -> BoardBenchmark | None:
    """The benchmark remembered in ``model_dir``, or None (none yet, or unreadable)."""
    path = model_dir / BOARD_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return BoardBenchmark(
            per_window_ms=float(data["per_window_ms"]),
            variant=str(data["variant"]),
            runtime=str(data["runtime"]),
            threads=int(data["threads"]),
            measured=str(data["measured"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _LOGGER.warning("ignoring %s (%s): run `birdnet-edge benchmark` again", path, exc)
        return None


def today() -> str:
    return dt.date.today().isoformat()


def resolve_overlap(analysis: AnalysisConfig, model_dir: Path) -> float:
    """The overlap to run with: the configured number, or for ``auto`` the board's fit."""
    if analysis.overlap != "auto":
        return analysis.overlap
    board = remembered(model_dir)
    if board is None:
        _LOGGER.info(
            "analysis.overlap: auto: no benchmark of this board yet, using %.1f s "
            "(run `birdnet-edge benchmark` to fit it)",
            PREFERRED_OVERLAP,
        )
        return PREFERRED_OVERLAP
    overlap = board.fitting_overlap(analysis)
    _LOGGER.info(
        "analysis.overlap: auto: %.1f s (%.1f ms per window measured %s)",
        overlap,
        board.per_window_ms,
        board.measured,
    )
    return overlap


def overlap_warning(analysis: AnalysisConfig, model_dir: Path) -> str | None:
    """A warning when a configured overlap needs more than the benchmarked board has."""
    if analysis.overlap == "auto":
        return None
    board = remembered(model_dir)
    if board is None:
        return None
    per_window = board.per_window_ms / 1000
    load = per_window * windows_per_second(
        analysis.overlap, analysis.refine.enabled, analysis.refine.step
    )
    if load <= 1.0 - HEADROOM:
        return None
    fit = board.fitting_overlap(analysis)
    return (
        f"analysis.overlap {analysis.overlap:g} needs {load:.0%} of this board's time in a dawn "
        f"chorus ({board.per_window_ms:.0f} ms per window, measured {board.measured}): "
        f"{fit:g} keeps {HEADROOM:.0%} headroom (or use analysis.overlap: auto)"
    )
