"""Benchmark the installed model variants: what a user runs on a new board.

For each model variant in the model directory (the FP32 original, the optimised variant when
present, any other installed audio ``.tflite``), each available runtime and each thread count
from 1 to the number of cores: median and p95 ``invoke()`` time per 3 s window at batch 1 and
batched, the real-time factor, the start-up time to the first scored window, and the largest
overlap the board sustains with 30 % headroom. Variants are measured interleaved (one invoke of
each in turn) so that their ratio is fair on a busy machine::

    python -m birdnet_edge.bench.model_bench [--model-dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from birdnet_edge.audio.format import WINDOW_SAMPLES, WINDOW_SECONDS
from birdnet_edge.detect.board import HEADROOM, BoardBenchmark, fitting_overlap, remember, today
from birdnet_edge.detect.board import max_grid_overlap as max_overlap
from birdnet_edge.model.files import AUDIO_MODEL, META_MODEL, ModelPaths
from birdnet_edge.model.runtime import FloatArray, TFLiteModel, available_runtimes, default_threads
from birdnet_edge.model.variants import OPTIMIZED_MODEL

Say = Callable[[str], None]


@dataclass(frozen=True)
class Measurement:
    """One variant on one runtime at one thread count; times in milliseconds per window."""

    variant: str
    file: str
    runtime: str
    threads: int
    batch1_median_ms: float
    batch1_p95_ms: float
    batch: int
    batched_median_ms: float
    batched_p95_ms: float
    realtime_factor: float
    startup_s: float
    max_overlap_s: float
    vs_original: float | None = None


def variant_files(model_dir: Path) -> list[tuple[str, Path]]:
    """(name, path) of every audio model in ``model_dir``: original, optimised, then others."""
    found: list[tuple[str, Path]] = []
    for name, file in (("original", AUDIO_MODEL), ("optimized", OPTIMIZED_MODEL)):
        if (model_dir / file).is_file():
            found.append((name, model_dir / file))
    known = {AUDIO_MODEL, OPTIMIZED_MODEL, META_MODEL}
    for path in sorted(model_dir.glob("*.tflite")):
        if path.name not in known and "MData" not in path.name:
            found.append((path.stem, path))
    return found


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure(
    variants: Sequence[tuple[str, Path]],
    runtime: str,
    threads: int,
    *,
    repeats: int = 15,
    batch: int = 8,
    batched_repeats: int = 4,
) -> list[Measurement]:
    """Measure ``variants`` side by side: each round invokes every variant once, in turn."""
    rng = np.random.default_rng(0)
    windows: FloatArray = rng.normal(0.0, 0.1, (batch, 144_000)).astype(np.float32)
    models: list[TFLiteModel] = []
    startup: list[float] = []
    for _, path in variants:
        t0 = time.perf_counter()
        model = TFLiteModel(path, runtime, threads)
        model.predict(windows[:1])
        startup.append(time.perf_counter() - t0)
        models.append(model)
    single: list[list[float]] = [[] for _ in models]
    batched: list[list[float]] = [[] for _ in models]
    for _ in range(repeats):
        for i, model in enumerate(models):
            t0 = time.perf_counter()
            model.predict(windows[:1])
            single[i].append(time.perf_counter() - t0)
    for model in models:  # resizing to the batch (and XNNPACK's re-plan) is not timed
        model.predict(windows)
    for _ in range(batched_repeats):
        for i, model in enumerate(models):
            t0 = time.perf_counter()
            model.predict(windows)
            batched[i].append((time.perf_counter() - t0) / batch)
    results = []
    base = float(np.median(single[0])) if single and variants[0][0] == "original" else None
    for (name, path), one, many, start in zip(variants, single, batched, startup, strict=True):
        median = float(np.median(one))
        results.append(
            Measurement(
                variant=name,
                file=path.name,
                runtime=runtime,
                threads=threads,
                batch1_median_ms=median * 1e3,
                batch1_p95_ms=_percentile(one, 95) * 1e3,
                batch=batch,
                batched_median_ms=float(np.median(many)) * 1e3,
                batched_p95_ms=_percentile(many, 95) * 1e3,
                realtime_factor=WINDOW_SECONDS / median,
                startup_s=start,
                max_overlap_s=max_overlap(median),
                vs_original=round(median / base, 3) if base else None,
            )
        )
    return results


def run_benchmark(
    model_dir: Path | None = None,
    *,
    runtimes: Sequence[str] | None = None,
    threads: Sequence[int] | None = None,
    repeats: int = 15,
    batch: int = 8,
    say: Say = print,
) -> list[Measurement]:
    """Measure every variant, runtime and thread count; prints a table and a recommendation."""
    directory = ModelPaths.at(model_dir).dir
    variants = variant_files(directory)
    if not variants:
        from birdnet_edge.errors import ModelError

        raise ModelError(
            f"no audio model in {directory}: run `birdnet-edge model install` (or --model-dir)"
        )
    results: list[Measurement] = []
    for runtime in runtimes or available_runtimes():
        for n in threads or range(1, default_threads() + 1):
            results += measure(variants, runtime, n, repeats=repeats, batch=batch)
    for line in report_lines(results):
        say(line)
    return results


def report_lines(results: Sequence[Measurement]) -> list[str]:
    """The table and the recommendation, as printed."""
    if not results:
        return []
    batch = results[0].batch
    header = (
        f"{'variant':<12} {'runtime':<15} {'thr':>3} {'b1 median':>10} {'b1 p95':>9} "
        f"{f'b{batch}/window':>10} {'x realtime':>10} {'start-up':>9} {'max overlap':>11} "
        f"{'vs original':>11}"
    )
    lines = [header]
    for m in results:
        ratio = f"{m.vs_original:.2f}" if m.vs_original is not None else "-"
        lines.append(
            f"{m.variant:<12} {m.runtime:<15} {m.threads:>3} {m.batch1_median_ms:>7.1f} ms "
            f"{m.batch1_p95_ms:>6.1f} ms {m.batched_median_ms:>7.1f} ms {m.realtime_factor:>9.0f}x "
            f"{m.startup_s:>7.2f} s {m.max_overlap_s:>9.1f} s {ratio:>11}"
        )
    lines.append(recommendation(results))
    return lines


def recommendation(results: Sequence[Measurement]) -> str:
    """One line: the fastest combination for live listening (batch 1), and what it allows."""
    best = min(results, key=lambda m: m.batch1_median_ms)
    cfg = f"runtime: {best.runtime}, threads: {best.threads}"
    if best.variant == "original":
        model = "the original model"
    elif best.variant == "optimized":
        model = "the optimised model (model.variant: auto, once `model install` derived it)"
    else:
        model = f"model file {best.file}"
    live = fitting_overlap(best.batch1_median_ms / 1000, refine=True)
    return (
        f"recommendation: {model} with {cfg}: {best.batch1_median_ms:.1f} ms per window "
        f"({best.realtime_factor:.0f}x real time); overlap up to {best.max_overlap_s:.1f} s "
        f"keeps {HEADROOM:.0%} headroom on the grid alone, {live:.1f} s with refinement in a "
        "dawn chorus (analysis.overlap: auto)"
    )


def remember_best(results: Sequence[Measurement], model_dir: Path | None) -> Path | None:
    """Remember the fastest setting for ``analysis.overlap: auto`` (``board.json``)."""
    best = min(results, key=lambda m: m.batch1_median_ms)
    board = BoardBenchmark(
        per_window_ms=round(best.batch1_median_ms, 2),
        variant=best.variant,
        runtime=best.runtime,
        threads=best.threads,
        measured=today(),
    )
    return remember(ModelPaths.at(model_dir).dir, board)


def analysis_throughput(audio: Path, model_dir: Path | None) -> tuple[float, float]:
    """(seconds of audio, wall seconds) for scoring every window of ``audio`` as ``analyze``."""
    from birdnet_edge.audio.decode import file_duration, iter_audio
    from birdnet_edge.config import AnalysisConfig, Config, ModelConfig
    from birdnet_edge.detect.detector import scan
    from birdnet_edge.detect.stack import load_detector

    cfg = Config(model=ModelConfig(dir=model_dir), analysis=AnalysisConfig(min_confidence=0.25))
    detector = load_detector(cfg)
    detector.classifier.logits(np.zeros((1, WINDOW_SAMPLES), dtype=np.float32))  # warm up
    t0 = time.perf_counter()
    for _ in scan(iter_audio(audio), detector):
        pass
    return file_duration(audio), time.perf_counter() - t0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="model directory (default: installed)")
    parser.add_argument("--runtime", action="append", help="only this runtime (repeatable)")
    parser.add_argument("--threads", type=int, action="append", help="only this thread count")
    parser.add_argument("--repeats", type=int, default=15, help="batch-1 invokes per variant")
    parser.add_argument("--batch", type=int, default=8, help="batch size of the batched runs")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--audio", type=Path, help="also time a whole `analyze` of this file")
    args = parser.parse_args(argv)
    return report(
        args.model_dir,
        audio=args.audio,
        as_json=args.json,
        runtimes=args.runtime,
        threads=args.threads,
        repeats=args.repeats,
        batch=args.batch,
    )


def report(
    model_dir: Path | None,
    *,
    audio: Path | None = None,
    as_json: bool = False,
    runtimes: list[str] | None = None,
    threads: list[int] | None = None,
    repeats: int = 15,
    batch: int = 8,
) -> int:
    """Time every variant, remember the best for ``analysis.overlap: auto`` and print the
    results (a table, or JSON); ``birdnet-edge benchmark`` and this module's command."""
    say: Say = (lambda _line: None) if as_json else print
    results = run_benchmark(
        model_dir,
        runtimes=runtimes,
        threads=threads,
        repeats=repeats,
        batch=batch,
        say=say,
    )
    saved = remember_best(results, model_dir) if results else None
    if saved is not None:
        say(f"remembered in {saved} for analysis.overlap: auto")
    throughput = analysis_throughput(audio, model_dir) if audio else None
    if throughput is not None and audio is not None:
        say(
            f"analyze {audio.name}: {throughput[0]:.0f} s of audio in {throughput[1]:.2f} s "
            f"= {throughput[0] / throughput[1]:.0f}x real time (decode, windows, model, scoring)"
        )
    if as_json:
        json.dump(
            {
                "results": [asdict(m) for m in results],
                "recommendation": recommendation(results),
                "analysis": None
                if throughput is None
                else {"audio_s": throughput[0], "wall_s": throughput[1]},
            },
            sys.stdout,
            indent=2,
        )
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
