"""Benchmark the detection log: insert cost per event, and the size of a year of detections.

::

    python -m birdnet_edge.bench.sqlite_bench [--days 365] [--per-day 2000] [--dir DIR]

1. **Live**: events written through :class:`LogWriter` as the daemon writes them (one commit
   per window, each synced to disk: ``synchronous=FULL``). An event that lasts ``w`` windows
   costs ``w + 1`` commits (open, ``w - 1`` updates, close).
2. **Busy**: the same changes handed over as fast as possible; the writer batches them.
3. **A year**: ``days x per-day`` events of realistic shape (species drawn from the model's
   labels when installed, dawn-heavy times, 1-10 windows) written day by day; then the database
   size, and the time of typical review queries on it.

The database lives in ``--dir`` (default a temporary directory, deleted afterwards), so the
figures include that file system's sync cost.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from birdnet_edge.detect.events import EventChange
from birdnet_edge.log.record import Detection, DetectionContext, to_row
from birdnet_edge.log.retention import prune_step
from birdnet_edge.log.schema import open_database
from birdnet_edge.log.writer import _SPECIES, _UPSERT, LogWriter
from birdnet_edge.model.labels import Label

CONTEXT = DetectionContext(
    station="garden", latitude=52.52, longitude=13.40,
    model="BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite", precision="fp32",
    sensitivity=1.0, overlap=0.0, min_confidence=0.7,
)  # fmt: skip


def species_pool(n: int, rng: random.Random) -> list[Label]:
    """``n`` labels from the installed model (realistic name lengths), else made-up ones."""
    try:
        from birdnet_edge.model.files import ModelPaths
        from birdnet_edge.model.labels import read_labels

        env = os.environ.get("BIRDNET_EDGE_MODEL_DIR")
        labels = read_labels(ModelPaths.at(Path(env) if env else None).labels)
        return rng.sample(labels, n)
    except Exception:  # no model installed: names of typical length
        return [
            Label(i, f"Genusname species{i:03d}", f"Common Bird Name {i:03d}") for i in range(n)
        ]


class Traffic:
    """Events shaped like a garden station's: a few common species dominate, dawn is busy."""

    def __init__(self, seed: int = 4) -> None:
        self.rng = random.Random(seed)
        self.species = species_pool(150, self.rng)
        self.weights = [1 / (rank + 1) for rank in range(len(self.species))]  # Zipf-like

    def event(self, day: dt.date) -> Detection:
        rng = self.rng
        hour = min(23.99, max(0.0, rng.gauss(7.0, 3.5)))  # dawn chorus peak, local ~ UTC here
        start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc) + dt.timedelta(
            hours=hour
        )
        windows = min(10, 1 + int(rng.expovariate(0.6)))
        label = rng.choices(self.species, self.weights)[0]
        return Detection(
            id=str(uuid.uuid4()),
            start=start,
            end=start + dt.timedelta(seconds=3 * windows),
            utc_offset=dt.timedelta(),
            scientific=label.scientific,
            common=label.common,
            confidence=round(rng.uniform(0.7, 1.0), 6),
            windows=windows,
            closed=True,
            context=CONTEXT,
        )


def changes_of(e: Detection) -> list[EventChange]:
    """The changes the event tracker reports for one event: opened, updated..., closed."""
    out = []
    for w in range(1, e.windows + 1):
        end = e.start + dt.timedelta(seconds=3 * w)
        state = dataclasses.replace(e, windows=w, end=end, closed=False)
        out.append(EventChange("opened" if w == 1 else "updated", state))
    out.append(EventChange("closed", e))
    return out


def live(directory: Path, traffic: Traffic, events: int) -> dict[str, float]:
    """One commit per change, waiting for each like a quiet station's windows would."""
    sink = LogWriter(directory / "live.db")
    evs = [traffic.event(dt.date(2025, 5, 1)) for _ in range(events)]
    commits = 0
    written0 = _bytes_written()
    cpu0, t0 = time.process_time(), time.perf_counter()
    for e in evs:
        for change in changes_of(e):
            sink.handle(change)
            sink.flush()
            commits += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    sink.close()  # includes the final checkpoint: the pages also reach the database file
    written = _bytes_written() - written0
    return {
        "kb_written_per_event": written / 1024 / events,
        "events": events,
        "commits": commits,
        "ms_per_commit": 1000 * wall / commits,
        "ms_per_event": 1000 * wall / events,
        "cpu_ms_per_event": 1000 * cpu / events,
    }


