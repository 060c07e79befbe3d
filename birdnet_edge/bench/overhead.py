"""Benchmark the pipeline's overhead over bare ``invoke()``, and its memory over a soak.

    python -m birdnet_edge.bench.overhead --repeat 5            # CPU: daemon vs bare invoke
    python -m birdnet_edge.bench.overhead --soak-hours 4        # RSS over hours of audio

The daemon run is the whole thing at full replay speed: decoding, ring buffer, windows,
scoring, filters, events, the SQLite log and, when ``mosquitto`` is installed, MQTT to a local
broker. The bare run calls the model on exactly the same windows in the same batch size. Both
count process CPU time (all threads), so the ratio is what the pipeline adds.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from birdnet_edge.audio.decode import iter_audio
from birdnet_edge.audio.ring import RingBuffer
from birdnet_edge.audio.windows import Windower, make_batch
from birdnet_edge.bench import rss_mb
from birdnet_edge.config import (
    AnalysisConfig,
    Config,
    DatabaseConfig,
    ModelConfig,
    MQTTConfig,
)
from birdnet_edge.listener import MAX_BATCH
from birdnet_edge.model.birdnet import Classifier
from birdnet_edge.model.files import NUM_CLASSES, ModelPaths
from birdnet_edge.model.runtime import FloatArray
from birdnet_edge.service import Daemon, RunOptions

BATCH = MAX_BATCH  # the listener's batch size when it is behind (as in a full-speed replay)


@contextmanager
def local_broker() -> Iterator[int | None]:
    """A throw-away mosquitto on a free loopback port, or None when it is not installed."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).is_file():
        yield None
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        proc = subprocess.Popen([exe, "-c", str(conf)], stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        try:
            yield port
        finally:
            proc.terminate()
            proc.wait(5)


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


def daemon_cpu(  # noqa: PLR0917 - a benchmark's knobs
    audio: Path,
    model_dir: Path | None,
    model_file: str | None,
    threads: int,
    repeat: int,
    port: int | None,
    db: Path,
    *,
    without_model: bool = False,
) -> tuple[float, int, list[float]]:
    """CPU seconds for the whole daemon replaying ``audio`` ``repeat`` times at full speed.

    ``without_model`` replaces ``invoke()`` by constant logits (one detection per window), so
    what remains is the pipeline's own cost.
    """
    cfg = Config(
        model=ModelConfig(dir=model_dir, file=model_file, threads=threads),
        analysis=AnalysisConfig(min_confidence=0.25),
        database=DatabaseConfig(path=db),
        mqtt=MQTTConfig(enabled=port is not None, host="127.0.0.1", port=port or 1883),
    )
    daemon = Daemon(cfg, RunOptions(input_file=audio, fast=True, console=False, repeat=repeat))
    if without_model:
        logits = np.full((BATCH, NUM_CLASSES), -5.0, dtype=np.float32)
        logits[:, 100] = 3.0

        def constant(windows: FloatArray) -> FloatArray:
            return typing.cast(FloatArray, logits[: len(windows)].copy())

        daemon.detector.classifier.logits = constant  # type: ignore[method-assign]
    samples: list[float] = []
    thread = threading.Thread(target=daemon.run)
    cpu = time.process_time()
    thread.start()
    while thread.is_alive():
        samples.append(rss_mb())
        thread.join(5.0)
    return time.process_time() - cpu, daemon.listener.stats.windows, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, default=Path("../shared/data/soundscape.flac"))
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--model-file", help="audio model file name in the model directory")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5, help="plays of the file per run")
    parser.add_argument(
        "--soak-hours",
        type=float,
        default=0.0,
        help="instead: replay this many hours of audio and report RSS",
    )
    args = parser.parse_args()
    model = ModelPaths.at(args.model_dir, args.model_file).audio
    with tempfile.TemporaryDirectory() as tmp, local_broker() as port:
        db = Path(tmp) / "detections.db"
        if args.soak_hours > 0:
            plays = max(1, round(args.soak_hours * 3600 / 120))
            t0 = time.monotonic()
            _, windows, rss = daemon_cpu(
                args.audio, args.model_dir, args.model_file, args.threads, plays, port, db
            )
            size = model.stat().st_size / 1e6
            print(
                f"soak: {windows} windows ({windows * 3 / 3600:.1f} h of audio) in "
                f"{time.monotonic() - t0:.0f} s, MQTT {'on' if port else 'off'}"
            )
            print(
                f"RSS: start {rss[1] if len(rss) > 1 else rss[0]:.0f} MB, end {rss[-1]:.0f} MB, "
                f"max {max(rss):.0f} MB (model file {size:.0f} MB; budget {size + 120:.0f} MB)"
            )
            return
        bare, n_bare = bare_invoke_cpu(args.audio, model, args.threads, args.repeat)
        full, n_full, _ = daemon_cpu(
            args.audio, args.model_dir, args.model_file, args.threads, args.repeat, port, db
        )
        bare_pipe, n_pipe, _ = daemon_cpu(
            args.audio,
            args.model_dir,
            args.model_file,
            args.threads,
            args.repeat,
            port,
            Path(tmp) / "pipeline-only.db",
            without_model=True,
        )
    print(
        f"{args.repeat} plays of {args.audio.name}, {args.threads} thread(s), batch {BATCH}, "
        f"MQTT {'to a local broker' if port else 'off (mosquitto not installed)'}"
    )
    print(
        f"bare invoke(): {bare:.2f} s CPU for {n_bare} windows "
        f"({1000 * bare / n_bare:.1f} ms/window)"
    )
    print(
        f"whole daemon:  {full:.2f} s CPU for {n_full} windows "
        f"({1000 * full / n_full:.1f} ms/window)"
    )
    print(
        f"pipeline overhead: {100 * (full / n_full) / (bare / n_bare) - 100:+.1f} % CPU "
        "(difference of the two runs above; noisy on a busy machine)"
    )
    print(
        f"pipeline alone (model replaced by constant logits, 1 event per window): "
        f"{bare_pipe:.2f} s CPU, {1000 * bare_pipe / n_pipe:.2f} ms/window = "
        f"{100 * (bare_pipe / n_pipe) / (bare / n_bare):.1f} % of invoke()"
    )
    cpu = time.process_time()
    for _ in range(args.repeat):
        for _chunk in iter_audio(args.audio, block_seconds=1.0):
            pass
    decode = (time.process_time() - cpu) / n_pipe
    print(
        f"  of which decoding {args.audio.suffix} (none with a microphone): "
        f"{1000 * decode:.2f} ms/window = {100 * decode / (bare / n_bare):.1f} % of invoke()"
    )


if __name__ == "__main__":
    main()
