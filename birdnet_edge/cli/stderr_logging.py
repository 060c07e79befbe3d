"""Logging to stderr: plain lines on a terminal, syslog level prefixes under journald."""

from __future__ import annotations

import io
import logging
import os
import sys

_SYSLOG_LEVEL = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}


class JournalFormatter(logging.Formatter):
    """``<N>message``: journald reads the priority from the prefix and adds its own time."""

    def format(self, record: logging.LogRecord) -> str:
        level = _SYSLOG_LEVEL.get(record.levelno, 6)
        return f"<{level}>{super().format(record)}"


def stderr_is_journal() -> bool:
    """Whether stderr goes to journald: ``$JOURNAL_STREAM`` names its device and inode, as
    systemd documents. A shell started from a systemd user session inherits the variable with
    stderr on a terminal, where the prefixes would only be noise."""
    value = os.environ.get("JOURNAL_STREAM")
    if not value:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False
    return value == f"{st.st_dev}:{st.st_ino}"


def setup_logging(verbose: int = 0) -> None:
    """Configure the root logger once for the command line or the service."""
    level = logging.DEBUG if verbose > 0 else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    if stderr_is_journal():
        handler.setFormatter(JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
