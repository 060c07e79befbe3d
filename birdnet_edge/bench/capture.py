"""Benchmark the capture path: CPU per 3 s window of each thread, beside ``arecord``.

Captures a live stream for ``--seconds`` with the daemon's :class:`MicrophoneSource` (its
PortAudio callback thread, PulseAudio's client thread and the polling thread that stands in for
the pipeline), then reads the same device for as long with ``arecord``, and prints each
thread's CPU time per 3 s of audio::

    python -m birdnet_edge.bench.capture --seconds 30            # a private PulseAudio null sink
    python -m birdnet_edge.bench.capture --device hw:1 --alsa hw:1  # a real card, both ways

Without ``--device`` it starts its own PulseAudio server with a null sink fed by ``paplay``
(white noise), the way the tests make a microphone without hardware; needs ``pulseaudio``,
``pactl``, ``paplay`` and ``arecord``. Figures are each thread's CPU time from
``/proc/<pid>/task/<tid>/schedstat``, so a busy machine disturbs them less than wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from birdnet_edge.audio.format import SAMPLE_RATE, WINDOW_SECONDS
from birdnet_edge.audio.microphone import MicrophoneSource
from birdnet_edge.audio.ring import RingBuffer

_TICKS = os.sysconf("SC_CLK_TCK")
SINK = "bench"
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class ThreadCPU:
    """One thread's CPU time over a capture, per 3 s window of audio."""

    name: str
    ms_per_window: float


def thread_times(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds and name of each thread of ``pid`` (the scheduler's nanosecond run time
    where the kernel keeps it, else user + system time in clock ticks)."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (task / "stat").read_text()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            try:
                cpu = int((task / "schedstat").read_text().split()[0]) / 1e9
            except (OSError, ValueError, IndexError):
                fields = stat[stat.rindex(")") + 2 :].split()
                cpu = (int(fields[11]) + int(fields[12])) / _TICKS
            found[int(task.name)] = (name, cpu)
    return found


def per_window(
    before: dict[int, tuple[str, float]],
    after: dict[int, tuple[str, float]],
    seconds: float,
    names: dict[int, str],
) -> list[ThreadCPU]:
    """The CPU each thread used between two samples, in ms per window of audio."""
    windows = seconds / WINDOW_SECONDS
    rows = []
    for tid, (name, cpu) in after.items():
        used = cpu - before.get(tid, (name, 0.0))[1]
        rows.append(ThreadCPU(names.get(tid, name), 1000 * used / windows))
    return sorted(rows, key=lambda r: -r.ms_per_window)


def capture_daemon_way(device: str, seconds: float) -> tuple[list[ThreadCPU], int]:
    """Capture with MicrophoneSource, polled as often as the pipeline polls it at the default
    overlap (a few times a window); returns each thread's CPU and the samples captured."""
    ring = RingBuffer(SAMPLE_RATE * 60)
    source = MicrophoneSource(ring, device=device)
    main = threading.get_native_id()
    source.start()
    deadline = time.monotonic() + 30
    while not source.running and time.monotonic() < deadline:
        source.poll()
        time.sleep(0.02)
    start_samples = ring.written
    before = thread_times(os.getpid())
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        source.poll()
        time.sleep(POLL_SECONDS)
    after = thread_times(os.getpid())
    wall = time.monotonic() - t0
    got = ring.written - start_samples
    source.stop()
    names = {main: "pipeline (polling)"}
    for tid, (name, _) in after.items():
        if tid not in before:
            continue
        if name.startswith("threaded-ml") or name.startswith("pulse"):
            names[tid] = f"PulseAudio client ({name})"
    busy = max(
        (tid for tid in after if tid != main and tid not in names),
        key=lambda t: after[t][1] - before.get(t, ("", 0.0))[1],
        default=None,
    )
    if busy is not None:
        names[busy] = "PortAudio callback"
    return per_window(before, after, wall, names), got


def capture_arecord(device: str, seconds: float) -> list[ThreadCPU]:
    """Read the same device with ``arecord`` (float32, 48 kHz mono, 0.1 s periods)."""
    proc = subprocess.Popen(
        ["arecord", "-q", "-D", device, "-f", "FLOAT_LE", "-c", "1", "-r", str(SAMPLE_RATE),
         "--period-size", str(SAMPLE_RATE // 10), "-t", "raw", "/dev/null"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(1.0)  # opened and streaming
        before = thread_times(proc.pid)
        t0 = time.monotonic()
        time.sleep(seconds)
        after = thread_times(proc.pid)
        wall = time.monotonic() - t0
    finally:
        proc.terminate()
        proc.wait(5)
    names = {proc.pid: "arecord"}
    for tid, (name, _) in after.items():
        if tid != proc.pid:
            names[tid] = f"arecord's PulseAudio client ({name})"
    return per_window(before, after, wall, names)


@contextlib.contextmanager
def null_sink_stream() -> Iterator[dict[str, str]]:
    """A private PulseAudio server whose null sink plays white noise; yields its environment."""
    for tool in ("pulseaudio", "pactl", "paplay"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt install pulseaudio pulseaudio-utils)")
    runtime = Path(tempfile.mkdtemp(prefix="birdnet-edge-capture-"))
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(runtime),
           "PULSE_SOURCE": f"{SINK}.monitor"}  # fmt: skip
    server = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "-L",
         "module-native-protocol-unix", "-L",
         f"module-null-sink sink_name={SINK} rate={SAMPLE_RATE} channels=1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    player = None
    try:
        deadline = time.monotonic() + 15
        info = ["pactl", "info"]
        while subprocess.run(info, env=env, capture_output=True, check=False).returncode:
            if time.monotonic() > deadline:
                raise SystemExit("pulseaudio did not start")
            time.sleep(0.2)
        noise = runtime / "noise.raw"
        rng = np.random.default_rng(0)
        noise.write_bytes((0.1 * rng.standard_normal(SAMPLE_RATE * 600)).astype("<f4").tobytes())
        player = subprocess.Popen(
            ["paplay", "--raw", "--format=float32le", f"--rate={SAMPLE_RATE}", "--channels=1",
             "-d", SINK, str(noise)],
            env=env,
        )  # fmt: skip
        saved = {k: os.environ.get(k) for k in ("XDG_RUNTIME_DIR", "HOME", "PULSE_SOURCE")}
        os.environ.update({k: env[k] for k in saved})
        try:
            yield env
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    finally:
        if player is not None:
            player.kill()
        server.kill()
        server.wait(10)
        shutil.rmtree(runtime, ignore_errors=True)


def _print(title: str, rows: list[ThreadCPU]) -> None:
    total = sum(r.ms_per_window for r in rows)
    print(f"{title}: {total:.1f} ms CPU per 3 s window")
    for r in rows:
        if r.ms_per_window >= 0.01:
            print(f"  {r.name:<44} {r.ms_per_window:6.2f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m birdnet_edge.bench.capture")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--device", help="PortAudio device (default: a private null sink)")
    parser.add_argument("--alsa", help="ALSA device for arecord (default: pulse)")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.device is None:
            stack.enter_context(null_sink_stream())
        device = args.device or "pulse"
        rows, got = capture_daemon_way(device, args.seconds)
        _print(f"birdnet-edge on {device!r} ({got / SAMPLE_RATE:.1f} s of audio captured)", rows)
        if shutil.which("arecord"):
            _print(
                f"arecord on {args.alsa or 'pulse'!r}",
                capture_arecord(args.alsa or "pulse", args.seconds),
            )
        else:
            print("arecord: not installed (apt install alsa-utils)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
