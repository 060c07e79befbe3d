"""Benchmark ``log report`` on a month of a busy station: the page's size, the time to make it,
and the time a browser takes to render it (without clips, and with a clip for every detection).

    python -m birdnet_edge.bench.report [--days 30] [--per-day 1000] [--audio soundscape.flac]

Writes ``--days`` days of ``--per-day`` detections (most at dawn, of ``--species`` species) into
a fresh database through the real :class:`~birdnet_edge.log.writer.LogWriter`, then makes the
report of the whole month twice: without clips, and with a 5 s clip and its spectrogram for
every detection (one FLAC cut from ``--audio`` or made of noise and chirps, hard-linked so the
month takes no more disk than one clip), within the default ``--max-size``. Each page is opened
in headless ``chromium`` (when installed): the time from navigation to the page parsed, styled,
laid out and its script run (measured in the page), and the wall time of a screenshot beyond
that of an empty page. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from birdnet_edge.audio.format import SAMPLE_RATE
from birdnet_edge.cli.report import MAX_ROWS, MAX_SIZE_MB
from birdnet_edge.detect.events import EventChange
from birdnet_edge.log import queries as store
from birdnet_edge.log.queries import Filters
from birdnet_edge.log.record import Detection, DetectionContext
from birdnet_edge.log.writer import LogWriter
from birdnet_edge.report.data import gather
from birdnet_edge.report.page import MB, build

ZONE = dt.timezone(dt.timedelta(hours=2))  # a station in Central European summer time
CONTEXT = DetectionContext(
    station="garden", latitude=50.0, longitude=8.0, model="BirdNET_GLOBAL_6K_V2.4_Model_FP32",
    precision="fp32", sensitivity=1.0, overlap=0.0, min_confidence=0.7,
)  # fmt: skip
CLIP_SECONDS = 5.0
#: Appended to the page: forces style and layout, then notes the time since navigation.
TIMER = (
    "<script>document.body.offsetHeight;"
    "document.documentElement.setAttribute('data-ms', performance.now().toFixed(0));</script>"
)


def _hour(rng: random.Random) -> float:
    """An hour of the day, busiest at dawn (05-08) with an evening peak."""
    if rng.random() < 0.6:
        return rng.gauss(6.5, 1.2) % 24
    return rng.uniform(4.0, 21.0)


def month(path: Path, days: int, per_day: int, species: int, with_clips: bool) -> int:
    """Write the synthetic month into ``path`` (each detection naming a clip of its own,
    ``with_clips``); returns the detections written."""
    rng = random.Random(18)
    names = [(f"Genus{i:02d} species{i:02d}", f"Bird number {i:02d}") for i in range(species)]
    weights = [1 / (i + 1) for i in range(species)]  # a few common species, many rare ones
    first_day = dt.datetime(2025, 5, 1, tzinfo=ZONE)
    sink = LogWriter(path)
    n = 0
    try:
        for day in range(days):
            for _ in range(per_day):
                scientific, common = rng.choices(names, weights)[0]
                start = first_day + dt.timedelta(days=day, hours=_hour(rng))
                windows = rng.choice((1, 1, 1, 2, 2, 3))
                ident = f"{n:08x}-bench"
                d = Detection(
                    id=ident, start=start,
                    end=start + dt.timedelta(seconds=3 * windows), utc_offset=ZONE.utcoffset(None),
                    scientific=scientific, common=common, confidence=rng.uniform(0.7, 0.99),
                    windows=windows, closed=True, context=CONTEXT,
                    clip=f"2025/05/{ident}.flac" if with_clips else None,
                )  # fmt: skip
                sink.handle(EventChange("closed", d))
                n += 1
        if not sink.flush(600):
            raise RuntimeError("the log writer did not catch up")
    finally:
        sink.close()
    return n


def _clip_audio(audio: Path | None) -> npt.NDArray[np.int16]:
    """5 s of 48 kHz audio: from ``audio``, else noise with chirps."""
    n = round(CLIP_SECONDS * SAMPLE_RATE)
    if audio is not None:
        from birdnet_edge.audio.decode import iter_audio
        from birdnet_edge.clips.cutter import to_int16

        return to_int16(np.concatenate(list(iter_audio(audio))))[:n]
    t = np.arange(n) / SAMPLE_RATE
    chirp = np.sin(2 * np.pi * (3000 + 2000 * (t % 0.5)) * t) * ((t % 0.5) < 0.2)
    noise = np.random.default_rng(18).normal(0, 0.05, n)
    return (np.clip(0.3 * chirp + noise, -1, 1) * 32767).astype(np.int16)


def clips(db: Path, root: Path, audio: Path | None) -> None:
    """One clip and spectrogram, hard-linked at every path the log names."""
    import soundfile

    from birdnet_edge.clips.spectrogram import render
    from birdnet_edge.clips.writer import image_of

    samples = _clip_audio(audio)
    flac, png = root / "one.flac", root / "one.png"
    root.mkdir(parents=True, exist_ok=True)
    soundfile.write(flac, samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    png.write_bytes(render(samples, marked=(1.0, 4.0)))
    conn = store.connect(db)
    try:
        named = [d.clip for d in store.recent(conn, Filters(), MAX_ROWS) if d.clip]
    finally:
        conn.close()
    for name in named:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        os.link(flac, path)
        os.link(png, image_of(path))


def make(db: Path, clips_root: Path | None, out: Path) -> tuple[float, int, int]:
    """The month's report written to ``out``: seconds taken, bytes, detections."""
    started = time.perf_counter()
    conn = store.connect(db)
    try:
        report = gather(conn, db, Filters(), clips_root=clips_root, max_rows=MAX_ROWS, away_days=30)
    finally:
        conn.close()
    page = build(report, max_size_mb=MAX_SIZE_MB)
    out.write_text(page, encoding="utf-8")
    return time.perf_counter() - started, len(page.encode("utf-8")), report.total


