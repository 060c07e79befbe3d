"""The ``birdnet-edge`` command line: parse, load the config, call into the package.

Every :class:`BirdnetEdgeError` ends the command with its one-line message and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from birdnet_edge import __version__
from birdnet_edge.cli import (
    analyze,
    benchmark,
    check_config,
    devices,
    model,
    review,
    run,
    species,
)
from birdnet_edge.cli.options import Handler
from birdnet_edge.cli.stderr_logging import setup_logging
from birdnet_edge.errors import BirdnetEdgeError


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

    # One module per command, each with its parser; their imports are light (what a command
    # needs beyond them is imported when it runs).
    for command in (analyze, model, run, devices, species, benchmark, check_config, review):
        command.register(sub)
    return parser
