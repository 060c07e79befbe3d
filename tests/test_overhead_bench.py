"""The overhead benchmark's parts: its WAV copy holds the same samples, and its daemon run
replays every window and attributes CPU time to the daemon's own threads.

Figures are never asserted (the machines are shared and noisy); what is checked is that the
benchmark measures the thing it says it measures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from birdnet_edge.audio.decode import iter_audio
from birdnet_edge.bench.overhead import daemon_run, flac_cli_seconds, thread_cpu, write_wav
from birdnet_edge.log.queries import connect


def test_thread_cpu_sees_this_thread() -> None:
    import threading

    seen = thread_cpu()
    assert threading.get_native_id() in seen
    assert all(seconds >= 0 for seconds in seen.values())


def test_the_wav_copy_holds_exactly_the_recordings_samples(
    soundscape: Path, tmp_path: Path
) -> None:
    wav = tmp_path / "soundscape.wav"
    write_wav(soundscape, wav)
    flac = np.concatenate(list(iter_audio(soundscape)))
    copy = np.concatenate(list(iter_audio(wav)))
    assert len(copy) == len(flac) == 120 * 48_000
    assert np.array_equal(copy, flac)  # 16-bit in, 16-bit out: the comparison is fair


@pytest.mark.model
@pytest.mark.slow
def test_a_pipeline_only_run_scores_every_window_and_names_the_threads(
    soundscape: Path, model_dir: Path, tmp_path: Path
) -> None:
    db = tmp_path / "detections.db"
    run = daemon_run(soundscape, model_dir, None, 1, 2, None, db, without_model=True)
    assert run.windows == 2 * 40
    assert run.cpu > 0
    assert {"replay", "inference", "sqlite-writer"} <= set(run.threads)
    assert all(seconds >= 0 for seconds in run.threads.values())
    assert sum(run.threads.values()) <= run.cpu * 1.05 + 0.05  # parts never exceed the whole
    assert 0 < run.model_cpu < run.cpu  # the model's calls are timed inside the run
    assert run.events >= 1
    assert run.rss
    assert all(mb > 0 for mb in run.rss)
    conn = connect(db)  # the constant logits made detections, written as usual
    try:
        assert conn.execute("SELECT count(*) FROM detections").fetchone()[0] >= 1
    finally:
        conn.close()


def test_the_flac_reference_is_only_for_flac_files(soundscape: Path, tmp_path: Path) -> None:
    import shutil

    wav = tmp_path / "soundscape.wav"
    write_wav(soundscape, wav)
    assert flac_cli_seconds(wav) is None
    seconds = flac_cli_seconds(soundscape)
    assert (seconds is None) == (shutil.which("flac") is None)
    assert seconds is None or 0 < seconds < 60
