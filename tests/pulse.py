"""A real PulseAudio server with a null sink: a microphone stream without hardware.

Audio played into the sink with ``paplay`` comes out of its monitor source in real time; a
capture through ALSA's ``pulse`` device with ``PULSE_SOURCE=<sink>.monitor`` receives it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SINK = "virt"


class PulseServer:
    """Start, stop and restart a private pulseaudio with a 48 kHz mono null sink."""

    def __init__(self, runtime_dir: Path) -> None:
        self.runtime_dir = runtime_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {
            **os.environ,
            "XDG_RUNTIME_DIR": str(runtime_dir),
            "PULSE_SOURCE": f"{SINK}.monitor",
            "HOME": str(runtime_dir),
        }

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "pulseaudio",
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "-L",
                "module-native-protocol-unix",
                "-L",
                f"module-null-sink sink_name={SINK} rate=48000 channels=1",
            ],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            ok = (
                subprocess.run(
                    ["pactl", "info"], env=self.env, capture_output=True, check=False
                ).returncode
                == 0
            )
            if ok:
                return
            time.sleep(0.2)
        raise RuntimeError("pulseaudio did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def unload_sink(self) -> None:
        """Take the null sink (and so the capture device's source) away, like an unplug."""
        subprocess.run(["pactl", "unload-module", "module-null-sink"], env=self.env, check=True)

    def load_sink(self) -> None:
        """Bring the null sink back, like plugging the microphone in again."""
        subprocess.run(
            ["pactl", "load-module", "module-null-sink", f"sink_name={SINK}", "rate=48000",
             "channels=1"],
            env=self.env, check=True, capture_output=True,
        )  # fmt: skip

    def play(self, path: Path, seconds: float | None = None) -> subprocess.Popen[bytes]:
        """Start playing ``path`` into the sink (in real time); returns the paplay process."""
        # A player asking for little latency: the null sink renders as far ahead as its slowest
        # client asks (paplay's default: 2 s; a capture with 0.5 s blocks: 0.5 s), and its
        # monitor then hands out audio before it is "played" and drops the head of a playback
        # that starts meanwhile. A real microphone does neither.
        return subprocess.Popen(
            ["paplay", "--latency-msec=20", "-d", SINK, str(path)], env=self.env
        )


@pytest.fixture
def pulse(tmp_path: Path) -> Iterator[PulseServer]:
    for tool in ("pulseaudio", "paplay", "pactl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install pulseaudio pulseaudio-utils)")
    runtime = tmp_path / "xdg-runtime"
    runtime.mkdir(mode=0o700)
    server = PulseServer(runtime)
    server.start()
    try:
        yield server
    finally:
        server.stop()
