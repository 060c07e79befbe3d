"""End to end: the daemon (`birdnet-edge run`) replaying a recording writes the SQLite log; the
review commands read it back; a SIGKILL mid-run loses nothing the console had reported.

These need the installed model and the shared soundscape, and skip (with the reason) while
`run` does not write the database yet.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import local_time_zone
from tests.test_store_review import run_log

pytestmark = [pytest.mark.model, pytest.mark.slow]

START = "2025-05-01T06:00:00+02:00"  # the replay's first sample, station local time
ZONE = "Europe/Berlin"  # UTC+2 in May
# BirdNET-Analyzer's case 1 (species list, min confidence 0.5): six windows, each its own event
# (the hits of one species are more than gap_seconds apart).
EXPECTED = {  # common name: (events, max confidence, first, last heard (local))
    "House Finch": (3, 0.6394, "06:00:09", "06:01:12"),
    "Dark-eyed Junco": (2, 0.7375, "06:00:42", "06:01:00"),
    "Black-capped Chickadee": (1, 0.8141, "06:00:00", "06:00:00"),
}


def write_config(directory: Path, model_dir: Path, data_dir: Path) -> Path:
    cfg = directory / "config.yaml"
    cfg.write_text(
        # BirdNET-Analyzer's grid, so the events are its case-1 windows.
        "analysis:\n  min_confidence: 0.5\n  overlap: 0\n  refine: {enabled: false}\n"
        f"filters:\n  species_list: {data_dir / 'bna-2.4-expected' / 'species_list.txt'}\n"
        f"database:\n  path: {directory / 'detections.db'}\n"
        f"model:\n  dir: {model_dir}\n",
        encoding="utf-8",
    )
    return cfg


def daemon(cfg: Path, audio: Path, start: str) -> list[str]:
    return [
        sys.executable, "-m", "birdnet_edge", "run", "--input", str(audio), "--fast",
        "--config", str(cfg), "--start-time", start,
    ]  # fmt: skip


def env() -> dict[str, str]:
    return {**os.environ, "TZ": ZONE}


def require_db(path: Path, stderr: str) -> None:
    if not path.exists():
        pytest.skip(
            "`birdnet-edge run` did not create database.path: the SQLite sink is not wired into "
            f"the service yet ({stderr.strip().splitlines()[-1:] or ''})"
        )


@pytest.fixture(scope="module")
def replayed(
    tmp_path_factory: pytest.TempPathFactory, model_dir: Path, data_dir: Path, soundscape: Path
) -> tuple[Path, list[str]]:
    """The database after replaying the soundscape once; and the console lines."""
    directory = tmp_path_factory.mktemp("e2e")
    cfg = write_config(directory, model_dir, data_dir)
    done = subprocess.run(
        daemon(cfg, soundscape, START), capture_output=True, text=True, timeout=300,
        env=env(), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    db = directory / "detections.db"
    require_db(db, done.stderr)
    return db, done.stdout.splitlines()


@pytest.fixture
def berlin() -> Iterator[None]:
    """The station's time zone for this process too (naive --since/--until are local)."""
    with local_time_zone(ZONE):
        yield


def test_every_console_event_is_in_the_log(replayed: tuple[Path, list[str]]) -> None:
    db, console = replayed
    assert len(console) == 6
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT start_utc, utc_offset_min, common, confidence, windows, closed, station, model, "
        "precision, min_confidence FROM detections ORDER BY start_utc"
    ).fetchall()
    conn.close()
    assert len(rows) == 6
    for line, (start, offset, common, conf, windows, closed, station, model, prec, mc) in zip(
        console, rows, strict=True
    ):
        local = dt.datetime.strptime(start, "%Y-%m-%dT%H:%M:%S.%f%z") + dt.timedelta(minutes=offset)
        assert line.startswith(f"{local:%Y-%m-%d %H:%M:%S} {common} (")
        assert offset == 120
        assert (windows, closed, station, mc) == (1, 1, "garden", 0.5)
        assert model.startswith("BirdNET_GLOBAL_6K_V2.4_Model_FP32")
        assert prec.lower() == "fp32"
        assert f"{conf:.2f}" == line.rsplit(" ", 1)[1]


