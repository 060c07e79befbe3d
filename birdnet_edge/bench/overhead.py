"""Benchmark the pipeline's overhead over bare ``invoke()``, and its memory over a soak.

    python -m birdnet_edge.bench.overhead --repeat 5            # CPU: daemon vs bare invoke
    python -m birdnet_edge.bench.overhead --soak-hours 4        # RSS over hours of audio

The daemon run is the whole thing at full replay speed: decoding, ring buffer, windows,
scoring, filters, events, the SQLite log and, when ``mosquitto`` is installed, MQTT to a local
broker. The bare run calls the model on exactly the same windows in the same batch size. Both
count process CPU time (all threads), so the ratio is what the pipeline adds; the runs are
interleaved over ``--rounds`` and their medians compared, because a shared machine's speed
drifts more than the pipeline costs. A third run replaces the model by constant logits and
reads each daemon thread's CPU time from ``/proc``: the pipeline's own cost, part by part.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from birdnet_edge.audio.decode import iter_audio
from birdnet_edge.audio.format import SAMPLE_RATE
from birdnet_edge.audio.ring import RingBuffer
from birdnet_edge.audio.windows import Windower, make_batch
from birdnet_edge.bench import rss_mb
from birdnet_edge.bench.broker import mosquitto, private_broker
from birdnet_edge.config import (
    AnalysisConfig,
    Config,
    DatabaseConfig,
    ModelConfig,
    MQTTConfig,
    RefineConfig,
)
from birdnet_edge.daemon.memory import mapped_mb
from birdnet_edge.daemon.service import Daemon, RunOptions
from birdnet_edge.detect.detector import WindowClassifier
from birdnet_edge.detect.listener import MAX_BATCH
from birdnet_edge.detect.stack import load_detector
from birdnet_edge.model.birdnet import Classifier
from birdnet_edge.model.files import NUM_CLASSES, ModelPaths
from birdnet_edge.model.runtime import FloatArray, TFLiteModel
from birdnet_edge.model.variants import active_model

BATCH = MAX_BATCH  # the listener's batch size when it is behind (as in a full-speed replay)


@contextmanager
def local_broker() -> Iterator[int | None]:
    """A private Mosquitto's port, or None when it is not installed (the run goes without)."""
    if mosquitto() is None:
        yield None
        return
    with private_broker() as port:
        yield port


def bare_invoke_cpu(audio: Path, model: Path, threads: int, repeat: int) -> tuple[float, int]:
    """CPU seconds for the model alone on every window of ``audio``, ``repeat`` times."""
    ring = RingBuffer(48_000 * 200)
    windower = Windower(ring, 0.0)
    for chunk in iter_audio(audio):
        ring.write(chunk)
    batches = []
    batch = make_batch(BATCH)
    while spans := windower.take(batch, final=True):
        batches.append(batch[: len(spans)].copy())
    classifier = Classifier(model, "auto", threads)
    classifier.logits(batches[0])  # warm up, as the daemon's first window does
    cpu = time.process_time()
    for _ in range(repeat):
        for b in batches:
            classifier.logits(b)
    return time.process_time() - cpu, sum(len(b) for b in batches) * repeat


class _TimedClassifier:
    """The model with its calls timed (the calling thread's CPU time: all of invoke() at 1
    thread; with more, the model's worker threads are the unnamed ones, counted as ``other``);
    with ``constant``, constant logits instead of invoke() (one detection per window)."""

    def __init__(self, inner: WindowClassifier, run: DaemonRun, *, constant: bool) -> None:
        self.inner = inner
        self.run = run
        self.constant: FloatArray | None = None
        if constant:
            self.constant = np.full((BATCH, NUM_CLASSES), -5.0, dtype=np.float32)
            self.constant[:, 100] = 3.0

    @property
    def model(self) -> TFLiteModel:
        return self.inner.model

    def logits(self, windows: FloatArray) -> FloatArray:
        start = time.thread_time()
        try:
            if self.constant is not None:
                return typing.cast(FloatArray, self.constant[: len(windows)].copy())
            return self.inner.logits(windows)
        finally:
            self.run.model_cpu += time.thread_time() - start


