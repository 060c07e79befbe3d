"""Non-bird sounds, voices and noise on real model outputs: what passes as a bird, and what not.

Audio is made in the test: speech with espeak-ng (its female voice, which BirdNET hears as
``Human vocal`` at 0.2-0.6; the default voice scores below 0.1) and a wailing siren, each mixed
into the shared soundscape.
"""

from __future__ import annotations

import csv
import io
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from birdnet_edge.audio.format import SAMPLE_RATE
from birdnet_edge.audio.replay import FileSource
from birdnet_edge.audio.ring import RingBuffer
from birdnet_edge.config import (
    AnalysisConfig,
    Config,
    FiltersConfig,
    ModelConfig,
    PrivacyConfig,
    RefineConfig,
)
from birdnet_edge.detect.events import EventTracker
from birdnet_edge.detect.listener import Listener
from birdnet_edge.detect.stack import load_detector
from birdnet_edge.log.record import DetectionContext
from tests.broker import Broker, subscriber
from tests.conftest import run_cli
from tests.listsink import ListSink
from tests.mixing import SPEECH_AT, excerpt, mix, write_wav

pytestmark = pytest.mark.model

Row = tuple[float, str]


def _wail(seconds: float) -> np.ndarray:
    """A wailing siren: 600-1400 Hz and back every 4 s."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    freq = 1000 + 400 * np.sin(2 * np.pi * 0.25 * t)
    return np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE).astype(np.float32)


def _analyze(audio: Path, model_dir: Path, *options: str, config: Path | None = None) -> list[Row]:
    args = ["analyze", str(audio), "--model-dir", str(model_dir), "--min-conf", "0.25"]
    args += ["--overlap", "0", *options]
    if config is not None:
        args += ["-c", str(config)]
    proc = run_cli(args)
    assert proc.returncode == 0, proc.stderr
    return [
        (float(r["Start (s)"]), r["Common name"]) for r in csv.DictReader(io.StringIO(proc.stdout))
    ]


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_engine_is_reported_by_analyze_but_never_as_a_bird(
    soundscape: Path, model_dir: Path
) -> None:
    everything = _analyze(soundscape, model_dir)  # as BirdNET-Analyzer: every label
    assert (111.0, "Engine") in everything
    birds = _analyze(soundscape, model_dir, "--classes", "birds")
    assert birds == [row for row in everything if row[1] != "Engine"]


def _replay(audio: Path, cfg: Config) -> tuple[ListSink, Listener]:
    detector = load_detector(cfg)
    context = DetectionContext("test", None, None, "m", "FP32", 1.0, 0.0, 0.25)
    sink = ListSink()
    source = FileSource(audio, RingBuffer(SAMPLE_RATE * 60), fast=True)
    listener = Listener(source, detector, EventTracker(context), sink)
    listener.run(threading.Event())
    return sink, listener


def _daemon_config(model_dir: Path, *, drop: bool = False) -> Config:
    """The daemon's defaults, on BirdNET-Analyzer's grid and at its 0.25 threshold."""
    privacy = PrivacyConfig(drop_detections=drop)
    return Config(
        model=ModelConfig(dir=model_dir),
        analysis=AnalysisConfig(min_confidence=0.25, overlap=0.0, refine=RefineConfig(False)),
        filters=FiltersConfig(privacy=privacy),
    )


def test_the_daemon_with_its_defaults_logs_no_engine(soundscape: Path, model_dir: Path) -> None:
    sink, listener = _replay(soundscape, _daemon_config(model_dir))
    names = {c.detection.scientific for c in sink.changes}
    assert "Engine" not in names
    assert {"Poecile atricapillus", "Haemorhous mexicanus"} <= names  # the birds still are
    assert listener.gate.stats.private_windows == 0  # nobody speaks in the soundscape


def test_speech_is_private_and_dropping_takes_only_the_birds_around_it(
    soundscape: Path, model_dir: Path, speech: np.ndarray, tmp_path: Path
) -> None:
    base = excerpt(soundscape, 45.0)
    mixed = write_wav(tmp_path / "speech.wav", mix(base, speech, SPEECH_AT, 0.2))
    # Flagged where the voice is, through the daemon's path (privacy on by default).
    _, listener = _replay(mixed, _daemon_config(model_dir))
    assert listener.gate.stats.private_windows == 2  # 15-18 s and 18-21 s: the speech
    assert listener.gate.stats.dropped_private == 0  # by default, birds are kept
    keep = _analyze(mixed, model_dir, "--classes", "birds")
    drop_config = _config(tmp_path, "filters: {privacy: {drop_detections: true}}\n")
    dropped = _analyze(mixed, model_dir, "--classes", "birds", config=drop_config)
    # Private: the voice's windows (15-21 s) and 3 s after them; birds before it were reported.
    private = [row for row in keep if SPEECH_AT <= row[0] < 24.0]
    assert private, "a bird was heard right after the voice: the test can tell"
    assert dropped == [row for row in keep if row not in private]


def test_a_siren_suppresses_the_listed_species_for_the_configured_time(
    soundscape: Path, model_dir: Path, tmp_path: Path
) -> None:
    base = excerpt(soundscape, 45.0)
    mixed = write_wav(tmp_path / "siren.wav", mix(base, _wail(3.0), 6.0, 0.2))
    config = _config(
        tmp_path,
        "filters:\n  noise:\n    - {sounds: [Siren], threshold: 0.2, seconds: 15, "
        "species: [Dark-eyed Junco, Blue Jay]}\n",
    )
    plain = _analyze(mixed, model_dir, "--classes", "birds")
    ruled = _analyze(mixed, model_dir, "--classes", "birds", config=config)
    # The siren's window (6-9 s) and 15 s after its end: windows starting before 24 s.
    listed = {"Dark-eyed Junco", "Blue Jay"}
    suppressed = [row for row in plain if row[1] in listed and 6.0 <= row[0] < 24.0]
    assert suppressed, "a listed species was heard in that time: the test can tell"
    assert ruled == [row for row in plain if row not in suppressed]
    assert any(row[1] in listed and row[0] >= 24.0 for row in ruled), "and again after it"


def test_report_sounds_logs_and_publishes_them_as_sounds_only(
    soundscape: Path, model_dir: Path, tmp_path: Path, broker: Broker
) -> None:
    import json
    import os
    import sqlite3
    import sys

    from birdnet_edge.mqtt.discovery import Topics

    db = tmp_path / "d.db"
    config = _config(
        tmp_path,
        f"model: {{dir: {model_dir}}}\n"
        "analysis: {min_confidence: 0.25, overlap: 0, refine: {enabled: false}}\n"
        "filters: {report_sounds: true}\n"
        f"database: {{path: {db}}}\n"
        f"mqtt: {{enabled: true, host: {broker.host}, port: {broker.port}}}\n",
    )
    topics = Topics.for_station("garden")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    with subscriber(broker, [topics.sound, topics.detection, topics.event]) as sub:
        done = subprocess.run(
            [sys.executable, "-m", "birdnet_edge", "run", "--input", str(soundscape), "--fast",
             "--config", str(config)],
            capture_output=True, text=True, timeout=600, env=env, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT scientific, kind FROM detections").fetchall()
        sub.wait_for(lambda ms: any(m.topic == topics.sound for m in ms))
        sub.wait_for(lambda ms: len(ms) >= 3 * (len(rows) - 1) + 2)  # birds: 3 each; Engine: 2
    assert ("Engine", "sound") in rows
    assert all(kind == "bird" for name, kind in rows if name != "Engine")
    sounds = [json.loads(m.payload) for m in sub.on(topics.sound)]
    assert {m["common_name"] for m in sounds} == {"Engine"}
    assert [m["status"] for m in sounds] == ["open", "final"]
    birds = [json.loads(m.payload) for m in sub.on(topics.detection) + sub.on(topics.event)]
    assert birds
    assert "Engine" not in {m["common_name"] for m in birds}
    assert "sound: Engine" in done.stdout  # the console names it a sound
    listed = run_cli(["log", "--db", str(db), "--format", "json"])
    assert "Engine" not in listed.stdout  # the log shows animals...
    with_sounds = run_cli(["log", "--db", str(db), "--format", "json", "--sounds"])
    assert "Engine" in {d["common"] for d in json.loads(with_sounds.stdout)}  # ...or also sounds


def test_explain_says_what_became_of_each_label(
    soundscape: Path, model_dir: Path, tmp_path: Path
) -> None:
    import os
    import sys

    config = _config(
        tmp_path,
        f"model: {{dir: {model_dir}}}\nstation: {{latitude: 42.5, longitude: -76.45}}\n"
        "analysis: {min_confidence: 0.5, overlap: 0, refine: {enabled: false}}\n"
        f"filters: {{week: 4}}\ndatabase: {{path: {tmp_path / 'd.db'}}}\n",
    )
    repo = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": repo, "TZ": "America/New_York"}
    done = subprocess.run(
        [sys.executable, "-m", "birdnet_edge", "run", "--input", str(soundscape), "--fast",
         "--quiet", "--explain", "--config", str(config),
         "--start-time", "2026-01-25T03:00:00-05:00"],
        capture_output=True, text=True, timeout=600, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line.split(": ", 1)[1] for line in done.stderr.splitlines() if "listener: " in line]
    assert lines[0].startswith("03:00:00: Black-capped Chickadee 0.81 reported")
    assert "03:00:03: Black-capped Chickadee 0.31 below 0.50" in lines
    assert any(
        line.startswith("03:01:51: Engine 0.52 left out: not of a kind reported") for line in lines
    ), lines
    cuckoo = [line for line in lines if "Chestnut-winged Cuckoo" in line]
    assert cuckoo  # an Asian bird, below the threshold here: named with its score
