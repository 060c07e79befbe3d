"""Recordings analysed like BirdNET-Analyzer: a row per detected window, as its CSV or a Raven
selection table (``birdnet-edge analyze``)."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from birdnet_edge.audio.decode import file_duration, iter_audio
from birdnet_edge.audio.format import SAMPLE_RATE, WINDOW_SAMPLES, WINDOW_SECONDS
from birdnet_edge.detect.detector import Detector, scan
from birdnet_edge.detect.refine import Refinement
from birdnet_edge.detect.sounds import SoundGate
from birdnet_edge.model.labels import Label

CSV_HEADER = ("Start (s)", "End (s)", "Scientific name", "Common name", "Confidence", "File")
RAVEN_HEADER = (
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Common Name",
    "Scientific Name",
    "Confidence",
    "Begin Path",
    "File Offset (s)",
)


@dataclass(frozen=True)
class Row:
    """One detection in one window of one file."""

    start: float
    end: float
    label: Label
    confidence: float
    file: Path


def analyze_file(
    path: Path,
    detector: Detector,
    overlap: float,
    refinement: Refinement | None = None,
    *,
    progress: bool = False,
) -> Iterator[Row]:
    """Every label at or above the threshold in every window of ``path``, in file order
    (with ``refinement``: in every window reported, see :mod:`birdnet_edge.detect.refine`)."""
    duration = file_duration(path) if progress else 0.0
    gate = SoundGate()  # privacy and noise rules, when the detector has them (--classes)
    for scored in scan(iter_audio(path), detector, overlap, refinement=refinement):
        start = scored.span.start / SAMPLE_RATE
        if progress and duration > 0:
            done = min(100.0, 100.0 * (start + WINDOW_SECONDS) / duration)
            print(f"\r{path.name}: {done:5.1f} %", end="", file=sys.stderr, flush=True)
        end = window_end(scored.span.start, scored.span.audio)
        hits = scored.hits
        rules = detector.thresholds.sounds
        if rules is not None:
            span = scored.span
            hits = gate.window(
                rules, span.start, span.start + span.audio, scored.confidences, hits
            ).hits
        for index, confidence in hits:
            yield Row(start, end, detector.labels[index], confidence, path)
    if progress:
        print(file=sys.stderr)


def window_end(start: int, audio: int) -> float:
    """A window's end in seconds, as BirdNET-Analyzer reports it: start + 3 s, or for a
    zero-padded last window the recording's end, rounded to 2 decimals (72.048 s: 72.05)."""
    if audio >= WINDOW_SAMPLES:
        return start / SAMPLE_RATE + WINDOW_SECONDS
    return round((start + audio) / SAMPLE_RATE, 2)


def _seconds(x: float) -> str:
    return f"{round(x, 3)}"


def write_csv(rows: Sequence[Row] | Iterator[Row], out: TextIO) -> int:
    """BirdNET-Analyzer's CSV format; returns the number of rows written."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    n = 0
    for r in rows:
        writer.writerow(
            [
                _seconds(r.start),
                _seconds(r.end),
                r.label.scientific,
                r.label.common,
                f"{r.confidence:.4f}",
                str(r.file),
            ]
        )
        n += 1
    return n


def write_raven(rows: Sequence[Row] | Iterator[Row], out: TextIO) -> int:
    """A Raven selection table (tab-separated), as BirdNET-Analyzer writes it."""
    out.write("\t".join(RAVEN_HEADER) + "\n")
    n = 0
    for n, r in enumerate(rows, 1):
        out.write(
            "\t".join(
                [
                    str(n),
                    "Spectrogram 1",
                    "1",
                    _seconds(r.start),
                    _seconds(r.end),
                    "0",
                    "15000",
                    r.label.common,
                    r.label.scientific,
                    f"{r.confidence:.4f}",
                    str(r.file),
                    _seconds(r.start),
                ]
            )
            + "\n"
        )
    return n