def thread_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of each of this process's threads, by native id (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread has just ended
            continue
        found[int(task.name)] = (int(fields[11]) + int(fields[12])) / tick
    return found


@dataclass
class DaemonRun:
    """One full-speed replay: process CPU, windows, RSS samples and CPU per daemon thread."""

    cpu: float = 0.0
    windows: int = 0
    events: int = 0
    rss: list[float] = field(default_factory=list)
    model_file_mb: float = 0.0  # resident pages of the model file, at the last RSS sample
    model_cpu: float = 0.0  # CPU seconds the inference thread spent in the model's calls
    threads: dict[str, float] = field(default_factory=dict)


def daemon_run(  # noqa: PLR0917 - a benchmark's knobs
    audio: Path,
    model_dir: Path | None,
    model_file: str | None,
    threads: int,
    repeat: int,
    port: int | None,
    db: Path,
    *,
    without_model: bool = False,
    min_confidence: float = 0.25,
    poll: float = 0.02,
) -> DaemonRun:
    """The whole daemon replaying ``audio`` ``repeat`` times at full speed.

    ``without_model`` replaces ``invoke()`` by constant logits (one detection per window), so
    what remains is the pipeline's own cost. The model's calls are timed in the run itself
    (``model_cpu``), so the pipeline's share can also be read without comparing two runs.
    Each daemon thread's CPU time is read from ``/proc`` every ``poll`` seconds (the last
    moments of a thread that ends are not seen); threads the daemon did not name (the model's
    worker threads) are summed as ``other``. The polling's own CPU time is left out of ``cpu``.
    """
    cfg = Config(
        model=ModelConfig(dir=model_dir, file=model_file, threads=threads),
        # BirdNET-Analyzer's 3 s grid: the pipeline's cost per window, comparable across
        # versions (bench.recall measures what refinement adds).
        analysis=AnalysisConfig(
            min_confidence=min_confidence, overlap=0.0, refine=RefineConfig(enabled=False)
        ),
        database=DatabaseConfig(path=db),
        mqtt=MQTTConfig(enabled=port is not None, host="127.0.0.1", port=port or 1883),
    )
    run = DaemonRun()
    detector = load_detector(cfg)
    detector.classifier = _TimedClassifier(detector.classifier, run, constant=without_model)
    options = RunOptions(input_file=audio, fast=True, console=False, repeat=repeat)
    daemon = Daemon(cfg, options, detector=detector)
    mine = {threading.get_native_id()}
    before = {tid: cpu for tid, cpu in thread_cpu().items() if tid not in mine}
    last: dict[int, float] = {}
    names: dict[int, str] = {}
    thread = threading.Thread(target=daemon.run, name="daemon")
    cpu = time.process_time()
    polling = time.thread_time()
    thread.start()
    next_rss = 0.0
    while thread.is_alive():
        if time.monotonic() >= next_rss:
            run.rss.append(rss_mb())
            run.model_file_mb = mapped_mb(daemon.detector.classifier.model.path)
            next_rss = time.monotonic() + 5.0
        names.update({t.native_id: t.name for t in threading.enumerate() if t.native_id})
        last.update(thread_cpu())
        thread.join(poll)
    bench = time.thread_time() - polling  # this loop's own cost, not the daemon's
    run.cpu = time.process_time() - cpu - bench
    run.windows = daemon.listener.stats.windows
    run.events = daemon.listener.stats.events
    for tid, seconds in last.items():
        if tid in mine:
            continue
        name = names.get(tid, "other")
        run.threads[name] = run.threads.get(name, 0.0) + seconds - before.get(tid, 0.0)
    return run


def _soak(args: argparse.Namespace, port: int | None, db: Path, model: Path) -> None:
    plays = max(1, round(args.soak_hours * 3600 / 120))
    t0 = time.monotonic()
    run = daemon_run(
        args.audio,
        args.model_dir,
        args.model_file,
        args.threads,
        plays,
        port,
        db,
        min_confidence=args.min_confidence,
    )
    size = model.stat().st_size / 1e6
    print(
        f"soak: {run.windows} windows ({run.windows * 3 / 3600:.1f} h of audio) with "
        f"{model.name} in {time.monotonic() - t0:.0f} s, MQTT {'on' if port else 'off'}"
    )
    rss = run.rss
    print(
        f"RSS: start {rss[1] if len(rss) > 1 else rss[0]:.0f} MB, end {rss[-1]:.0f} MB, "
        f"max {max(rss):.0f} MB (model file {size:.0f} MB, {run.model_file_mb:.0f} MB of it "
        f"resident; budget {size + 120:.0f} MB)"
    )


