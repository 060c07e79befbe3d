"""``birdnet-edge log play``: a clip played through the default audio output, heard on the
other side (a real PulseAudio null sink, recorded from its monitor)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from birdnet_edge.detect.events import EventChange
from birdnet_edge.log.writer import LogWriter
from tests.conftest import run_cli
from tests.pulse import SINK, PulseServer
from tests.test_sqlite_sink import make_event, shut

RATE = 48_000


def test_log_play_plays_the_clip_through_the_default_output(
    tmp_path: Path, pulse: PulseServer
) -> None:
    if shutil.which("parec") is None:
        pytest.skip("parec not installed (apt-get install pulseaudio-utils)")
    clip = "2026/05/01/050000_Poecile_atricapillus_test.flac"
    d = dataclasses.replace(shut(make_event()), clip=clip)
    db = tmp_path / "d.db"
    writer = LogWriter(db)
    writer.handle(EventChange("closed", d))
    assert writer.flush(10)
    writer.close()
    t = np.arange(2 * RATE) / RATE  # 2 s: a 3 kHz whistle rising and falling, then silence
    song = (8000 * np.sin(2 * np.pi * (3000 + 500 * np.sin(2 * np.pi * t)) * t)).astype(np.int16)
    path = tmp_path / "clips" / clip
    path.parent.mkdir(parents=True)
    soundfile.write(path, song, RATE, subtype="PCM_16")
    config = tmp_path / "c.yaml"
    config.write_text(f"database: {{path: {db}}}\n")

    recorded = tmp_path / "heard.raw"
    with open(recorded, "wb") as out:
        recorder = subprocess.Popen(
            ["parec", f"--device={SINK}.monitor", "--format=s16le", f"--rate={RATE}",
             "--channels=1", "--raw"],
            env=pulse.env, stdout=out,
        )  # fmt: skip
        try:
            played = run_cli(["log", "play", d.id[:8], "-c", str(config)], env=pulse.env)
        finally:
            recorder.terminate()
            recorder.wait(10)
    assert played.returncode == 0, played.stderr
    heard = np.fromfile(recorded, dtype=np.int16).astype(np.float64)
    # Find the song's second half in what was heard (the recorder may join a little late) and
    # compare its shape.
    tail = song[RATE:].astype(np.float64)
    assert len(heard) >= len(tail), "the monitor recorded while the clip played"
    n = 2 * len(heard)
    lags = np.fft.irfft(np.fft.rfft(heard, n) * np.conj(np.fft.rfft(tail, n)))
    lag = int(np.argmax(lags[: len(heard) - len(tail) + 1]))
    part = heard[lag : lag + len(tail)]
    similarity = float(part @ tail / np.sqrt((part @ part) * (tail @ tail)))
    assert similarity > 0.95, f"heard something else (correlation {similarity:.2f})"
