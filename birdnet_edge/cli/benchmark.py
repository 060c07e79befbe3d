"""``birdnet-edge benchmark``: time each model variant, runtime and thread count."""

from __future__ import annotations

import argparse
from pathlib import Path

from birdnet_edge.cli.options import add_config
from birdnet_edge.config import load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("benchmark", help="time each model variant, runtime and thread count")
    add_config(p)
    p.add_argument("--model-dir", type=Path, help="model directory")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--audio", type=Path, help="also time a whole analysis of this recording")
    p.add_argument(
        "--repeats",
        type=int,
        help="batch-1 invokes per variant (default 15; more for steadier figures)",
    )
    p.set_defaults(handler=cmd_benchmark)


def cmd_benchmark(args: argparse.Namespace) -> int:
    from birdnet_edge.bench.model_bench import report

    cfg = load_config(args.config)
    model_dir = args.model_dir or cfg.model.dir
    return report(model_dir, audio=args.audio, as_json=args.json, repeats=args.repeats or 15)