#: What each daemon thread does, for the breakdown.
ROLES = {
    "replay": "replay thread: decoding {suffix} + ring buffer writes",
    "inference": "inference loop: windows, scoring, filters, events",
    "sqlite-writer": "SQLite writer",
    "mqtt": "MQTT publisher",
    "clip-writer": "clip writer: each event's FLAC and spectrogram",
    "daemon": "main loop: signals, heartbeat, status",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, default=Path("../shared/data/soundscape.flac"))
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument(
        "--model-file", help="audio model file name in the model directory (default: active)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5, help="plays of the file per run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the runs")
    parser.add_argument(
        "--min-confidence",
        type=float,
        default=0.25,
        help="detection threshold of the daemon runs (0.25: many detections; daemon default 0.7)",
    )
    parser.add_argument(
        "--soak-hours",
        type=float,
        default=0.0,
        help="instead: replay this many hours of audio and report RSS",
    )
    args = parser.parse_args()
    model = (
        ModelPaths.at(args.model_dir, args.model_file)
        if args.model_file
        else active_model(ModelConfig(dir=args.model_dir)).paths
    ).audio
    args.model_file = model.name
    with tempfile.TemporaryDirectory() as tmp, local_broker() as port:
        db = Path(tmp) / "detections.db"
        if args.soak_hours > 0:
            _soak(args, port, db, model)
            return
        knobs = (args.audio, args.model_dir, args.model_file, args.threads, args.repeat, port)
        threshold = args.min_confidence
        # The same audio as 16-bit WAV: replay without decompression, as close as a file
        # gets to a microphone's cost.
        wav = Path(tmp) / f"{args.audio.stem}.wav"
        write_wav(args.audio, wav)
        wav_knobs = (wav, *knobs[1:])
        bare: list[float] = []
        full: list[DaemonRun] = []
        full_wav: list[DaemonRun] = []
        pipe: list[DaemonRun] = []
        for i in range(args.rounds):  # interleaved, so a slow spell of the machine hits all
            cpu, windows = bare_invoke_cpu(args.audio, model, args.threads, args.repeat)
            bare.append(cpu / windows)
            full.append(daemon_run(*knobs, Path(tmp) / f"full-{i}.db", min_confidence=threshold))
            full_wav.append(
                daemon_run(*wav_knobs, Path(tmp) / f"wav-{i}.db", min_confidence=threshold)
            )
            pipe.append(daemon_run(*knobs, Path(tmp) / f"pipe-{i}.db", without_model=True))
    _report(args, model, port, bare, {args.audio.suffix: full, ".wav": full_wav}, pipe)


def write_wav(source: Path, target: Path) -> None:
    """``source`` as a 48 kHz mono 16-bit WAV (for a 16-bit recording: the same samples)."""
    import soundfile

    with soundfile.SoundFile(str(target), "w", SAMPLE_RATE, 1, "PCM_16") as out:
        for block in iter_audio(source):
            out.write(block)


def _report(  # noqa: PLR0917 - the runs to report
    args: argparse.Namespace,
    model: Path,
    port: int | None,
    bare: list[float],
    fulls: dict[str, list[DaemonRun]],
    pipe: list[DaemonRun],
) -> None:
    invoke = statistics.median(bare)
    alone = sum(r.cpu for r in pipe) / sum(r.windows for r in pipe)  # pooled, as its parts
    full = fulls[args.audio.suffix]
    print(
        f"{args.rounds} rounds of {args.repeat} plays of {args.audio.name} "
        f"({full[0].windows} windows), {model.name}, {args.threads} thread(s), batch {BATCH}, "
        f"MQTT {'to a local broker' if port else 'off (mosquitto not installed)'}, "
        f"min_confidence {args.min_confidence:g} ({full[0].events} detection events); "
        "CPU time per window, medians of the rounds:"
    )
    print(f"bare invoke():  {1000 * invoke:6.2f} ms   (rounds: {_ms(bare)})")
    for suffix, runs in fulls.items():
        whole = statistics.median(r.cpu / r.windows for r in runs)
        print(
            f"whole daemon, replaying {suffix:5} {1000 * whole:6.2f} ms = "
            f"{100 * whole / invoke - 100:+.1f} % over bare invoke()   "
            f"(rounds: {_ms([r.cpu / r.windows for r in runs])})"
        )
    print(
        f"pipeline alone: {1000 * alone:6.2f} ms = {100 * alone / invoke:.1f} % of invoke() "
        "(model replaced by constant logits, 1 event per window; all rounds); by thread:"
    )
    windows = sum(r.windows for r in pipe)
    threads: dict[str, float] = {}
    for r in pipe:
        for name, seconds in r.threads.items():
            threads[name] = threads.get(name, 0.0) + seconds
    for name, seconds in sorted(threads.items(), key=lambda kv: -kv[1]):
        role = ROLES.get(name, "other threads").format(suffix=args.audio.suffix)
        share = seconds / windows
        print(f"  {role:56} {1000 * share:6.3f} ms = {100 * share / invoke:4.1f} %")
    unseen = sum(r.cpu for r in pipe) / windows - sum(threads.values()) / windows
    label = "not attributed (threads' last moments before they end)"
    print(f"  {label:56} {1000 * unseen:6.3f} ms = {100 * unseen / invoke:4.1f} %")
    rest = alone - threads.get("replay", 0.0) / windows
    print(
        f"pipeline without the replay thread (decoding; a microphone has none): {1000 * rest:.2f} "
        f"ms = {100 * rest / invoke:.1f} % of invoke()"
    )
    print(
        "within each daemon run (the model's calls timed in the run itself, so the machine's "
        "drift between runs does not enter; medians of the rounds):"
    )
    for suffix, runs in fulls.items():
        model_ms = statistics.median(_model_cpu(r) / r.windows for r in runs)
        rest = statistics.median((r.cpu - _model_cpu(r)) / r.windows for r in runs)
        replay = statistics.median(r.threads.get("replay", 0.0) / r.windows for r in runs)
        clips = statistics.median(r.threads.get("clip-writer", 0.0) / r.windows for r in runs)
        others = rest - replay - clips
        print(
            f"  replaying {suffix:5} model {1000 * model_ms:6.2f} ms, everything else "
            f"{1000 * rest:5.2f} ms = {100 * rest / model_ms:+5.1f} %: replay thread (reading "
            f"{suffix}) {1000 * replay:.2f} ms = {100 * replay / model_ms:4.1f} %, clip writer "
            f"{1000 * clips:.2f} ms = {100 * clips / model_ms:.1f} %, the rest "
            f"{1000 * others:.2f} ms = {100 * others / model_ms:.1f} %"
        )
    inside = statistics.median(_model_cpu(r) / r.windows for r in full)
    print(
        f"the model inside the daemon: {1000 * inside:.2f} ms per window, "
        f"{100 * inside / invoke - 100:+.1f} % against bare invoke() measured apart"
    )
    reference = flac_cli_seconds(args.audio)
    if reference is not None:
        per_window = reference / full[0].windows * args.repeat
        print(
            f"for scale: the flac command-line decoder takes {1000 * per_window:.2f} ms of CPU "
            f"per window to decode {args.audio.name} (= {100 * per_window / invoke:.1f} % of "
            "invoke()), libFLAC's own speed on this machine"
        )


def _model_cpu(run: DaemonRun) -> float:
    """The model's CPU time in a run: the inference thread's calls plus its worker threads."""
    return run.model_cpu + run.threads.get("other", 0.0)


def flac_cli_seconds(audio: Path) -> float | None:
    """CPU seconds the ``flac`` command takes to decode ``audio`` (best of 3), if installed."""
    import resource

    exe = shutil.which("flac")
    if exe is None or audio.suffix.lower() != ".flac":
        return None
    best = float("inf")
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(
            [exe, "--decode", "--stdout", "--silent", str(audio)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        best = min(best, used)
    return best


def _ms(values: list[float]) -> str:
    return ", ".join(f"{1000 * v:.2f}" for v in values)


if __name__ == "__main__":
    main()
