"""``birdnet-edge species``: what the range filter expects where you are, in your language."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from birdnet_edge.cli.options import add_model_options, config_with, run_config_path
from birdnet_edge.config import StationConfig, check_value
from birdnet_edge.errors import BirdnetEdgeError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "species",
        help="list the species the range filter expects at a place and week",
        description="The species BirdNET's range model expects at the station (or --lat/--lon) "
        "in a week (--week 1..48, or the week of --date; default this week), most likely first, "
        "with common names in the configured language (or --locale). The daemon reports only "
        "these when filters.range_filter is on.",
    )
    p.add_argument("-c", "--config", type=Path, help="config file (default: the one `run` uses)")
    p.add_argument("--lat", type=float, help="latitude (default: station.latitude)")
    p.add_argument("--lon", type=float, help="longitude (default: station.longitude)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--week", type=int, help="BirdNET week 1..48 (four a month)")
    when.add_argument("--date", type=dt.date.fromisoformat, help="the week of this date")
    p.add_argument("--locale", help="language of common names, e.g. de")
    p.add_argument("--threshold", type=float, help="occurrence threshold (filters.range_threshold)")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_model_options(p, choose_model=False)
    p.set_defaults(handler=cmd_species)


def cmd_species(args: argparse.Namespace) -> int:
    from birdnet_edge.detect.filters import week_of_year
    from birdnet_edge.model.birdnet import RangeModel, load_labels
    from birdnet_edge.model.files import ModelPaths
    from birdnet_edge.model.probe import choose_runtime

    args.config = run_config_path(args)
    cfg = config_with(args)
    lat = args.lat if args.lat is not None else cfg.station.latitude
    lon = args.lon if args.lon is not None else cfg.station.longitude
    if lat is None or lon is None:
        raise BirdnetEdgeError(
            "no location: give --lat and --lon, or set station.latitude and station.longitude"
        )
    lat = check_value(StationConfig, "latitude", lat, "--lat")
    lon = check_value(StationConfig, "longitude", lon, "--lon")
    if args.week is not None and not 1 <= args.week <= 48:
        raise BirdnetEdgeError(f"--week must be 1..48, got {args.week}")
    week = args.week or week_of_year(args.date or dt.date.today())
    threshold = args.threshold if args.threshold is not None else cfg.filters.range_threshold
    if not 0.0 < threshold < 1.0:
        raise BirdnetEdgeError(f"--threshold must be between 0 and 1, got {threshold:g}")
    paths = ModelPaths.at(cfg.model.dir)
    labels = load_labels(paths, args.locale or cfg.model.locale)
    meta = RangeModel(paths.meta, choose_runtime(cfg.model.runtime, paths.meta, threads=1), 1)
    occurrence = meta.occurrence(lat, lon, week)
    ranked = sorted(
        (i for i in range(len(labels)) if occurrence[i] >= threshold),
        key=lambda i: (-float(occurrence[i]), labels[i].common),
    )
    if args.json:
        rows = [
            {"common": labels[i].common, "scientific": labels[i].scientific,
             "occurrence": round(float(occurrence[i]), 4)}
            for i in ranked
        ]  # fmt: skip
        json.dump({"latitude": lat, "longitude": lon, "week": week, "species": rows}, sys.stdout,
                  ensure_ascii=False, indent=1)  # fmt: skip
        print()
        return 0
    width = max((len(labels[i].common) for i in ranked), default=7)
    for i in ranked:
        name, scientific = labels[i].common, labels[i].scientific
        print(f"{name:<{width}}  {scientific:<32}  {occurrence[i]:.3f}")
    where = f"{lat:.2f}, {lon:.2f}"
    print(f"{len(ranked)} species at {where} in week {week} (occurrence >= {threshold:g})")
    return 0
