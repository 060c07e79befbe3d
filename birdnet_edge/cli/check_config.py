"""``birdnet-edge check-config``: what ``run`` would refuse in a config, and what it would warn
about."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from birdnet_edge.config import load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("check-config", help="validate a config file")
    p.add_argument("file", type=Path)
    p.set_defaults(handler=cmd_check_config)


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