def _chromium(chromium: str, page: Path, profile: Path, *args: str) -> str:
    done = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return done.stdout


def render_times(chromium: str, page: Path, blank: Path, repeat: int) -> tuple[float, float]:
    """Median ms from navigation to laid out (in the page), and median ms of a screenshot
    beyond an empty page's."""
    timed = page.with_name(page.stem + "-timed.html")
    timed.write_text(page.read_text(encoding="utf-8").replace("</body>", TIMER + "</body>"))
    profile = page.parent / "profile"
    inside, shots = [], []
    for _ in range(repeat):
        dom = _chromium(chromium, timed, profile, "--dump-dom")
        found = re.search(r'data-ms="(\d+)"', dom)
        inside.append(float(found[1]) if found else float("nan"))
        walls = []
        for shown in (page, blank):
            shot = page.parent / "shot.png"
            started = time.perf_counter()
            _chromium(chromium, shown, profile, f"--screenshot={shot}", "--window-size=1280,900")
            walls.append(time.perf_counter() - started)
        shots.append(1000 * (walls[0] - walls[1]))
    return statistics.median(inside), statistics.median(shots)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=1000, help="detections a day")
    parser.add_argument("--species", type=int, default=60)
    parser.add_argument("--audio", type=Path, help="cut the clip from this recording")
    parser.add_argument("--repeat", type=int, default=3, help="browser runs (median)")
    parser.add_argument("--dir", type=Path, help="work in this folder (default: a temporary)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="report-bench-", dir=args.dir))
    try:
        chromium = shutil.which("chromium")
        blank = work / "blank.html"
        blank.write_text("<!DOCTYPE html><title>blank</title>")
        for label, with_clips in (("without clips", False), ("with clips", True)):
            folder = work / label.replace(" ", "-")
            folder.mkdir()
            db = folder / "detections.db"
            started = time.perf_counter()
            n = month(db, args.days, args.per_day, args.species, with_clips)
            written = time.perf_counter() - started
            if with_clips:
                clips(db, folder / "clips", args.audio)
            seconds, size, total = make(
                db, folder / "clips" if with_clips else None, folder / "report.html"
            )
            page = (folder / "report.html").read_text(encoding="utf-8")
            print(
                f"{label}: {n} detections over {args.days} days written in {written:.1f} s; "
                f"report of {total} detections: {size / MB:.2f} MB, made in {seconds:.2f} s; "
                f"{page.count('data:image/png')} spectrograms and "
                f"{page.count('data:audio/flac')} clips embedded"
            )
            if chromium is None:
                print("  chromium not installed: no render time")
                continue
            inside, shot = render_times(chromium, folder / "report.html", blank, args.repeat)
            print(
                f"  chromium: parsed, styled and laid out {inside:.0f} ms after navigation; "
                f"screenshot {shot:.0f} ms longer than an empty page's (median of {args.repeat})"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
