"""Benchmark what the daemon writes to its disk per day of audio: SD-card wear, clips on and off.

    python -m birdnet_edge.bench.writes --audio soundscape.flac --model-dir DIR --repeat 30

Replays the recording ``--repeat`` times at full speed through the whole daemon (its default
settings: the database, its WAL and, with clips, the clips and their spectrograms) into a fresh
folder on the disk under ``--dir``, reads the process's ``write_bytes`` from ``/proc/self/io``
(what reached the block layer: SQLite's fsyncs included) before and after, and scales it to a
day of audio. Also the clip writer's CPU per clip (encoding FLAC and drawing the spectrogram).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import threading
import time
from pathlib import Path

from birdnet_edge.audio.decode import file_duration
from birdnet_edge.config import ClipsConfig, Config, DatabaseConfig, ModelConfig
from birdnet_edge.daemon.service import Daemon, RunOptions

DAY = 86_400.0


def io_counters() -> dict[str, int]:
    """This process's I/O counters (Linux)."""
    with open("/proc/self/io", encoding="ascii") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


def thread_cpu(name: str) -> float:
    """CPU seconds of this process's threads named ``name`` (Linux ``/proc``)."""
    total = 0.0
    ids = {t.native_id for t in threading.enumerate() if t.name == name and t.native_id}
    for tid in ids:
        with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in ticks of 10 ms
    return total


def measure(
    audio: Path, model_dir: Path, repeat: int, workdir: Path, clips: bool
) -> dict[str, float]:
    db = workdir / "detections.db"
    cfg = Config(
        model=ModelConfig(dir=model_dir),
        database=DatabaseConfig(path=db),
        clips=dataclasses.replace(ClipsConfig(), enabled=clips),
    )
    daemon = Daemon(cfg, RunOptions(input_file=audio, fast=True, console=False, repeat=repeat))
    before = io_counters()
    started = time.monotonic()
    cpu = 0.0
    thread = threading.Thread(target=daemon.run, name="daemon")
    thread.start()
    while thread.is_alive():
        cpu = max(cpu, thread_cpu("clip-writer"))
        thread.join(0.2)
    after = io_counters()
    seconds = file_duration(audio) * repeat
    writer = daemon.clip_writer
    written = writer.written if writer is not None else 0
    return {
        "audio_hours": seconds / 3600,
        "wall_s": time.monotonic() - started,
        "write_bytes_per_day": (after["write_bytes"] - before["write_bytes"]) * DAY / seconds,
        "clips": float(written),
        "clip_cpu_ms": 1000 * cpu / written if written else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=30, help="plays of the recording")
    parser.add_argument("--dir", type=Path, default=Path.cwd(), help="where to write (a disk)")
    args = parser.parse_args()
    for clips in (False, True):
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            r = measure(args.audio, args.model_dir, args.repeat, Path(tmp), clips=clips)
        line = (
            f"clips {'on ' if clips else 'off'}: {r['audio_hours']:.1f} h of audio: "
            f"{r['write_bytes_per_day'] / 1e6:.1f} MB written per day of audio"
        )
        if clips:
            line += f"; {r['clips']:.0f} clips, {r['clip_cpu_ms']:.0f} ms CPU each (FLAC + PNG)"
        print(line)


if __name__ == "__main__":
    main()
