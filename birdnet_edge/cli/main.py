"""The ``birdnet-edge`` command line: parse, load the config, call into the package.

Every :class:`BirdnetEdgeError` ends the command with its one-line message and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from birdnet_edge import __version__
from birdnet_edge.cli.stderr_logging import setup_logging
from birdnet_edge.config import Config, ModelConfig, StationConfig, check_value, load_config
from birdnet_edge.errors import BirdnetEdgeError

_LOGGER = logging.getLogger("birdnet_edge")

Handler = Callable[[argparse.Namespace], int]

ANALYZE_MIN_CONF = 0.25  # BirdNET-Analyzer's default, for files


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        code = handler(args)
        sys.stdout.flush()  # now, not at exit: a reader that has gone (`| head`) ends quietly
    except BirdnetEdgeError as exc:
        print(f"birdnet-edge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `birdnet-edge log | head`
        # Python flushes stdout again at exit, into the closed pipe: point it at /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a file or folder the command needs: name it and the cause
        where = f"{exc.filename}: " if exc.filename else ""
        reason = exc.strerror or type(exc).__name__
        print(
            f"birdnet-edge: error: {where}{reason}: check the path, its permissions and the "
            "free space",
            file=sys.stderr,
        )
        return 2
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="birdnet-edge",
        description="Real-time BirdNET bird-sound listener for Raspberry Pi-class computers.",
    )
    parser.add_argument("--version", action="version", version=f"birdnet-edge {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(metavar="COMMAND")

    _add_analyze_parser(sub)
    _add_model_parser(sub)
    _add_daemon_parsers(sub)
    from birdnet_edge.cli import review  # light: sqlite3, csv and json only

    review.register(sub)
    return parser


def _add_analyze_parser(sub: Any) -> None:
    p = sub.add_parser("analyze", help="analyse audio files like BirdNET-Analyzer")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    _add_config(p)
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
    p.add_argument("--lat", type=float, help="latitude for the range filter")
    p.add_argument("--lon", type=float, help="longitude for the range filter")
    p.add_argument("--week", type=int, help="week 1..48 for the range filter, -1 = all year")
    p.add_argument("--locale", help="language of common names, e.g. de")
    _add_model_options(p)
    p.set_defaults(handler=cmd_analyze)


def _add_model_parser(sub: Any) -> None:
    p = sub.add_parser("model", help="install or inspect the BirdNET model")
    msub = p.add_subparsers(metavar="ACTION")
    m = msub.add_parser("install", help="download and verify the BirdNET V2.4 model")
    _add_config(m)
    m.add_argument("--model-dir", type=Path, help="install here (default: the data directory)")
    m.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="PATH",
        help="install this .tflite audio model (e.g. FP16 or INT8) after checking it",
    )
    m.add_argument(
        "--locale",
        action="append",
        default=[],
        metavar="LANG",
        help="also install common names in LANG (repeatable)",
    )
    m.add_argument("--force", action="store_true", help="download again even if valid")
    m.add_argument(
        "--optimize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also derive the exact, faster FP32 variant, used once its check accepts it "
        "(see `model optimize`; default on, not with --from)",
    )
    m.set_defaults(handler=cmd_model_install)
    m = msub.add_parser("info", help="describe the installed models")
    _add_config(m)
    _add_model_options(m)
    m.set_defaults(handler=cmd_model_info)
    m = msub.add_parser("optimize", help="write the exact, faster FP32 variant (checked first)")
    _add_config(m)
    _add_model_options(m, choose_model=False)  # it always derives from the FP32 original
    m.add_argument("--audio", type=Path, help="a real recording to include in the check")
    m.set_defaults(handler=cmd_model_optimize)
    p.set_defaults(handler=lambda _a: _usage(p))


def _add_daemon_parsers(sub: Any) -> None:
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
    _add_model_options(p)
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("devices", help="list audio input devices")
    p.add_argument("-c", "--config", type=Path, help="mark the device this config picks")
    p.set_defaults(handler=cmd_devices)

    p = sub.add_parser("benchmark", help="time each model variant, runtime and thread count")
    _add_config(p)
    p.add_argument("--model-dir", type=Path, help="model directory")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--audio", type=Path, help="also time a whole analysis of this recording")
    p.add_argument(
        "--repeats",
        type=int,
        help="batch-1 invokes per variant (default 15; more for steadier figures)",
    )
    p.set_defaults(handler=cmd_benchmark)

    p = sub.add_parser("check-config", help="validate a config file")
    p.add_argument("file", type=Path)
    p.set_defaults(handler=cmd_check_config)


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", type=Path, help="config file (YAML)")


def _add_model_options(p: argparse.ArgumentParser, *, choose_model: bool = True) -> None:
    p.add_argument("--model-dir", type=Path, help="model directory")
    if choose_model:
        p.add_argument("--model-file", help="audio model file name in the model directory")
        p.add_argument(
            "--variant",
            choices=("auto", "original", "optimized"),
            help="FP32 model variant (auto: the optimised one once accepted)",
        )
    p.add_argument("--runtime", choices=("auto", "litert", "tflite-runtime"))
    p.add_argument("--threads", type=int, help="interpreter threads (0 = one per core)")


def _replace(section: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` with only the options the user gave."""
    given = {k: v for k, v in changes.items() if v is not None}
    return dataclasses.replace(section, **given) if given else section


