"""The recall benchmark's parts, and a short run of it on the shared soundscape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from birdnet_edge.audio.format import SAMPLE_RATE
from birdnet_edge.bench.recall import Bout, Heard, main, no_bird_sounds, parse_modes, recall


def test_recall_counts_bouts_overlapped_by_an_event_of_the_same_species() -> None:
    bouts = [Bout("A a", 0.0, 3.1), Bout("A a", 10.0, 14.0), Bout("B b", 20.0, 23.0)]
    heard = [
        Heard("A a", 3.0, 6.0),  # overlaps the first bout by 0.1 s
        Heard("B b", 10.0, 13.0),  # the right time, the wrong species
        Heard("A a", 14.0, 17.0),  # touches the second bout's end: no overlap
    ]
    assert recall(bouts, heard) == pytest.approx(1 / 3)
    assert recall(bouts, []) == 0.0
    assert np.isnan(recall([], heard))


def test_modes_and_sounds_without_birds() -> None:
    modes = parse_modes(["0", "1.5+refine"])
    assert [m.name for m in modes] == ["overlap 0", "overlap 1.5 + refine"]
    with pytest.raises(SystemExit, match="not OVERLAP"):
        parse_modes(["1.5+dense"])
    sounds = no_bird_sounds(2.0)
    assert {"pink noise", "wind", "engine", "siren", "horn"} <= set(sounds)
    for audio in sounds.values():
        assert len(audio) == 2 * SAMPLE_RATE
        assert audio.dtype == np.float32
        assert 0.001 < float(np.sqrt(np.mean(audio**2))) < 0.5


@pytest.mark.model
@pytest.mark.slow
def test_a_short_run_prints_recall_for_grid_and_refinement(
    soundscape: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--audio", str(soundscape), "--model-dir", str(model_dir)]
    args += ["--lat", "42.5", "--lon", "-76.45", "--week", "4", "--shifts", "0.5"]
    assert main([*args, "--modes", "0", "1.5+refine", "--no-bird-seconds", "3"]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert table[1].count("|") == table[0].count("|"), "a Markdown table: one --- per column"
    rows = {line.split("|")[1].strip(): line.split("|") for line in out.splitlines() if "|" in line}
    grid, refined = rows["overlap 0"], rows["overlap 1.5 + refine"]
    # At this shift the 3 s grid finds none of the dense analysis' bouts; refinement finds
    # at least 85 % of them.
    assert float(grid[3]) < 0.5
    assert float(refined[3]) >= 0.85
