"""Log lines: journald gets syslog priority prefixes and no timestamps of our own."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from birdnet_edge.cli.stderr_logging import setup_logging

_LOG_THREE = """
import logging
from birdnet_edge.cli.stderr_logging import setup_logging
setup_logging()
log = logging.getLogger("birdnet_edge.test")
log.error("microphone %s is gone", "USB")
log.warning("disk full")
log.info("microphone %s is back", "USB")
"""


def _stderr_of(tmp_path: Path, journal_stream: str | None) -> str:
    """What the three log calls write to a stderr that is the file ``err``."""
    err = tmp_path / "err"
    with err.open("w") as f:
        st = os.fstat(f.fileno())
        env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
        if journal_stream is not None:
            env["JOURNAL_STREAM"] = journal_stream.format(dev=st.st_dev, ino=st.st_ino)
        subprocess.run([sys.executable, "-c", _LOG_THREE], stderr=f, env=env, check=True)
    return err.read_text()


def test_journald_lines_carry_the_priority(tmp_path: Path) -> None:
    assert _stderr_of(tmp_path, "{dev}:{ino}") == (
        "<3>birdnet_edge.test: microphone USB is gone\n"
        "<4>birdnet_edge.test: disk full\n"
        "<6>birdnet_edge.test: microphone USB is back\n"
    )


def test_an_inherited_journal_stream_is_not_taken_for_the_journal(tmp_path: Path) -> None:
    # A terminal opened from a systemd user session: JOURNAL_STREAM names another stream.
    lines = _stderr_of(tmp_path, "{dev}:1").splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "ERROR birdnet_edge.test: microphone USB is gone",
        "WARNING birdnet_edge.test: disk full",
        "INFO birdnet_edge.test: microphone USB is back",
    ]


def test_terminal_lines_have_time_and_level(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    setup_logging()
    logging.getLogger("birdnet_edge.test").warning("disk full")
    line = capsys.readouterr().err
    assert line.endswith(" WARNING birdnet_edge.test: disk full\n")
    assert line[2] == ":"  # HH:MM:SS first
