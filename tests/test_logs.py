"""Log lines: journald gets syslog priority prefixes and no timestamps of our own."""

from __future__ import annotations

import logging

import pytest

from birdnet_edge.logs import setup_logging


@pytest.mark.parametrize(
    ("level", "prefix"), [(logging.ERROR, "<3>"), (logging.WARNING, "<4>"), (logging.INFO, "<6>")]
)
def test_journald_lines_carry_the_priority(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], level: int, prefix: str
) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    setup_logging()
    logging.getLogger("birdnet_edge.test").log(level, "microphone %s is back", "USB")
    assert capsys.readouterr().err == f"{prefix}birdnet_edge.test: microphone USB is back\n"


def test_terminal_lines_have_time_and_level(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    setup_logging()
    logging.getLogger("birdnet_edge.test").warning("disk full")
    line = capsys.readouterr().err
    assert line.endswith(" WARNING birdnet_edge.test: disk full\n")
    assert line[2] == ":"  # HH:MM:SS first
