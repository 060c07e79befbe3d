"""Benchmark recall: how many of the birds a dense analysis finds does the daemon report?

BirdNET's score for a call depends on where its 3 s window starts, so a daemon that scores a
fixed grid finds a share of the birds that depends on where the grid happens to fall. This
replays copies of a recording that start 0, 0.5, … 2.5 s into it through the whole daemon
(windows, model, refinement, filters, events, SQLite) for each mode asked for, and compares
what it logged with a dense analysis (a window every 0.1 s) of the same copy at the same
threshold and filters::

    python -m birdnet_edge.bench.recall --lat 42.5 --lon -76.45 --week 4

- reference: the *species bouts* of the dense analysis: species and 10 s of the copy (by window
  centre), each spanning its hit windows;
- recall: the share of bouts that a logged event of the same species overlaps, per shift
  (mean and worst);
- false detections per hour: events logged on audio without birds (noise, wind, an engine, a
  siren, a horn, and speech where espeak-ng is installed), made here;
- CPU: process CPU seconds per second of audio during the replays (the model's calls and
  everything around them; model loading excluded), and windows scored per second of audio.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from birdnet_edge.audio.decode import iter_audio
from birdnet_edge.audio.format import SAMPLE_RATE, WINDOW_SECONDS
from birdnet_edge.audio.ring import FloatArray
from birdnet_edge.config import (
    AnalysisConfig,
    Config,
    DatabaseConfig,
    FiltersConfig,
    ModelConfig,
    RefineConfig,
    StationConfig,
)
from birdnet_edge.detect.detector import scan

DENSE_OVERLAP = 2.9  # a window every 0.1 s
BOUT_SECONDS = 10.0
START = dt.datetime(2026, 5, 1, 5, 0, tzinfo=dt.timezone.utc)  # the replays' wall clock


@dataclass(frozen=True)
class Mode:
    """One way of running the daemon: its overlap, with or without refinement."""

    overlap: float
    refine: bool

    @property
    def name(self) -> str:
        return f"overlap {self.overlap:g}" + (" + refine" if self.refine else "")

    def analysis(self, base: AnalysisConfig) -> AnalysisConfig:
        return dataclasses.replace(
            base,
            overlap=self.overlap,
            refine=dataclasses.replace(base.refine, enabled=self.refine),
        )


@dataclass(frozen=True)
class Bout:
    """A species heard within one 10 s stretch of a recording, by the dense analysis."""

    scientific: str
    start: float  # seconds into the copy: the first hit window's start
    end: float  # the last hit window's end


@dataclass(frozen=True)
class Heard:
    """An event the daemon logged, in seconds into the copy."""

    scientific: str
    start: float
    end: float


@dataclass
class Run:
    events: list[Heard]
    cpu_seconds: float
    windows: int
    audio_seconds: float


def reference_bouts(
    audio: FloatArray, cfg: Config, detector_cache: dict[str, object] | None = None
) -> list[Bout]:
    """The species bouts a dense analysis of ``audio`` finds at ``cfg``'s threshold and filters."""
    from birdnet_edge.detect.detector import Detector
    from birdnet_edge.detect.stack import load_detector

    detector = (detector_cache or {}).get("dense")
    if not isinstance(detector, Detector):
        detector = load_detector(cfg)
        if detector_cache is not None:
            detector_cache["dense"] = detector
    spans: dict[tuple[str, int], tuple[float, float]] = {}
    for window in scan([audio], detector, DENSE_OVERLAP):
        start = window.span.start / SAMPLE_RATE
        centre = start + WINDOW_SECONDS / 2
        for index, _ in window.hits:
            key = (detector.labels[index].scientific, int(centre // BOUT_SECONDS))
            first, last = spans.get(key, (start, start + WINDOW_SECONDS))
            spans[key] = (min(first, start), max(last, start + WINDOW_SECONDS))
    return [Bout(s, a, b) for (s, _), (a, b) in sorted(spans.items())]


def recall(bouts: Sequence[Bout], heard: Iterable[Heard]) -> float:
    """The share of ``bouts`` overlapped by an event of the same species."""
    if not bouts:
        return float("nan")
    by_species: dict[str, list[Heard]] = {}
    for h in heard:
        by_species.setdefault(h.scientific, []).append(h)
    found = sum(
        any(h.start < b.end and h.end > b.start for h in by_species.get(b.scientific, []))
        for b in bouts
    )
    return found / len(bouts)


def replay(path: Path, cfg: Config, workdir: Path) -> Run:
    """Replay ``path`` at full speed through the whole daemon; what it logged and what it cost."""
    from birdnet_edge.daemon.service import Daemon, RunOptions
    from birdnet_edge.log import queries as store

    db = workdir / f"replay-{time.monotonic_ns()}.db"
    cfg = dataclasses.replace(cfg, database=DatabaseConfig(path=db))
    daemon = Daemon(
        cfg, RunOptions(input_file=path, fast=True, start_time=START.timestamp(), console=False)
    )
    cpu = time.process_time()
    daemon.run()
    cpu = time.process_time() - cpu
    conn = store.connect(db)
    try:
        events = [
            Heard(
                d.scientific,
                (d.start - START).total_seconds(),
                (d.end - START).total_seconds(),
            )
            for d in store.detections(conn, store.Filters())
        ]
    finally:
        conn.close()
    audio_seconds = daemon.source.ring.written / SAMPLE_RATE
    return Run(events, cpu, daemon.listener.stats.windows, audio_seconds)


# -- audio without birds ------------------------------------------------------------------------
def _noise(rng: np.random.Generator, seconds: float, colour: float) -> FloatArray:
    """Noise with a 1/f**colour power spectrum, scaled to unit RMS."""
    n = int(seconds * SAMPLE_RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    f[0] = f[1]
    x: FloatArray = np.fft.irfft(spectrum / f ** (colour / 2), n).astype(np.float32)
    x /= np.float32(np.sqrt(np.mean(x**2)))
    return x


def no_bird_sounds(seconds: float = 60.0, seed: int = 7) -> dict[str, FloatArray]:
    """Recordings without birds, made here: noise, wind, an engine, a siren, a horn, speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    sounds: dict[str, FloatArray] = {}
    sounds["pink noise"] = 0.05 * _noise(rng, seconds, 1.0)
    gusts = 0.5 + 0.5 * np.sin(2 * np.pi * 0.15 * t + rng.uniform(0, 6)) ** 2
    sounds["wind"] = (0.1 * gusts * _noise(rng, seconds, 2.0)).astype(np.float32)
    # An idling then revving engine: firing harmonics of 25-45 Hz under brown noise.
    f0 = 25 + 10 * (1 + np.sin(2 * np.pi * t / 20))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    engine = sum(np.sin(k * phase) / k for k in range(1, 40))
    sounds["engine"] = (0.05 * engine + 0.03 * _noise(rng, seconds, 2.0)).astype(np.float32)
    # A wailing siren (600-1500 Hz every 4 s) and a car horn (two tones in bursts).
    sweep = 1050 + 450 * np.sin(2 * np.pi * t / 4)
    siren = np.sin(2 * np.pi * np.cumsum(sweep) / SAMPLE_RATE)
    sounds["siren"] = (0.2 * siren + 0.01 * _noise(rng, seconds, 1.0)).astype(np.float32)
    bursts = (np.sin(2 * np.pi * t / 3) > 0.7).astype(np.float32)
    horn = np.sign(np.sin(2 * np.pi * 420 * t)) + np.sign(np.sin(2 * np.pi * 520 * t))
    sounds["horn"] = (0.05 * bursts * horn + 0.01 * _noise(rng, seconds, 1.0)).astype(np.float32)
    speech = _speech(seconds)
    if speech is not None:
        sounds["speech"] = speech
    return sounds


SPEECH = (
    "Good morning. Have you seen the weather today? It looks like rain later, so we should "
    "bring the washing in before lunch. I will call you when the kettle has boiled. "
    "The children are playing in the garden and the neighbours are mowing their lawn again."
)


def _speech(seconds: float) -> FloatArray | None:
    """espeak-ng speaking for ``seconds``, or None where it is not installed."""
    if shutil.which("espeak-ng") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), SPEECH], check=True, capture_output=True)
        voice = np.concatenate(list(iter_audio(wav)))
    reps = int(np.ceil(seconds * SAMPLE_RATE / len(voice)))
    return (0.5 * np.tile(voice, reps)[: int(seconds * SAMPLE_RATE)]).astype(np.float32)


def write_wav(path: Path, audio: FloatArray) -> Path:
    import soundfile

    soundfile.write(path, audio, SAMPLE_RATE, subtype="FLOAT")
    return path


# -- the benchmark ------------------------------------------------------------------------------
@dataclass
class ModeResult:
    mode: Mode
    recalls: list[float]
    false_events: int
    no_bird_seconds: float
    cpu_per_second: float  # on the recording (birds singing)
    cpu_per_second_quiet: float  # on the audio without birds
    windows_per_second: float
    windows_per_second_quiet: float

    @property
    def false_per_hour(self) -> float:
        return 3600.0 * self.false_events / self.no_bird_seconds


def run_benchmark(
    audio_path: Path,
    cfg: Config,
    modes: Sequence[Mode],
    shifts: Sequence[float],
    *,
    no_bird_seconds: float = 60.0,
    log: bool = True,
) -> tuple[list[ModeResult], dict[float, list[Bout]], dict[str, int]]:
    """Recall per mode and shift, false detections on audio without birds, and CPU."""
    audio = np.concatenate(list(iter_audio(audio_path)))
    cache: dict[str, object] = {}
    results: list[ModeResult] = []
    quiet_sounds = no_bird_sounds(no_bird_seconds)
    with tempfile.TemporaryDirectory(prefix="birdnet-edge-recall-") as tmp:
        work = Path(tmp)
        copies: dict[float, Path] = {}
        bouts: dict[float, list[Bout]] = {}
        for shift in shifts:
            copy = audio[round(shift * SAMPLE_RATE) :]
            copies[shift] = write_wav(work / f"shift-{shift:g}.wav", copy)
            bouts[shift] = reference_bouts(copy, cfg, cache)
            if log:
                print(f"shift {shift:g} s: {len(bouts[shift])} bouts in the dense reference")
        quiet = write_wav(work / "no-birds.wav", np.concatenate(list(quiet_sounds.values())))
        false_by_sound: dict[str, int] = {}
        for mode in modes:
            mcfg = dataclasses.replace(cfg, analysis=mode.analysis(cfg.analysis))
            recalls: list[float] = []
            cpu = seconds = 0.0
            windows = 0
            for shift in shifts:
                run = replay(copies[shift], mcfg, work)
                recalls.append(recall(bouts[shift], run.events))
                cpu += run.cpu_seconds
                seconds += run.audio_seconds
                windows += run.windows
            quiet_run = replay(quiet, mcfg, work)
            for e in quiet_run.events:
                sound = list(quiet_sounds)[
                    min(len(quiet_sounds) - 1, int(e.start // no_bird_seconds))
                ]
                key = f"{mode.name}: {sound}"
                false_by_sound[key] = false_by_sound.get(key, 0) + 1
            results.append(
                ModeResult(
                    mode,
                    recalls,
                    len(quiet_run.events),
                    quiet_run.audio_seconds,
                    cpu / seconds,
                    quiet_run.cpu_seconds / quiet_run.audio_seconds,
                    windows / seconds,
                    quiet_run.windows / quiet_run.audio_seconds,
                )
            )
            if log:
                print(f"{mode.name}: done")
    return results, bouts, false_by_sound


def format_table(results: Sequence[ModeResult], shifts: Sequence[float]) -> str:
    head = (
        "| mode | recall mean | recall worst | per shift ("
        + ", ".join(f"{s:g}" for s in shifts)
        + " s) | false detections / h without birds | CPU s per audio s (chorus / no birds)"
        " | windows per audio s (chorus / no birds) |"
    )
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in results:
        lines.append(
            f"| {r.mode.name} | {np.mean(r.recalls):.2f} | {min(r.recalls):.2f} | "
            + " ".join(f"{x:.2f}" for x in r.recalls)
            + f" | {r.false_per_hour:.0f} | {r.cpu_per_second:.4f} / {r.cpu_per_second_quiet:.4f}"
            f" | {r.windows_per_second:.2f} / {r.windows_per_second_quiet:.2f} |"
        )
    return "\n".join(lines)


def parse_modes(texts: Sequence[str]) -> list[Mode]:
    """``0``, ``2.5`` (grid only) or ``1.5+refine``."""
    modes = []
    for text in texts:
        overlap, _, extra = text.partition("+")
        if extra not in ("", "refine"):
            raise SystemExit(f"--modes: {text!r} is not OVERLAP or OVERLAP+refine")
        modes.append(Mode(float(overlap), extra == "refine"))
    return modes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m birdnet_edge.bench.recall", description=__doc__
    )
    parser.add_argument("--audio", type=Path, help="recording (default: the shared soundscape)")
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--lat", type=float)
    parser.add_argument("--lon", type=float)
    parser.add_argument("--week", type=int, default=-1)
    parser.add_argument("--min-conf", type=float, default=AnalysisConfig().min_confidence)
    parser.add_argument("--candidate", type=float, default=RefineConfig().candidate)
    parser.add_argument("--shifts", type=float, nargs="+", default=[0, 0.5, 1, 1.5, 2, 2.5])
    parser.add_argument(
        "--modes", nargs="+", default=["0", "1.5", "2", "2.5", "1+refine", "1.5+refine"]
    )
    parser.add_argument("--no-bird-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    audio = args.audio or _shared_soundscape()
    station = StationConfig(latitude=args.lat, longitude=args.lon)
    cfg = Config(
        station=station,
        model=ModelConfig(dir=args.model_dir),
        analysis=AnalysisConfig(
            min_confidence=args.min_conf, refine=RefineConfig(candidate=args.candidate)
        ),
        filters=FiltersConfig(week=args.week),
    )
    t0 = time.monotonic()
    results, _, false_by_sound = run_benchmark(
        audio, cfg, parse_modes(args.modes), args.shifts, no_bird_seconds=args.no_bird_seconds
    )
    print()
    print(
        f"{audio.name}, threshold {args.min_conf:g}, candidate {args.candidate:g}, "
        f"location {args.lat}, {args.lon}, week {args.week}"
    )
    print(format_table(results, args.shifts))
    if false_by_sound:
        print(
            "false detections by sound: " + ", ".join(f"{k} {v}" for k, v in false_by_sound.items())
        )
    print(f"({time.monotonic() - t0:.0f} s)")
    return 0


def _shared_soundscape() -> Path:
    import os

    here = Path(__file__).resolve().parents[2]
    data = Path(os.environ.get("BIRDNET_EDGE_TEST_DATA", here.parent / "shared" / "data"))
    path = data / "soundscape.flac"
    if not path.is_file():
        raise SystemExit(f"no recording given and {path} does not exist: pass --audio FILE")
    return path


if __name__ == "__main__":
    raise SystemExit(main())
