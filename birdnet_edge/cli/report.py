"""``birdnet-edge log report``: the log of a period as one self-contained HTML file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from birdnet_edge.errors import BirdnetEdgeError

DEFAULT_SINCE = "7d"
MAX_ROWS = 2000  # rows of the detection table (the counts and charts cover every detection)
MAX_SIZE_MB = 20.0  # under the usual 25 MB limit of an e-mail attachment


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``report`` to the ``log`` command's actions (with the options they share)."""
    from birdnet_edge.cli import review

    r = actions.add_parser(
        "report",
        help="write the period's detections as one HTML file (charts, clips) to share",
        description="Write one self-contained HTML file (opens offline, e.g. from a USB stick "
        "or an e-mail): the period's summary and first arrivals, each species' count, first "
        "and last heard, best confidence and activity by hour and by day, and a sortable "
        "table of the detections, newest first, with their spectrogram and clip where kept. "
        f"Default period: the last {DEFAULT_SINCE[:-1]} days.",
    )
    review.add_common(r, argparse.SUPPRESS)
    r.add_argument("-o", "--output", type=Path, required=True, help="the HTML file to write")
    r.add_argument(
        "--max-size", type=_megabytes, default=MAX_SIZE_MB, metavar="MB",
        help=f"leave out the oldest spectrograms and clips beyond this size (default "
        f"{MAX_SIZE_MB:g}; 0: none)",
    )  # fmt: skip
    r.add_argument(
        "--max-rows", type=review.positive, default=MAX_ROWS, metavar="N",
        help=f"the table lists the newest N detections (default {MAX_ROWS})",
    )  # fmt: skip
    r.add_argument(
        "--away", type=review.positive, default=review.AWAY_DAYS, metavar="DAYS",
        help=f"days without a detection that make a return an arrival (default "
        f"{review.AWAY_DAYS}, as `log new`)",
    )  # fmt: skip
    r.set_defaults(handler=cmd_report)


def _megabytes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def cmd_report(args: argparse.Namespace) -> int:
    from birdnet_edge.cli import review
    from birdnet_edge.clips import clips_dir
    from birdnet_edge.config import load_config
    from birdnet_edge.log import queries as store
    from birdnet_edge.paths import check_output, written_whole
    from birdnet_edge.report.data import gather
    from birdnet_edge.report.page import MB, build

    check_output(args.output)  # before the work, not after
    path = review.db_path(args)
    cfg = load_config(review.config_path(args))
    if not getattr(args, "since", None):
        args.since = DEFAULT_SINCE
    conn = store.connect(path)
    try:
        f = review.filters(args)
        if next(store.detections(conn, f, 1), None) is None:
            raise BirdnetEdgeError(review.empty_message(path, f, conn))
        report = gather(
            conn, path, f, clips_root=clips_dir(cfg, path), max_rows=args.max_rows,
            away_days=args.away, utc=args.utc,
        )  # fmt: skip
    finally:
        conn.close()
    page = build(report, max_size_mb=args.max_size, lang=cfg.model.locale or "en")
    with written_whole(args.output) as out:
        out.write(page)
    size = len(page.encode("utf-8")) / MB
    print(
        f"report of {report.total} detections of {len(report.species)} species written to "
        f"{args.output} ({size:.1f} MB)",
        file=sys.stderr,
    )
    return 0
