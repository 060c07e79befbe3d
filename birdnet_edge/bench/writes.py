"""Benchmark what the daemon writes to its disk per day of audio: SD-card wear, clips on and off.

    python -m birdnet_edge.bench.writes --audio soundscape.flac --model-dir DIR --repeat 30

Replays the recording ``--repeat`` times through the whole daemon (its default settings: the
database, its WAL and, with clips, the clips and their spectrograms) into a fresh folder on the
disk under ``--dir``, reads the process's ``write_bytes`` from ``/proc/self/io`` (what reached
the block layer) before and after, and scales it to a day of audio; the database's share is the
total less the clips' files. Also the database's synced commits per hour and the clip writer's
CPU per clip (encoding and drawing the spectrogram).

At full speed (the default) the database writer batches more windows into a commit than it can
in real time; ``--real-time`` paces the replay like a microphone (and takes as long as the audio).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import threading
import time
import typing
from pathlib import Path

from birdnet_edge.audio.decode import file_duration
from birdnet_edge.clips import FORMATS
from birdnet_edge.config import ClipFormat, ClipsConfig, Config, DatabaseConfig, ModelConfig
from birdnet_edge.daemon.service import Daemon, RunOptions
from birdnet_edge.log.schema import open_database

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


def clip_bytes(root: Path) -> int:
    """The bytes of the clips and spectrograms under ``root``."""
    if not root.is_dir():
        return 0
    return sum(p.stat().st_size for p in root.rglob("*") if p.suffix in {*FORMATS, ".png"})


def measure(
    audio: Path,
    model_dir: Path,
    repeat: int,
    workdir: Path,
    *,
    clips: bool,
    real_time: bool = False,
    clip_format: ClipFormat = "flac",
) -> dict[str, float]:
    db = workdir / "detections.db"
    cfg = Config(
        model=ModelConfig(dir=model_dir),
        database=DatabaseConfig(path=db),
        clips=dataclasses.replace(ClipsConfig(), enabled=clips, format=clip_format),
    )
    open_database(db).close()  # a new database's schema is written once, not every day
    options = RunOptions(input_file=audio, fast=not real_time, console=False, repeat=repeat)
    daemon = Daemon(cfg, options)
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
    total = after["write_bytes"] - before["write_bytes"]
    in_clips = clip_bytes(workdir / "clips")
    return {
        "audio_hours": seconds / 3600,
        "wall_s": time.monotonic() - started,
        "write_bytes_per_day": total * DAY / seconds,
        "database_bytes_per_day": (total - in_clips) * DAY / seconds,
        "commits_per_hour": daemon.sqlite.commits * 3600 / seconds,
        "clips": float(written),
        "clip_bytes_per_day": in_clips * DAY / seconds,
        "clip_cpu_ms": 1000 * cpu / written if written else 0.0,
    }


def report(r: dict[str, float], clips: bool) -> str:
    """One line of figures."""
    mb = 1e6
    parts = [f"database {r['database_bytes_per_day'] / mb:.0f} MB"]
    if clips:
        parts.append(f"clips and spectrograms {r['clip_bytes_per_day'] / mb:.0f} MB")
    line = (
        f"clips {'on ' if clips else 'off'}: {r['audio_hours']:.1f} h of audio: "
        f"{r['write_bytes_per_day'] / mb:.0f} MB written per day of audio ({', '.join(parts)}); "
        f"{r['commits_per_hour']:.0f} synced commits an hour"
    )
    if clips:
        line += f"; {r['clips']:.0f} clips, {r['clip_cpu_ms']:.0f} ms CPU each"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=30, help="plays of the recording")
    parser.add_argument("--dir", type=Path, default=Path.cwd(), help="where to write (a disk)")
    parser.add_argument(
        "--real-time", action="store_true", help="pace the replay like a microphone"
    )
    parser.add_argument("--format", choices=typing.get_args(ClipFormat), default="flac")
    args = parser.parse_args()
    clip_format: ClipFormat = "opus" if args.format == "opus" else "flac"
    for clips in (False, True):
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            r = measure(
                args.audio, args.model_dir, args.repeat, Path(tmp),
                clips=clips, real_time=args.real_time, clip_format=clip_format,
            )  # fmt: skip
        print(report(r, clips), flush=True)


if __name__ == "__main__":
    main()
