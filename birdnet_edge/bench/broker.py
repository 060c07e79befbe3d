"""A throw-away Mosquitto on a free loopback port, for the benchmarks that publish."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from birdnet_edge.errors import BirdnetEdgeError


def mosquitto() -> Path | None:
    """The broker's executable (Debian package ``mosquitto``), None when not installed."""
    found = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    return Path(found) if Path(found).is_file() else None


@contextmanager
def private_broker() -> Iterator[int]:
    """Start Mosquitto on a free loopback port; yields the port once it accepts connections."""
    binary = mosquitto()
    if binary is None:
        raise BirdnetEdgeError("mosquitto is not installed: apt install mosquitto")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        # as root, mosquitto would switch to its own user, which may not read the config
        user = "user root\n" if os.geteuid() == 0 else ""
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n{user}")
        proc = subprocess.Popen([str(binary), "-c", str(conf)], stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise BirdnetEdgeError("mosquitto did not start") from None
                    time.sleep(0.05)
            yield port
        finally:
            proc.terminate()
            proc.wait(10)