def _config_with(args: argparse.Namespace) -> Config:
    """The config file (or defaults) overridden by the command-line options given."""
    cfg = load_config(args.config)
    threads = getattr(args, "threads", None)
    if threads is not None:
        threads = check_value(ModelConfig, "threads", threads, "--threads")
    model = _replace(
        cfg.model,
        dir=getattr(args, "model_dir", None),
        file=getattr(args, "model_file", None),
        variant=getattr(args, "variant", None),
        runtime=getattr(args, "runtime", None),
        threads=threads,
        locale=getattr(args, "locale", None)
        if isinstance(getattr(args, "locale", None), str)
        else None,
    )
    return dataclasses.replace(cfg, model=model)


def _analyze_overlap(args: argparse.Namespace, cfg: Config) -> float:
    """--overlap; else the config's (``auto``: this board's); else BirdNET-Analyzer's 0."""
    from birdnet_edge.detect.board import resolve_overlap
    from birdnet_edge.model.files import ModelPaths

    if args.overlap is not None:
        return float(args.overlap)
    if args.config:
        return resolve_overlap(cfg.analysis, ModelPaths.at(cfg.model.dir).dir)
    return 0.0


def cmd_analyze(args: argparse.Namespace) -> int:
    from birdnet_edge.audio.decode import check_audio_file
    from birdnet_edge.cli.analyze import analyze_file, write_csv, write_raven
    from birdnet_edge.config import build
    from birdnet_edge.detect.refine import refinement_of
    from birdnet_edge.detect.stack import load_detector
    from birdnet_edge.paths import check_output, written_whole

    cfg = _config_with(args)
    # Without a config, BirdNET-Analyzer's own grid: windows every 3 s.
    overlap = _analyze_overlap(args, cfg)
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
    filters = _replace(cfg.filters, species_list=args.species_list, week=week)
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
    detector = load_detector(cfg)
    if args.top_n:
        detector.thresholds = dataclasses.replace(detector.thresholds, top_n=args.top_n)
    write = write_raven if args.format == "raven" else write_csv
    progress = sys.stderr.isatty()
    refinement = refinement_of(cfg.analysis.refine) if args.refine else None

    def rows() -> Any:
        for f in args.files:
            yield from analyze_file(f, detector, overlap, refinement, progress=progress)

    if args.output:
        with written_whole(args.output) as out:
            n = write(rows(), out)
        _LOGGER.info("%d detections written to %s", n, args.output)
    else:
        write(rows(), sys.stdout)
    return 0


def cmd_model_install(args: argparse.Namespace) -> int:
    from birdnet_edge.model.files import ModelPaths
    from birdnet_edge.model.install import install_from, install_locale, install_models
    from birdnet_edge.model.probe import choose_runtime

    cfg = load_config(args.config)
    directory = ModelPaths.at(args.model_dir or cfg.model.dir).dir
    if args.source:
        audio = install_from(args.source, directory, runtime=cfg.model.runtime)
    else:
        install_models(directory, force=args.force)
        audio = ModelPaths.at(directory).audio
    runtime = choose_runtime(cfg.model.runtime, audio, threads=cfg.model.threads)
    print(f"runtime {runtime} loads {audio.name} on this machine")
    for locale in args.locale:
        install_locale(directory, locale)
    if args.optimize and not args.source:
        from birdnet_edge.model.optimize.command import ensure_optimized

        ensure_optimized(
            directory, cfg.model.runtime, force=args.force, threshold=cfg.analysis.min_confidence,
            sensitivity=cfg.analysis.sensitivity, threads=cfg.model.threads,
        )  # fmt: skip
    return 0


def cmd_model_optimize(args: argparse.Namespace) -> int:
    from birdnet_edge.model.files import ModelPaths
    from birdnet_edge.model.optimize.command import optimize_model

    cfg = _config_with(args)
    result = optimize_model(
        ModelPaths.at(cfg.model.dir).dir,
        cfg.model.runtime,
        real_audio=args.audio,
        say=print,
        threshold=cfg.analysis.min_confidence,
        sensitivity=cfg.analysis.sensitivity,
        threads=cfg.model.threads,
    )
    return 0 if result.accepted else 1


def cmd_benchmark(args: argparse.Namespace) -> int:
    from birdnet_edge.bench.model_bench import report

    cfg = load_config(args.config)
    model_dir = args.model_dir or cfg.model.dir
    return report(model_dir, audio=args.audio, as_json=args.json, repeats=args.repeats or 15)


