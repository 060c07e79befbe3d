"""``birdnet-edge run``: the daemon in the foreground (systemd runs this)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from birdnet_edge.cli.options import add_model_options, config_with, run_config_path

_LOGGER = logging.getLogger("birdnet_edge")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="listen and report birds (the daemon)")
    p.add_argument(
        "-c",
        "--config",
        type=Path,
        help="config file (default: $CONFIGURATION_DIRECTORY or $XDG_CONFIG_HOME "
        "birdnet-edge/config.yaml, if it exists)",
    )
    p.add_argument(
        "--input",
        type=Path,
        metavar="FILE",
        help="replay a recording through the live path instead of the microphone",
    )
    p.add_argument("--fast", action="store_true", help="with --input: as fast as possible")
    p.add_argument(
        "--start-time",
        type=_timestamp,
        metavar="ISO8601",
        help="with --input: wall-clock time of the first sample (default now)",
    )
    p.add_argument(
        "--scores-out",
        type=Path,
        metavar="FILE.npz",
        help="also save every window's confidences (for checks and tests)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no line per detection on stdout")
    p.add_argument(
        "--explain",
        action="store_true",
        help="log each window's best labels and what became of each: reported, below its "
        "threshold, left out by a filter, or dropped by a privacy, noise or daylight rule",
    )
    add_model_options(p)
    p.set_defaults(handler=cmd_run)


def _timestamp(text: str) -> float:
    import datetime as dt

    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if when.tzinfo is None:
        when = when.astimezone()  # local time
    return when.timestamp()


def cmd_run(args: argparse.Namespace) -> int:
    from birdnet_edge.audio.decode import check_audio_file
    from birdnet_edge.daemon.preflight import preflight
    from birdnet_edge.daemon.service import RunOptions, run_daemon

    args.config = run_config_path(args)
    cfg = config_with(args)
    for warning in preflight(cfg):  # the checks check-config makes, before anything starts
        _LOGGER.warning("%s", warning)
    if args.input is not None:
        check_audio_file(args.input)  # before the model loads
    if args.config is not None:
        _LOGGER.info("config %s", args.config)
    options = RunOptions(
        config_path=args.config,
        input_file=args.input,
        fast=args.fast,
        start_time=args.start_time,
        scores_out=args.scores_out,
        console=not args.quiet,
        explain=args.explain,
    )
    return run_daemon(cfg, options)