def _bytes_written() -> int:
    """Bytes this process has caused to be written to storage (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/io", encoding="ascii") as f:
            for line in f:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def busy(directory: Path, traffic: Traffic, events: int) -> dict[str, float]:
    """Every change handed over at once: the writer batches them."""
    sink = LogWriter(directory / "busy.db")
    changes = [c for _ in range(events) for c in changes_of(traffic.event(dt.date(2025, 5, 1)))]
    t0 = time.perf_counter()
    for change in changes:
        sink.handle(change)
    sink.flush()
    wall = time.perf_counter() - t0
    sink.close()
    return {
        "events": events,
        "changes": len(changes),
        "commits": sink.commits,
        "us_per_event": 1e6 * wall / events,
    }


def year(directory: Path, traffic: Traffic, days: int, per_day: int) -> dict[str, Any]:
    """``days`` of ``per_day`` events, one transaction per day, then size and query times."""
    path = directory / "year.db"
    conn = open_database(path)
    first = dt.date(2025, 1, 1)
    t0 = time.perf_counter()
    for d in range(days):
        day = first + dt.timedelta(days=d)
        events = [traffic.event(day) for _ in range(per_day)]
        conn.execute("BEGIN")  # what the sink writes for these events, a day at a time
        conn.executemany(_UPSERT, [to_row(e) for e in events])
        conn.executemany(_SPECIES, sorted({(e.scientific, e.common) for e in events}))
        conn.execute("COMMIT")
    fill = time.perf_counter() - t0
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    total = days * per_day
    queries = _query_times(path, first + dt.timedelta(days=days), traffic)
    t1 = time.perf_counter()
    prune_step(conn, retention_days=days - 1, max_size_mb=0, now=_utc(first, days))
    prune = time.perf_counter() - t1
    conn.close()
    return {
        "events": total,
        "fill_s": fill,
        "db_bytes": size,
        "db_mb": size / 1e6,
        "bytes_per_event": size / total,
        "query_ms": queries,
        "prune_step_ms": 1000 * prune,
    }


def _utc(first: dt.date, days: int) -> dt.datetime:
    end = first + dt.timedelta(days=days)
    return dt.datetime(end.year, end.month, end.day, tzinfo=dt.timezone.utc)


def _query_times(path: Path, end: dt.date, traffic: Traffic) -> dict[str, float]:
    """Times of the review commands' queries on the full year (read-only, like the CLI)."""
    from birdnet_edge.log import queries as store

    conn = store.connect(path)
    week = _utc(end, -7)
    common, rare = traffic.species[0].common, traffic.species[-1].common
    cases: dict[str, Callable[[], object]] = {
        "log (latest 25)": lambda: store.recent(conn, store.Filters(), 25),
        "log --species RARE --limit 25": lambda: store.recent(
            conn, store.Filters(species=rare), 25
        ),
        "log --since 3d --min-conf 0.9": lambda: store.recent(
            conn, store.Filters(since=_utc(end, -3), min_conf=0.9), None
        ),
        "summary --since 7d": lambda: store.summary(conn, store.Filters(since=week)),
        "summary (whole year)": lambda: store.summary(conn, store.Filters()),
        "summary --species COMMON --hourly (year)": lambda: store.hourly(
            conn, store.Filters(species=common)
        ),
        "export --species RARE (year)": lambda: list(
            store.detections(conn, store.Filters(species=rare))
        ),
    }
    out = {}
    for name, run in cases.items():
        t0 = time.perf_counter()
        run()
        out[name] = 1000 * (time.perf_counter() - t0)
    conn.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-day", type=int, default=2000)
    parser.add_argument("--live-events", type=int, default=200)
    parser.add_argument("--busy-events", type=int, default=20000)
    parser.add_argument("--dir", type=Path, help="where to put the databases (kept)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="sqlite-bench-") as tmp:
        directory = args.dir or Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        traffic = Traffic()
        results: dict[str, Any] = {
            "sqlite": sqlite3.sqlite_version,
            "live": live(directory, traffic, args.live_events),
            "busy": busy(directory, traffic, args.busy_events),
            "year": year(directory, traffic, args.days, args.per_day),
        }
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    lv, bz, yr = results["live"], results["busy"], results["year"]
    print(f"SQLite {results['sqlite']}, WAL, synchronous=FULL, in {args.dir or 'a temp dir'}")
    print(
        f"live:  {lv['events']} events, {lv['commits']} commits (one per window): "
        f"{lv['ms_per_commit']:.2f} ms per commit, {lv['ms_per_event']:.2f} ms per event "
        f"({lv['cpu_ms_per_event']:.2f} ms CPU), {lv['kb_written_per_event']:.0f} KiB written "
        "to storage per event (WAL + checkpoint)"
    )
    print(
        f"busy:  {bz['events']} events ({bz['changes']} changes) in {bz['commits']} commits: "
        f"{bz['us_per_event']:.0f} us per event"
    )
    print(
        f"year:  {yr['events']:,} events ({args.days} days x {args.per_day}/day): "
        f"{yr['db_mb']:.1f} MB, {yr['bytes_per_event']:.0f} bytes per event "
        f"(written in {yr['fill_s']:.1f} s)"
    )
    for name, ms in yr["query_ms"].items():
        print(f"       {name:<42} {ms:8.1f} ms")
    print(f"       {'retention step (500 oldest rows)':<42} {yr['prune_step_ms']:8.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