def cmd_model_info(args: argparse.Namespace) -> int:
    from birdnet_edge.model.files import META_MODEL
    from birdnet_edge.model.graph_info import summarize
    from birdnet_edge.model.install import verified
    from birdnet_edge.model.probe import choose_runtime
    from birdnet_edge.model.runtime import available_runtimes
    from birdnet_edge.model.variants import (
        active_model,
        check_figure,
        read_report,
        report_figure,
    )

    cfg = _config_with(args)
    active = active_model(cfg.model)
    paths = active.paths
    print(f"model directory: {paths.dir}")
    print(f"runtimes installed: {', '.join(available_runtimes()) or 'none'}")
    others = (
        sorted(
            p.name
            for p in paths.dir.glob("*.tflite")
            if p.name not in (paths.audio_name, META_MODEL)
        )
        if paths.dir.is_dir()
        else []
    )
    for title, path in (
        (f"audio model (active: {active.why})", paths.audio),
        ("range (meta) model", paths.meta),
    ):
        print(f"\n{title}")
        runtime = choose_runtime(cfg.model.runtime, path, threads=cfg.model.threads)
        for line in summarize(path, runtime).lines():
            print(f"  {line}")
    if others:
        print(f"\nother models installed: {', '.join(others)}")
    changed = [name for name, ok in verified(paths.dir).items() if not ok]
    print(
        "\npinned BirdNET V2.4 files: "
        + (
            f"{', '.join(changed)} missing or changed (a damaged SD card?): run `birdnet-edge "
            "model install` to replace them"
            if changed
            else "each matches its sha256"
        )
    )
    report = read_report(paths.dir)
    if report is not None:
        print("\noptimised variant's equivalence check against the original:")
        for key in ("generated", "real"):
            check = report.get(key)
            if isinstance(check, dict):
                where = "generated signals" if key == "generated" else report.get("real_audio")
                figures = ", ".join(
                    f"{label} {value:.1e}" if value is not None else f"{label} ?"
                    for label, value in (
                        ("max |Δlogit|", report_figure(report, key, "max_delta_logit")),
                        ("max |Δp|", report_figure(report, key, "max_delta_p")),
                    )
                )
                print(
                    f"  {where}: {check.get('windows')} windows, {figures}, "
                    f"top-1 {check.get('top1_agree')}/{check.get('windows')}"
                )
        edges = report.get("edges")
        for edge in edges if isinstance(edges, list) else ():
            scored = edge.get("scored") if isinstance(edge, dict) else None
            if isinstance(scored, dict):
                delta, alone = (
                    f"{v:.1e}" if v is not None else "?"
                    for v in (
                        check_figure(scored, "max_delta_p"),
                        check_figure(edge, "variant_max_delta_p"),
                    )
                )
                print(
                    f"  {edge.get('name')} windows: {scored.get('windows')}, max |Δp| {delta} as "
                    f"scored ({edge.get('by_original')} by the original; the variant alone {alone})"
                )
        print(f"  verdict: {report.get('reason', '')}")
    locales = sorted(p.stem.rsplit("_Labels_", 1)[1] for p in paths.dir.glob("*_Labels_*.txt"))
    print(f"\nlabels: {paths.labels}" + (f" (+ locales: {', '.join(locales)})" if locales else ""))
    return 0


def _timestamp(text: str) -> float:
    import datetime as dt

    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if when.tzinfo is None:
        when = when.astimezone()  # local time
    return when.timestamp()


def _run_config_path(args: argparse.Namespace) -> Path | None:
    from birdnet_edge.paths import default_config_path

    if args.config is not None:
        return Path(args.config)
    default = default_config_path()
    return default if default.is_file() else None


def cmd_run(args: argparse.Namespace) -> int:
    from birdnet_edge.audio.decode import check_audio_file
    from birdnet_edge.daemon.preflight import preflight
    from birdnet_edge.daemon.service import RunOptions, run_daemon

    args.config = _run_config_path(args)
    cfg = _config_with(args)
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
    )
    return run_daemon(cfg, options)


def cmd_devices(args: argparse.Namespace) -> int:
    from birdnet_edge.audio.devices import list_input_devices

    cfg = load_config(_run_config_path(args))  # the config `run` would use
    lines = list_input_devices(cfg.audio.device)
    if not lines:
        raise BirdnetEdgeError("no audio input devices found: plug in a USB microphone")
    print("  idx  name  (input channels, default rate); * = the device the config picks")
    print("\n".join(lines))
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from birdnet_edge.daemon.preflight import preflight
    from birdnet_edge.detect.board import overlap_warning
    from birdnet_edge.model.files import ModelPaths

    cfg = load_config(args.file)
    warnings = preflight(cfg)  # what `run` would refuse, and what it would warn about
    overlap = overlap_warning(cfg.analysis, ModelPaths.at(cfg.model.dir).dir)
    for warning in [*warnings, *([overlap] if overlap else [])]:
        print(f"{args.file}: warning: {warning}", file=sys.stderr)
    print(f"{args.file}: OK")
    return 0
