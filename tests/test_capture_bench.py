"""The capture benchmark: per-thread CPU of the daemon's capture path beside arecord's."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("pulseaudio") is None or shutil.which("paplay") is None,
    reason="pulseaudio and paplay are needed (apt install pulseaudio pulseaudio-utils)",
)


def test_the_capture_benchmark_reports_each_thread_beside_arecord() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "birdnet_edge.bench.capture", "--seconds", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    captured = re.search(r"birdnet-edge on 'pulse' \(([\d.]+) s of audio captured\)", out)
    assert captured, out
    assert 2.5 <= float(captured.group(1)) <= 3.5  # the stream really delivered 3 s
    callback = re.search(r"PortAudio callback\s+([\d.]+) ms", out)
    assert callback, out
    assert float(callback.group(1)) > 0, out
    if shutil.which("arecord"):
        assert re.search(r"^arecord on 'pulse': [\d.]+ ms CPU per 3 s window", out, re.M), out
        assert re.search(r"^\s+arecord\s+[\d.]+ ms", out, re.M), out
