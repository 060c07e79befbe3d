"""BirdNET-Analyzer parity at a file's end: a zero-padded last window ends where the file does."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile

from birdnet_edge.audio.decode import iter_audio
from birdnet_edge.audio.replay import FileSource
from birdnet_edge.audio.ring import RingBuffer
from birdnet_edge.config import AnalysisConfig, Config, ModelConfig
from birdnet_edge.detect.events import EventTracker
from birdnet_edge.detect.listener import Listener
from birdnet_edge.detect.recordings import window_end
from birdnet_edge.detect.stack import load_detector
from birdnet_edge.log.record import DetectionContext
from tests.conftest import run_cli
from tests.listsink import ListSink

SR = 48_000


def test_a_padded_window_ends_at_the_files_end_rounded_like_birdnet_analyzer() -> None:
    assert window_end(0, 3 * SR) == 3.0
    assert window_end(69 * SR, round(2.048 * SR)) == 71.05  # 71.048 s, to 2 decimals
    assert window_end(69 * SR, round(1.5 * SR)) == 70.5


@pytest.fixture(scope="module")
def short_file(soundscape: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The soundscape's first 71.048 s: the window at 69 s holds 2.048 s of audio."""
    audio = np.concatenate(list(iter_audio(soundscape)))[: round(71.048 * SR)]
    path = tmp_path_factory.mktemp("end") / "short.wav"
    soundfile.write(path, audio, SR, subtype="FLOAT")
    return path


@pytest.mark.model
@pytest.mark.parametrize("fmt", ["csv", "raven"])
def test_analyze_reports_the_files_end_for_the_last_window(
    short_file: Path, model_dir: Path, fmt: str
) -> None:
    proc = run_cli(
        ["analyze", str(short_file), "--model-dir", str(model_dir), "--min-conf", "0.01",
         "--format", fmt]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = proc.stdout.splitlines()[1:]
    sep, begin, end = ("\t", 3, 4) if fmt == "raven" else (",", 0, 1)
    times = {(r.split(sep)[begin], r.split(sep)[end]) for r in rows}
    assert ("69.0", "71.05") in times
    assert ("66.0", "69.0") in times
    assert not any(e == "72.0" for _, e in times)


@pytest.mark.model
def test_a_replays_last_event_ends_at_the_files_end(short_file: Path, model_dir: Path) -> None:
    cfg = Config(
        model=ModelConfig(dir=model_dir),
        analysis=AnalysisConfig(min_confidence=0.01, overlap=0.0),
    )
    detector = load_detector(cfg)
    start = dt.datetime(2026, 5, 1, 5, 0, tzinfo=dt.timezone.utc)
    source = FileSource(short_file, RingBuffer(SR * 20), fast=True, start_time=start.timestamp())
    context = DetectionContext("test", None, None, "m", "FP32", 1.0, 0.0, 0.01)
    sink = ListSink()
    Listener(source, detector, EventTracker(context), sink).run(threading.Event())
    ends = [(c.detection.end - start).total_seconds() for c in sink.changes if c.kind == "closed"]
    assert max(ends) == pytest.approx(71.048, abs=1e-3)


@pytest.mark.model
def test_analyze_top_n_reports_each_windows_best_labels_within_the_list(
    soundscape: Path, model_dir: Path, data_dir: Path
) -> None:
    species = data_dir / "bna-2.4-expected" / "species_list.txt"
    common = ["analyze", str(soundscape), "--model-dir", str(model_dir)]
    common += ["--species-list", str(species)]
    top = run_cli([*common, "--top-n", "2", "--min-conf", "0.9"])
    everything = run_cli([*common, "--min-conf", "0.01"])
    assert top.returncode == 0, top.stderr
    assert everything.returncode == 0, everything.stderr
    top_rows = [r.split(",") for r in top.stdout.splitlines()[1:]]
    all_rows = [r.split(",") for r in everything.stdout.splitlines()[1:]]
    allowed = {line.split("_")[0] for line in species.read_text().splitlines() if line}
    by_window: dict[str, list[list[str]]] = {}
    for r in top_rows:
        by_window.setdefault(r[0], []).append(r)
    assert len(by_window) == 40  # every window, though --min-conf 0.9 would keep few
    for start, rows in by_window.items():
        assert len(rows) == 2
        assert all(r[2] in allowed for r in rows)
        best = [r for r in all_rows if r[0] == start][:2]  # analyze sorts best first
        assert rows[: len(best)] == best
        assert all(float(r[4]) < 0.01 for r in rows[len(best) :])
    assert any(float(r[4]) < 0.9 for r in top_rows)
