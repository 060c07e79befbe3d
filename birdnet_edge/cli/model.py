"""``birdnet-edge model install|info|optimize``: the model files, their check and the optimised
variant."""

from __future__ import annotations

import argparse
from pathlib import Path

from birdnet_edge.cli.options import add_config, add_model_options, config_with, usage
from birdnet_edge.config import load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("model", help="install or inspect the BirdNET model")
    msub = p.add_subparsers(metavar="ACTION")
    m = msub.add_parser("install", help="download and verify the BirdNET V2.4 model")
    add_config(m)
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
    add_config(m)
    add_model_options(m)
    m.set_defaults(handler=cmd_model_info)
    m = msub.add_parser("optimize", help="write the exact, faster FP32 variant (checked first)")
    add_config(m)
    add_model_options(m, choose_model=False)  # it always derives from the FP32 original
    m.add_argument("--audio", type=Path, help="a real recording to include in the check")
    m.set_defaults(handler=cmd_model_optimize)
    p.set_defaults(handler=lambda _a: usage(p))


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

    cfg = config_with(args)
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

    cfg = config_with(args)
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
