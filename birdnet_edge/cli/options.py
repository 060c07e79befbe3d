"""What the commands share: the config and model options, and the config they make."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

from birdnet_edge.config import Config, ModelConfig, check_value, load_config

Handler = Callable[[argparse.Namespace], int]
_Section = TypeVar("_Section", bound="DataclassInstance")


def usage(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", type=Path, help="config file (YAML)")


def add_model_options(p: argparse.ArgumentParser, *, choose_model: bool = True) -> None:
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


def replace_given(section: _Section, **changes: object) -> _Section:
    """``dataclasses.replace`` with only the options the user gave."""
    given = {k: v for k, v in changes.items() if v is not None}
    return dataclasses.replace(section, **given) if given else section


def config_with(args: argparse.Namespace) -> Config:
    """The config file (or defaults) overridden by the command-line options given."""
    cfg = load_config(args.config)
    threads = getattr(args, "threads", None)
    if threads is not None:
        threads = check_value(ModelConfig, "threads", threads, "--threads")
    model = replace_given(
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


def run_config_path(args: argparse.Namespace) -> Path | None:
    from birdnet_edge.paths import default_config_path

    if args.config is not None:
        return Path(args.config)
    default = default_config_path()
    return default if default.is_file() else None