def test_review_commands_on_the_replayed_soundscape(
    replayed: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str], berlin: None
) -> None:
    db, console = replayed
    _, out, err = run_log(["log", "--db", str(db)], capsys)
    assert err == ""
    listed = out.splitlines()[1:]
    assert [line.split("  ")[0] for line in listed] == [line[:19] for line in console]

    _, out, _ = run_log(["log", "summary", "--db", str(db), "--format", "json"], capsys)
    summary = {s["common"]: s for s in json.loads(out)}
    assert list(summary) == list(EXPECTED), "sorted by count"
    for common, (count, conf, first, last) in EXPECTED.items():
        s = summary[common]
        assert s["count"] == count
        assert s["max_confidence"] == pytest.approx(conf, abs=2e-4)
        assert s["first"] == f"2025-05-01T{first}.000+02:00"
        assert s["last"] == f"2025-05-01T{last}.000+02:00"

    _, out, _ = run_log(["log", "--db", str(db), "--species", "JUNCO", "--format", "csv"], capsys)
    assert [r["start"] for r in csv.DictReader(io.StringIO(out))] == [
        "2025-05-01T06:00:42.000+02:00", "2025-05-01T06:01:00.000+02:00",
    ]  # fmt: skip
    _, out, _ = run_log(["log", "--db", str(db), "--min-conf", "0.7", "--format", "json"], capsys)
    assert [r["common"] for r in json.loads(out)] == ["Black-capped Chickadee", "Dark-eyed Junco"]
    _, out, _ = run_log(
        ["log", "--db", str(db), "--since", "2025-05-01 06:00:30", "--until", "2025-05-01 06:01",
         "--format", "json"],
        capsys,
    )  # fmt: skip
    assert [r["common"] for r in json.loads(out)] == ["Dark-eyed Junco", "House Finch"]
    _, out, _ = run_log(
        ["log", "summary", "--db", str(db), "--species", "finch", "--hourly"], capsys
    )
    assert out.splitlines()[1 + 6].split()[-1] == "3"  # 06 h local
    _, out, _ = run_log(["log", "export", "--db", str(db), "--format", "jsonl", "--utc"], capsys)
    exported = [json.loads(line) for line in out.splitlines()]
    assert len(exported) == 6
    assert exported[0]["start"] == "2025-05-01T04:00:00.000Z"


def _cli_has_log() -> bool:
    from birdnet_edge.cli.main import build_parser

    return any(
        isinstance(a, argparse._SubParsersAction) and "log" in a.choices
        for a in build_parser()._actions
    )


@pytest.mark.skipif(not _cli_has_log(), reason="`log` is not yet registered in cli.py")
def test_log_command_line_while_daemon_database_exists(
    replayed: tuple[Path, list[str]],
) -> None:
    db, _ = replayed
    done = subprocess.run(
        [sys.executable, "-m", "birdnet_edge", "log", "summary", "--db", str(db)],
        capture_output=True, text=True, env=env(), timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split()[:3] == ["House", "Finch", "Haemorhous"]
    assert done.stdout.splitlines()[-1] == "6 detections of 3 species"


def _repeat(soundscape: Path, times: int, target: Path) -> Path:
    import soundfile as sf

    audio, rate = sf.read(soundscape, dtype="int16")
    sf.write(target, np.tile(audio, times), rate)
    return target


def test_sigkill_mid_replay_loses_no_reported_event(
    tmp_path: Path, model_dir: Path, data_dir: Path, soundscape: Path
) -> None:
    cfg = write_config(tmp_path, model_dir, data_dir)
    db = tmp_path / "detections.db"
    long = _repeat(soundscape, 5, tmp_path / "long.flac")  # 10 minutes, 30 events
    proc = subprocess.Popen(
        daemon(cfg, long, START), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env(),
    )  # fmt: skip
    assert proc.stdout is not None
    stdout = proc.stdout
    lines: list[tuple[float, str]] = []  # (when it arrived, console line)
    eighth = threading.Event()

    def read() -> None:
        for line in stdout:
            lines.append((time.monotonic(), line.rstrip("\n")))
            if len(lines) == 8:
                eighth.set()
        eighth.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert eighth.wait(120)
    time.sleep(0.5)  # mid-run: more windows, events and commits happen meanwhile
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    reader.join(10)
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    require_db(db, stderr)
    assert 8 <= len(lines) < 30, "killed mid-run, after the eighth event"

    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {
        (dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%f%z") + dt.timedelta(minutes=o)).strftime(
            "%Y-%m-%d %H:%M:%S "
        )
        + c
        for s, o, c in conn.execute("SELECT start_utc, utc_offset_min, common FROM detections")
    }
    count = conn.execute("SELECT count(*) FROM detections").fetchone()[0]
    conn.close()

    # The console prints an event only once its row is committed, so every event it
    # reported, up to the instant of the kill, is in the file.
    assert len(lines) >= 8
    assert [line for _t, line in lines if line.split(" (", 1)[0] not in stored] == []

    # The restarted daemon continues with the same file.
    done = subprocess.run(
        daemon(cfg, soundscape, "2025-05-02T06:00:00+02:00"), capture_output=True, text=True,
        timeout=300, env=env(), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM detections").fetchone()[0] == count + 6
    assert conn.execute("SELECT count(*) FROM detections WHERE closed = 0").fetchone()[0] == 0
    conn.close()
