"""Clips: each detection's audio, cut from the ring the model read, written off the threads."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from birdnet_edge.audio.decode import iter_audio
from birdnet_edge.audio.format import SAMPLE_RATE
from birdnet_edge.clips import spectrogram
from birdnet_edge.clips.cutter import to_int16
from birdnet_edge.config import (
    AnalysisConfig,
    ClipsConfig,
    Config,
    DatabaseConfig,
    ModelConfig,
    RefineConfig,
)
from birdnet_edge.daemon.service import Daemon, RunOptions
from birdnet_edge.log.record import parse_utc
from tests.broker import Broker
from tests.mixing import SPEECH_AT, excerpt, mix, write_wav
from tests.replay import START, replay

pytestmark = pytest.mark.model


def _rows(db: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT scientific, start_utc, end_utc, clip FROM detections ORDER BY start_utc"
        ).fetchall()


def _sample(text: str) -> int:
    return round((parse_utc(text) - START).total_seconds() * SAMPLE_RATE)


def test_each_clip_is_the_scored_audio_bit_for_bit(
    soundscape: Path, model_dir: Path, tmp_path: Path
) -> None:
    source = to_int16(np.concatenate(list(iter_audio(soundscape))))
    db = replay(soundscape, tmp_path, model_dir)
    rows = _rows(db)
    assert len(rows) >= 10
    assert all(clip for *_, clip in rows), "every bird detection has a clip"
    for scientific, start, end, clip in rows:
        path = tmp_path / "clips" / clip
        assert path.is_file(), clip
        assert clip.startswith("2026/05/01/") or clip.startswith("2026/04/30/")
        assert scientific.replace(" ", "_") in clip
        audio, rate = soundfile.read(path, dtype="int16")
        assert rate == SAMPLE_RATE
        first = max(0, _sample(start) - SAMPLE_RATE)
        last = min(len(source), _sample(end) + SAMPLE_RATE)
        assert np.array_equal(audio, source[first:last]), (clip, len(audio), last - first)
        with Image.open(path.with_suffix(".png")) as picture:  # the spectrogram beside it
            assert picture.format == "PNG"
            width = spectrogram.LEFT + round(len(audio) / SAMPLE_RATE * 100) + spectrogram.RIGHT
            assert picture.size == (width, spectrogram.TOP + 256 + spectrogram.BOTTOM)
    assert not list((tmp_path / "clips").rglob("*.part"))


def test_no_clip_holds_a_voice(
    soundscape: Path, model_dir: Path, tmp_path: Path, speech: np.ndarray,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="birdnet_edge.clips")
    base = excerpt(soundscape, 45.0)
    mixed = write_wav(tmp_path / "speech.wav", mix(base, speech, SPEECH_AT, 0.2))
    db = replay(mixed, tmp_path, model_dir)
    rows = _rows(db)
    voice = (round(SPEECH_AT * SAMPLE_RATE), round((SPEECH_AT + 6.4) * SAMPLE_RATE))
    kept = [(s, e) for _, s, e, clip in rows if clip]
    assert kept, "clips away from the voice are kept"
    for start, end in kept:  # each clip's span, with its pre and post roll
        first, last = _sample(start) - SAMPLE_RATE, _sample(end) + SAMPLE_RATE
        # Not the voice, nor 3 s (privacy.seconds) either side of the windows it was heard in.
        assert last <= voice[0] - 3 * SAMPLE_RATE or first >= 24 * SAMPLE_RATE, (start, end)
    assert any(clip is None for *_, clip in rows), "the Blue Jay right after the voice: no clip"
    assert "no clip of Blue Jay" in caplog.text
    assert "a human sound was heard within the privacy filter's reach" in caplog.text


def test_log_lists_shows_and_refuses_to_play_what_is_not_there(
    soundscape: Path, model_dir: Path, tmp_path: Path
) -> None:
    from tests.conftest import run_cli

    db = replay(soundscape, tmp_path, model_dir)
    listed = run_cli(["log", "--db", str(db), "--limit", "3"]).stdout.splitlines()
    assert listed[0].endswith("clip (id)")
    short = listed[1].split()[-1]
    assert len(short) == 8
    config = tmp_path / "c.yaml"
    config.write_text(f"database: {{path: {db}}}\n")
    shown = run_cli(["log", "show", short, "-c", str(config)])
    assert shown.returncode == 0, shown.stderr
    clip_line = shown.stdout.splitlines()[1]
    assert clip_line.startswith(f"clip: {tmp_path / 'clips'}")
    assert clip_line.endswith(".flac")
    unknown = run_cli(["log", "show", "ffffffff", "-c", str(config)])
    assert unknown.returncode == 2
    assert "no detection with id 'ffffffff'" in unknown.stderr
    Path(clip_line.split("clip: ", 1)[1]).unlink()  # deleted (the budget, or by hand)
    assert "(missing" in run_cli(["log", "show", short, "-c", str(config)]).stdout
    gone = run_cli(["log", "play", short, "-c", str(config)])
    assert gone.returncode == 2
    assert "is kept" in gone.stderr


def test_home_assistant_shows_the_last_spectrogram(
    soundscape: Path, model_dir: Path, tmp_path: Path, broker: Broker
) -> None:
    import json

    from birdnet_edge.config import MQTTConfig
    from birdnet_edge.mqtt.discovery import Topics
    from tests.broker import retained

    db = tmp_path / "d.db"
    cfg = Config(
        model=ModelConfig(dir=model_dir),
        analysis=AnalysisConfig(min_confidence=0.5, overlap=0.0, refine=RefineConfig(False)),
        database=DatabaseConfig(path=db),
        clips=ClipsConfig(enabled=True),
        mqtt=MQTTConfig(enabled=True, host=broker.host, port=broker.port),
    )
    options = RunOptions(
        input_file=soundscape, fast=True, console=False, start_time=START.timestamp()
    )
    Daemon(cfg, options).run()
    topics = Topics.for_station("garden")
    png = retained(broker, topics.image)
    assert png is not None
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    config = retained(broker, "homeassistant/image/birdnet_edge_garden/last_spectrogram/config")
    assert config is not None
    assert json.loads(config)["image_topic"] == topics.image
    with sqlite3.connect(db) as conn:
        (last,) = conn.execute(
            "SELECT clip FROM detections WHERE clip IS NOT NULL ORDER BY end_utc DESC LIMIT 1"
        ).fetchone()
    assert (tmp_path / "clips" / last).with_suffix(".png").read_bytes() == png
