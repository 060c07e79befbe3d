"""A detection database that cannot be used stops the start with one line, not a silent run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from birdnet_edge.log.schema import open_database
from tests.conftest import REPO
from tests.storage import fill


def _run(db: Path, audio: Path, tmp_path: Path, prefix: list[str] | None = None) -> str:
    """`run --input` with ``db``; returns its one error line (and checks it failed)."""
    config = tmp_path / "config.yaml"
    config.write_text(f"database: {{path: {db}}}\nmodel: {{dir: {tmp_path / 'no-model'}}}\n")
    proc = subprocess.run(
        [*(prefix or []), sys.executable, "-m", "birdnet_edge", "run", "-c", str(config),
         "--input", str(audio), "--fast", "--quiet"],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("birdnet-edge: error: ")]
    return line


@pytest.fixture
def audio(tmp_path: Path) -> Path:
    import numpy as np
    import soundfile

    path = tmp_path / "quiet.wav"
    soundfile.write(path, np.zeros(48_000 * 4, dtype=np.float32), 48_000)
    return path


@pytest.fixture
def real_db(tmp_path: Path) -> Path:
    """A detection database made by the sink, with some pages to damage."""
    db = tmp_path / "state" / "detections.db"
    conn = open_database(db)
    conn.execute("CREATE TABLE padding (x)")
    conn.executemany("INSERT INTO padding VALUES (?)", [(b"x" * 1000,)] * 200)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return db


def test_a_damaged_database_is_refused_with_the_fix(
    real_db: Path, audio: Path, tmp_path: Path
) -> None:
    data = bytearray(real_db.read_bytes())
    data[100:4096] = b"\xff" * 3996  # the schema page, after the file header
    real_db.write_bytes(bytes(data))
    line = _run(real_db, audio, tmp_path)
    assert f"the detection database {real_db} is damaged" in line
    assert "move it away" in line


def test_a_truncated_database_is_refused(real_db: Path, audio: Path, tmp_path: Path) -> None:
    real_db.write_bytes(real_db.read_bytes()[:3000])
    line = _run(real_db, audio, tmp_path)
    assert str(real_db) in line
    assert "damaged" in line


def test_a_folder_is_refused(audio: Path, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    line = _run(folder, audio, tmp_path)
    assert f"database.path {folder} is a folder" in line


def test_an_unreadable_database_is_refused(real_db: Path, audio: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to take away root's permission override")
    real_db.chmod(0)
    # Root without CAP_DAC_OVERRIDE is held to the file's mode like any user.
    drop = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search", "--"]  # fmt: skip
    line = _run(real_db, audio, tmp_path, prefix=drop)
    assert "permission denied" in line
    assert str(real_db) in line


@pytest.fixture
def full_fs(tiny_fs: Path) -> Path:
    fill(tiny_fs)
    return tiny_fs


def test_a_full_disk_at_start_says_disk_full(full_fs: Path, audio: Path, tmp_path: Path) -> None:
    line = _run(full_fs / "detections.db", audio, tmp_path)
    assert "the disk is full" in line
    assert "fsck" not in line
