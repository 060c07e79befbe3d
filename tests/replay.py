"""The daemon replaying a recording with clips on, into a database and its clips folder: for
the tests of clips and of what is made from them (``log show``, ``log report``)."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from birdnet_edge.config import (
    AnalysisConfig,
    ClipsConfig,
    Config,
    DatabaseConfig,
    ModelConfig,
    RefineConfig,
)
from birdnet_edge.daemon.service import Daemon, RunOptions

#: When the replayed recording starts (the clock the daemon is given).
START = dt.datetime(2026, 5, 1, 4, 30, tzinfo=dt.timezone.utc)


def replay(audio: Path, tmp_path: Path, model_dir: Path) -> Path:
    """The daemon replaying ``audio`` at full speed with clips on; returns its database
    (``tmp_path/d.db``, the clips in ``tmp_path/clips``)."""
    db = tmp_path / "d.db"
    cfg = Config(
        model=ModelConfig(dir=model_dir),
        analysis=AnalysisConfig(min_confidence=0.25, overlap=0.0, refine=RefineConfig(False)),
        database=DatabaseConfig(path=db),
        clips=ClipsConfig(enabled=True, pre=1.0, post=1.0),
    )
    options = RunOptions(input_file=audio, fast=True, console=False, start_time=START.timestamp())
    daemon = Daemon(cfg, options)
    thread = threading.Thread(target=daemon.run)
    thread.start()
    thread.join(300)
    assert not thread.is_alive()
    return db
