"""``birdnet-edge analyze``: files in, BirdNET-Analyzer's CSV or a Raven selection table out."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from birdnet_edge.detect.recordings import Row

from birdnet_edge.cli.options import add_config, add_model_options, config_with, replace_given
from birdnet_edge.config import Config, FiltersConfig, StationConfig, check_value
from birdnet_edge.errors import BirdnetEdgeError

_LOGGER = logging.getLogger("birdnet_edge")


ANALYZE_MIN_CONF = 0.25  # BirdNET-Analyzer's default, for files


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("analyze", help="analyse audio files like BirdNET-Analyzer")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    add_config(p)
    p.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    p.add_argument("--format", choices=("csv", "raven"), default="csv")
    p.add_argument(
        "--min-conf", type=float, help=f"minimum confidence (default {ANALYZE_MIN_CONF})"
    )
    p.add_argument("--sensitivity", type=float, help="sensitivity 0.5..1.5 (default 1.0)")
    p.add_argument("--overlap", type=float, help="window overlap in seconds, 0 <= overlap < 3")
    p.add_argument(
        "--refine",
        action="store_true",
        help="also score the windows between grid windows where a species comes near the "
        "threshold, as the daemon does (analysis.refine)",
    )
    p.add_argument(
        "--top-n",
        type=int,
        metavar="N",
        help="report each window's N best labels whatever their score (--min-conf is then "
        "ignored, as in BirdNET-Analyzer), within the species list or range filter",
    )
    p.add_argument("--species-list", type=Path, help="only report the species in this file")
    p.add_argument(
        "--classes",
        nargs="+",
        choices=("birds", "insects", "frogs", "mammals"),
        metavar="KIND",
        help="report only these kinds of animal (birds, insects, frogs, mammals), and apply the "
        "config's privacy and noise rules, as the daemon does; default: every label, "
        "BirdNET's sounds (human, dog, engine...) included, as BirdNET-Analyzer",
    )
    p.add_argument("--lat", type=float, help="latitude for the range filter")
    p.add_argument("--lon", type=float, help="longitude for the range filter")
    p.add_argument("--week", type=int, help="week 1..48 for the range filter, -1 = all year")
    p.add_argument("--locale", help="language of common names, e.g. de")
    add_model_options(p)
    p.set_defaults(handler=run)


def _with_classes(cfg: Config, classes: list[str] | None) -> Config:
    """``--classes`` as ``filters.classes`` (checked as in a config file)."""
    if not classes:
        return cfg
    chosen = check_value(FiltersConfig, "classes", classes, "--classes")
    return dataclasses.replace(cfg, filters=dataclasses.replace(cfg.filters, classes=chosen))


def analyze_overlap(args: argparse.Namespace, cfg: Config) -> float:
    """--overlap; else the config's (``auto``: this board's); else BirdNET-Analyzer's 0."""
    from birdnet_edge.detect.board import resolve_overlap
    from birdnet_edge.model.files import ModelPaths

    if args.overlap is not None:
        return float(args.overlap)
    if args.config:
        return resolve_overlap(cfg.analysis, ModelPaths.at(cfg.model.dir).dir)
    return 0.0


def run(args: argparse.Namespace) -> int:
    from birdnet_edge.audio.decode import check_audio_file
    from birdnet_edge.config import build
    from birdnet_edge.detect.recordings import analyze_file, write_csv, write_raven
    from birdnet_edge.detect.refine import refinement_of
    from birdnet_edge.detect.stack import load_detector
    from birdnet_edge.paths import check_output, written_whole

    cfg = config_with(args)
    # Without a config, BirdNET-Analyzer's own grid: windows every 3 s.
    overlap = analyze_overlap(args, cfg)
    if not 0.0 <= overlap < 3.0:
        raise BirdnetEdgeError(f"--overlap must be at least 0 and less than 3 s, got {overlap:g}")
    min_conf = args.min_conf
    if min_conf is None:
        min_conf = cfg.analysis.min_confidence if args.config else ANALYZE_MIN_CONF
    # Validate the options through the config's own limits, so messages name the option.
    analysis = build(
        type(cfg.analysis),
        {
            "min_confidence": min_conf,
            "sensitivity": args.sensitivity
            if args.sensitivity is not None
            else cfg.analysis.sensitivity,
            "overlap": min(overlap, 2.9),
        },
        "options",
    )
    analysis = dataclasses.replace(analysis, refine=cfg.analysis.refine)
    station = cfg.station
    if args.week is not None and args.week != -1 and not 1 <= args.week <= 48:
        raise BirdnetEdgeError(f"--week must be 1..48 or -1 (all year), got {args.week}")
    week = args.week if args.week is not None else (None if args.config else -1)  # BNA: all year
    filters = replace_given(cfg.filters, species_list=args.species_list, week=week)
    if args.lat is not None or args.lon is not None:
        if args.lat is None or args.lon is None:
            raise BirdnetEdgeError("--lat and --lon must be given together")
        station = dataclasses.replace(
            station,
            latitude=check_value(StationConfig, "latitude", args.lat, "--lat"),
            longitude=check_value(StationConfig, "longitude", args.lon, "--lon"),
        )
        filters = dataclasses.replace(filters, range_filter=True)
    cfg = dataclasses.replace(cfg, analysis=analysis, station=station, filters=filters)
    for f in args.files:
        check_audio_file(f)
    if args.output:
        check_output(args.output)
    if args.top_n is not None and args.top_n < 1:
        raise BirdnetEdgeError(f"--top-n must be at least 1, got {args.top_n}")
    if args.top_n and args.refine:
        raise BirdnetEdgeError("--top-n and --refine do not go together: choose one")
    detector = load_detector(_with_classes(cfg, args.classes), kinds=bool(args.classes))
    if args.top_n:
        detector.thresholds = dataclasses.replace(detector.thresholds, top_n=args.top_n)
    write = write_raven if args.format == "raven" else write_csv
    progress = sys.stderr.isatty()
    refinement = refinement_of(cfg.analysis.refine) if args.refine else None

    def rows() -> Iterator[Row]:
        for f in args.files:
            yield from analyze_file(f, detector, overlap, refinement, progress=progress)

    if args.output:
        with written_whole(args.output) as out:
            n = write(rows(), out)
        _LOGGER.info("%d detections written to %s", n, args.output)
    else:
        write(rows(), sys.stdout)
    return 0
