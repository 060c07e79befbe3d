"""Benchmark the live daemon: CPU share, peak RSS and window-to-event latency.

Replays a recording through the real live path (ring buffer, windows, model, events, sinks)
paced at real time, as a microphone would deliver it, for each overlap asked for::

    python -m birdnet_edge.bench.live_bench --seconds 60 --overlap 0 2.0

CPU share is process CPU time over wall time (100 % = one core busy). Latency runs from the
moment a window's last sample was captured to the moment its events left the pipeline.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from birdnet_edge.bench import rss_mb
from birdnet_edge.config import AnalysisConfig, Config, ModelConfig
from birdnet_edge.daemon.service import Daemon, RunOptions


def measure(
    audio: Path, overlap: float, seconds: float, model_dir: Path | None
) -> dict[str, float]:
    cfg = Config(
        model=ModelConfig(dir=model_dir),
        analysis=AnalysisConfig(overlap=overlap, min_confidence=0.5),
    )
    daemon = Daemon(cfg, RunOptions(input_file=audio, console=False))
    thread = threading.Thread(target=daemon.run, daemon=True)
    cpu0, wall0 = time.process_time(), time.monotonic()
    thread.start()
    daemon.stop_event.wait(seconds)
    daemon.stop_event.set()
    thread.join(10)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    lat = sorted(daemon.listener.stats.latencies)
    return {
        "overlap_s": overlap,
        "audio_s": round(wall, 1),
        "windows": daemon.listener.stats.windows,
        "cpu_percent_of_one_core": round(100 * cpu / wall, 1),
        "rss_mb": round(rss_mb(), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "latency_median_ms": round(1000 * statistics.median(lat), 1) if lat else float("nan"),
        "latency_p95_ms": round(1000 * lat[int(0.95 * (len(lat) - 1))], 1) if lat else float("nan"),
    }


def _measure_in_child(args: argparse.Namespace, overlap: float) -> dict[str, float]:
    cmd = [
        sys.executable,
        "-m",
        "birdnet_edge.bench.live_bench",
        "--in-process",
        "--audio",
        str(args.audio),
        "--seconds",
        str(args.seconds),
        "--overlap",
        str(overlap),
    ]
    if args.model_dir:
        cmd += ["--model-dir", str(args.model_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        raise SystemExit(f"live_bench: the run at overlap {overlap:g} s failed: {lines[-1]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, default=Path("../shared/data/soundscape.flac"))
    parser.add_argument("--seconds", type=float, default=60.0, help="real-time audio per run")
    parser.add_argument("--overlap", type=float, nargs="+", default=[0.0, 2.0])
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process:  # one overlap, in this process: its RSS is the daemon's own
        print(json.dumps(measure(args.audio, args.overlap[0], args.seconds, args.model_dir)))
        return
    results = [_measure_in_child(args, o) for o in args.overlap]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"live daemon, {args.seconds:g} s of real-time replay of {args.audio.name} per overlap")
    print(
        f"{'overlap':>8} {'windows':>8} {'CPU %':>7} {'RSS MB':>7} {'peak MB':>8} "
        f"{'lat med ms':>11} {'lat p95 ms':>11}"
    )
    for r in results:
        print(
            f"{r['overlap_s']:>8g} {r['windows']:>8g} {r['cpu_percent_of_one_core']:>7g} "
            f"{r['rss_mb']:>7g} {r['peak_rss_mb']:>8g} {r['latency_median_ms']:>11g} "
            f"{r['latency_p95_ms']:>11g}"
        )


if __name__ == "__main__":
    main()
