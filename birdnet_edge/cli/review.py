"""``birdnet-edge log``: review the detection log (list, summary, export, new arrivals, report),
read-only.

Safe while the daemon runs: the database is opened read-only and WAL lets it read a consistent
snapshot without holding up the writer. Times are shown in the station's local time (the UTC
offset stored with each event) unless ``--utc`` is given.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import json
import os
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from birdnet_edge.errors import BirdnetEdgeError
from birdnet_edge.log import queries as store
from birdnet_edge.log.queries import Filters, SpeciesSummary
from birdnet_edge.log.record import EXPORT_FIELDS, Detection, export, iso
from birdnet_edge.paths import written_whole

# Where the systemd unit keeps the database (StateDirectory=birdnet-edge); used when the user's
# own default location has none, so `birdnet-edge log` works for a login user too.

LIST_LIMIT = 25  # `log` without --limit
SQLITE_MAX_INT = 2**63 - 1
FOLLOW_POLL_SECONDS = 1.0
CHART_WIDTH = 50

SUMMARY_FIELDS = (
    "common", "scientific", "count", "first", "last", "max_confidence", "days_away", "first_ever",
)  # fmt: skip
AWAY_DAYS = 30  # `log new`: a species back after this many days counts as an arrival


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``log`` command (with ``summary`` and ``export``) to the CLI's subcommands."""
    p = sub.add_parser(
        "log",
        help="review the detections kept on this device",
        description="List the most recent detections (oldest first, newest at the bottom). "
        "Times are the station's local time unless --utc is given. "
        "`log summary` and `log export` take the same filters.",
    )
    add_common(p, None)
    p.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        help="output (default table; json: an array, or one object per line with --follow)",
    )
    p.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new detections as they arrive"
    )
    p.set_defaults(handler=cmd_log)
    actions = p.add_subparsers(metavar="ACTION", dest="log_action")

    s = actions.add_parser(
        "summary",
        help="per species: count, first and last heard, highest confidence",
        description="Per species for the period: number of detections, first and last heard, "
        "highest confidence, most detected first. With --species NAME --hourly: "
        "detections of that species per hour of the day as a text chart.",
    )
    add_common(s, argparse.SUPPRESS)
    s.add_argument(
        "--format", choices=("table", "csv", "json"), default=argparse.SUPPRESS,
        help="output (default table)",
    )  # fmt: skip
    s.add_argument(
        "--hourly", action="store_true", help="with --species: detections per hour of the day"
    )
    s.set_defaults(handler=cmd_summary)

    e = actions.add_parser(
        "export",
        help="write every matching detection as CSV or JSON Lines",
        description="Write every detection matching the filters, oldest first, as CSV or JSON "
        "Lines (one object per line), to stdout or a file.",
    )
    add_common(e, argparse.SUPPRESS)
    e.add_argument(
        "--format", choices=("csv", "jsonl", "json", "ebird"), default=argparse.SUPPRESS,
        help="csv (default), jsonl (json is the same: JSON Lines), or ebird: eBird's Record "
        "Format, one row a species a day, for eBird's spreadsheet import",
    )  # fmt: skip
    e.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")
    e.set_defaults(handler=cmd_export)

    n = actions.add_parser(
        "new",
        help="first arrivals: species back after a while, or heard for the first time",
        description="The species whose first detection in the period (default the last 30 days) "
        "came after at least --away days without one, or was their first ever, in order of "
        "arrival.",
    )
    add_common(n, argparse.SUPPRESS)
    n.add_argument(
        "--away", type=positive, default=AWAY_DAYS, metavar="DAYS",
        help=f"days without a detection that make a return an arrival (default {AWAY_DAYS})",
    )  # fmt: skip
    n.add_argument(
        "--format", choices=("table", "csv", "json"), default=argparse.SUPPRESS,
        help="output (default table)",
    )  # fmt: skip
    n.set_defaults(handler=cmd_new)

    for name, handler, what in (
        ("show", cmd_show, "print a detection and the path of its clip (opens nothing)"),
        ("play", cmd_play, "play a detection's clip through the default audio output"),
    ):
        a = actions.add_parser(name, help=what, description=what[0].upper() + what[1:] + ".")
        a.add_argument("id", help="the detection's id, or its first characters (`log` shows 8)")
        add_common(a, argparse.SUPPRESS)
        a.set_defaults(handler=handler)

    from birdnet_edge.cli import report

    report.register(actions)


def add_common(p: argparse.ArgumentParser, default: Any) -> None:
    """The options every ``log`` action takes. Actions pass ``SUPPRESS`` so that options given
    before the action name (``log --since 2h summary``) are not reset by the action's defaults."""

    def add(*flags: str, **kw: Any) -> None:
        if default is argparse.SUPPRESS:
            kw["default"] = argparse.SUPPRESS
        elif kw.get("action") != "store_true":
            kw.setdefault("default", default)
        p.add_argument(*flags, **kw)

    add(
        "-c", "--config", type=Path,
        help="config file (YAML) whose database.path to read (default: the default config file, "
        "if it exists)",
    )  # fmt: skip
    add("--db", type=Path, metavar="PATH", help="database file (default: from the config)")
    add("--since", metavar="WHEN", help="from this time: 2025-05-01, '2025-05-01 06:30', 06:30, "
        "2h, 3d, today, yesterday")  # fmt: skip
    add("--until", metavar="WHEN", help="before this time (same forms as --since)")
    add("--species", metavar="NAME", help="common or scientific name contains NAME (any case)")
    add("--min-conf", type=_confidence, metavar="C", help="highest confidence at least C (0..1)")
    add("--limit", type=positive, metavar="N", help=f"at most N rows (log: default {LIST_LIMIT})")
    add("--utc", action="store_true", help="times in UTC instead of the station's local time")
    add(
        "--sounds", action="store_true",
        help="also BirdNET's sounds (dog, engine, siren...), logged with filters.report_sounds",
    )  # fmt: skip


def _confidence(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return min(value, SQLITE_MAX_INT)  # more rows than SQLite can count is all of them


# -- handlers ---------------------------------------------------------------------------------


def cmd_log(args: argparse.Namespace) -> int:
    fmt = args.format or "table"
    path = db_path(args)
    conn = store.connect(path)
    out = sys.stdout
    try:
        f = filters(args)
        conn.execute("BEGIN")  # one snapshot: follow starts exactly after the rows listed
        rows = store.recent(conn, f, args.limit or LIST_LIMIT)
        last = store.last_rowid(conn)
        conn.execute("COMMIT")
        if fmt == "json" and not args.follow:
            records = [export(d, utc=args.utc) for d in rows]
            out.write(json.dumps(records, ensure_ascii=False, indent=1) + "\n")
        else:
            if rows or args.follow or fmt == "csv":
                write_header(fmt, out, args.utc)
            write = row_writer(fmt, out, args.utc)
            for d in rows:
                write(d)
        if not rows:
            print(empty_message(path, f, conn), file=sys.stderr)
        if args.follow:
            out.flush()
            follow(conn, f, write, threading.Event(), last, out=out)
    finally:
        conn.close()
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    fmt = args.format or "table"
    path = db_path(args)
    conn = store.connect(path)
    try:
        f = filters(args)
        if args.hourly:
            return _hourly(conn, path, f, args.utc)
        species = store.summary(conn, f)
        if args.limit:
            species = species[: args.limit]
        if not species:
            print(empty_message(path, f, conn), file=sys.stderr)
        write_summary(species, fmt, sys.stdout, args.utc)
    finally:
        conn.close()
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    fmt = getattr(args, "format", None) or "table"
    path = db_path(args)
    conn = store.connect(path)
    try:
        if not getattr(args, "since", None):
            args.since = f"{AWAY_DAYS}d"
        f = filters(args)
        species = store.arrivals(conn, f, args.away)
        if args.limit:
            species = species[: args.limit]
        if not species:
            print(
                f"no species arrived since {f.since:%Y-%m-%d %H:%M} after {args.away} days "
                f"away in {path}",
                file=sys.stderr,
            )
        write_summary(species, fmt, sys.stdout, args.utc, total=False)
    finally:
        conn.close()
    return 0


def _one(args: argparse.Namespace) -> tuple[Detection, Path | None]:
    """The detection ``args.id`` names, and its clip's path (None: no clip kept)."""
    from birdnet_edge.clips import clips_dir
    from birdnet_edge.config import load_config

    path = db_path(args)
    conn = store.connect(path)
    try:
        found = store.by_id(conn, args.id)
    finally:
        conn.close()
    if not found:
        raise BirdnetEdgeError(
            f"no detection with id {args.id!r} in {path}: see `birdnet-edge log`"
        )
    if len(found) > 1:
        raise BirdnetEdgeError(f"{args.id!r} starts more than one id: give more of it")
    d = found[0]
    if d.clip is None:
        return d, None
    cfg = load_config(config_path(args))
    return d, clips_dir(cfg, path) / d.clip


def cmd_show(args: argparse.Namespace) -> int:
    d, clip = _one(args)
    t = when(d.start, d.zone, getattr(args, "utc", False))
    print(f"{d.id}  {t:%Y-%m-%d %H:%M:%S}  {d.common} ({d.scientific})  {d.confidence:.2f}")
    if clip is None:
        print("clip: none kept")
    else:
        print(f"clip: {clip}" + ("" if clip.is_file() else "  (missing: deleted by retention?)"))
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    d, clip = _one(args)
    if clip is None or not clip.is_file():
        raise BirdnetEdgeError(f"no clip of detection {d.id[:8]} ({d.common}) is kept")
    import sounddevice
    import soundfile

    audio, rate = soundfile.read(clip, dtype="float32")
    try:
        sounddevice.play(audio, rate)
        sounddevice.wait()
    except sounddevice.PortAudioError as exc:
        raise BirdnetEdgeError(
            f"cannot play {clip}: {exc}: no audio output here? copy the file and play it elsewhere"
        ) from None
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    fmt = args.format or "csv"
    if fmt == "table":
        raise BirdnetEdgeError("log export writes csv or jsonl: use --format csv or jsonl")
    path = db_path(args)
    conn = store.connect(path)
    try:
        f = filters(args)
        rows = store.detections(conn, f, args.limit)
        if args.output is None:
            n = write_export(rows, fmt, sys.stdout, args.utc)
        else:
            with written_whole(args.output) as out:
                n = write_export(rows, fmt, out, args.utc)
            print(f"{n} detections written to {args.output}", file=sys.stderr)
        if n == 0:
            print(empty_message(path, f, conn), file=sys.stderr)
    finally:
        conn.close()
    return 0


def _hourly(conn: sqlite3.Connection, path: Path, f: Filters, utc: bool) -> int:
    if not f.species:
        raise BirdnetEdgeError("--hourly needs --species NAME: the chart is for one species")
    names = store.species_names(conn, f)
    if not names:
        print(empty_message(path, f, conn), file=sys.stderr)
        return 0
    if len(names) > 1:
        wanted = f.species.casefold()
        exact = [n for n in names if wanted in (n[0].casefold(), n[1].casefold())]
        if len(exact) != 1:
            listed = ", ".join(c for _s, c in names[:8]) + (", ..." if len(names) > 8 else "")
            raise BirdnetEdgeError(
                f"--species {f.species!r} matches {len(names)} species ({listed}): "
                "give a longer part of the name, or the full common or scientific name"
            )
        names = exact
    scientific, common = names[0]
    counts = store.hourly(conn, dataclasses.replace(f, scientific=scientific), utc=utc)
    zone = "UTC" if utc else "local time"
    total = sum(counts)
    sys.stdout.write(
        f"{common} ({scientific}): {total} detection{'' if total == 1 else 's'} "
        f"by hour of the day ({zone})\n"
    )
    sys.stdout.write(hour_chart(counts))
    return 0


# -- shared pieces ----------------------------------------------------------------------------


def config_path(args: argparse.Namespace) -> Path | None:
    """``-c``, else the default config file when it exists (as ``run``), else the service's
    where this user may read it (``sudo birdnet-edge log``)."""
    from birdnet_edge import paths

    service_config = paths.SERVICE_CONFIG_DIR / paths.CONFIG_NAME
    config: Path | None = args.config
    if config is None and paths.default_config_path().is_file():
        config = paths.default_config_path()
    elif config is None and service_config.is_file() and os.access(service_config, os.R_OK):
        config = service_config
    return config


def db_path(args: argparse.Namespace) -> Path:
    """``--db``, else ``database.path`` of the config (``-c``, or the default config file when
    it exists, as ``run`` does), else the default location."""
    from birdnet_edge import paths
    from birdnet_edge.config import load_config
    from birdnet_edge.log.schema import DB_NAME, default_db_path

    service_db = paths.SERVICE_STATE_DIR / DB_NAME
    if args.db is not None:
        return Path(args.db)
    cfg = load_config(config_path(args))
    if cfg.database.path is not None:
        return cfg.database.path
    path = default_db_path()
    if not _exists(path) and _exists(service_db):
        return service_db
    return path


def _exists(path: Path) -> bool:
    """Whether ``path`` is there; one we may not look at counts (opening it then says why)."""
    try:
        return path.exists()
    except PermissionError:
        return True


def filters(args: argparse.Namespace, now: dt.datetime | None = None) -> Filters:
    from birdnet_edge.cli.times import parse_when

    now = now or dt.datetime.now(dt.timezone.utc)
    since = parse_when(args.since, now=now, utc=args.utc) if args.since else None
    until = parse_when(args.until, now=now, utc=args.utc, option="--until") if args.until else None
    if since is not None and until is not None and since == until:
        raise BirdnetEdgeError(
            f"--since and --until are the same time ({since:%Y-%m-%d %H:%M}): give a period"
        )
    if since is not None and until is not None and since > until:
        raise BirdnetEdgeError(
            f"--since ({since:%Y-%m-%d %H:%M}) is not before --until ({until:%Y-%m-%d %H:%M}): "
            "swap them"
        )
    return Filters(
        since=since, until=until, species=args.species, min_conf=args.min_conf,
        sounds=getattr(args, "sounds", False),
    )  # fmt: skip


def empty_message(path: Path, f: Filters, conn: sqlite3.Connection) -> str:
    """What an empty result means, in words."""
    if store.last_rowid(conn) == 0:
        return f"no detections in {path} yet"
    parts = []
    if f.species:
        parts.append(f"of species matching {f.species!r}")
    if f.min_conf is not None:
        parts.append(f"with confidence >= {f.min_conf:g}")
    if f.since is not None:
        parts.append(f"since {f.since.astimezone():%Y-%m-%d %H:%M}")
    if f.until is not None:
        parts.append(f"before {f.until.astimezone():%Y-%m-%d %H:%M}")
    which = " ".join(parts) or "at all"
    return f"no detections {which} in {path}: widen the filters (e.g. --since 7d)"


def when(t: dt.datetime, d_zone: dt.timezone, utc: bool) -> dt.datetime:
    return t.astimezone(dt.timezone.utc if utc else d_zone)


def write_header(fmt: str, out: TextIO, utc: bool) -> None:
    """The column names of :func:`row_writer`'s table or CSV (JSON Lines have none)."""
    if fmt == "table":
        zone = "UTC" if utc else "local"
        time = f"time ({zone})"
        out.write(f"{time:<19}  {'species':<26} {'scientific name':<30} conf  windows  clip (id)\n")
    elif fmt == "csv":
        csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n").writeheader()


def row_writer(fmt: str, out: TextIO, utc: bool) -> Callable[[Detection], None]:
    """A function printing one detection as a table row, a CSV row or a JSON line."""
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")

    def write(d: Detection) -> None:
        if fmt == "table":
            t = when(d.start, d.zone, utc)
            out.write(
                f"{t:%Y-%m-%d %H:%M:%S}  {d.common:<26} {d.scientific:<30} "
                f"{d.confidence:.2f} {d.windows:>8}  {d.id[:8] if d.clip else '-'}\n"
            )
        elif fmt == "csv":
            writer.writerow(export(d, utc=utc))
        else:
            out.write(json.dumps(export(d, utc=utc), ensure_ascii=False) + "\n")

    return write


def follow(
    conn: sqlite3.Connection,
    f: Filters,
    write: Callable[[Detection], None],
    stop: threading.Event,
    last: int,
    *,
    out: TextIO | None = None,
    poll: float = FOLLOW_POLL_SECONDS,
) -> None:
    """Print detections as they are written (rows after ``last``) until ``stop`` is set.

    Each detection is printed once, when it first matches the filters. An event is written
    when it opens and updated as it grows, so one that does not match yet (below
    ``--min-conf``, say) is looked at again until it closes."""
    waiting: set[int] = set()  # open events that do not match yet
    while not stop.wait(poll):
        conn.execute("BEGIN")  # one snapshot for both queries
        try:
            top = store.last_rowid(conn)
            if top <= last and not waiting:
                continue
            found = store.newer_than(conn, f, last, top, waiting)
            waiting = store.open_rowids(conn, last, top, waiting) - {d.rowid for d in found}
        finally:
            conn.execute("COMMIT")
        for d in found:
            write(d)
        last = max(last, top)
        if out is not None:
            out.flush()


def write_export(rows: Iterable[Detection], fmt: str, out: TextIO, utc: bool) -> int:
    """CSV (with header), JSON Lines or eBird's Record Format; returns the number of rows."""
    if fmt == "ebird":
        from birdnet_edge.log.ebird import write_ebird

        return write_ebird(rows, out)
    fmt = "csv" if fmt == "csv" else "jsonl"
    write_header(fmt, out, utc)
    write = row_writer(fmt, out, utc)
    n = 0
    for d in rows:
        write(d)
        n += 1
    return n


def write_summary(
    species: Sequence[SpeciesSummary], fmt: str, out: TextIO, utc: bool, *, total: bool = True
) -> None:
    def t(x: dt.datetime) -> dt.datetime:
        return x.astimezone(dt.timezone.utc) if utc else x

    records = [
        {
            "common": s.common,
            "scientific": s.scientific,
            "count": s.count,
            "first": iso(t(s.first)),
            "last": iso(t(s.last)),
            "max_confidence": round(s.max_confidence, 4),
            "days_away": s.days_away,
            "first_ever": s.previous is None,
        }
        for s in species
    ]
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=SUMMARY_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        return
    if fmt == "json":
        out.write(json.dumps(records, ensure_ascii=False, indent=1) + "\n")
        return
    if not species:
        return
    zone = "UTC" if utc else "local"
    wc = max(7, *(len(s.common) for s in species))
    ws = max(15, *(len(s.scientific) for s in species))
    out.write(
        f"{'species':<{wc}}  {'scientific name':<{ws}}  {'count':>5}  "
        f"{'first heard (' + zone + ')':<19}  {'last heard':<19}  max conf  new\n"
    )
    for s in species:
        out.write(
            f"{s.common:<{wc}}  {s.scientific:<{ws}}  {s.count:>5}  "
            f"{t(s.first):%Y-%m-%d %H:%M:%S}  {t(s.last):%Y-%m-%d %H:%M:%S}  "
            f"{s.max_confidence:8.2f}  {_newness(s)}\n".rstrip(" \n")
            + "\n"
        )
    if total:
        count = sum(s.count for s in species)
        out.write(f"{count} detections of {len(species)} species\n")


def _newness(s: SpeciesSummary) -> str:
    """How new the species was when the period's first detection came: for the table."""
    days = s.days_away
    if days is None:
        return "first ever"
    return f"back after {days} days" if days >= 2 else ""


def hour_chart(counts: Sequence[int], width: int = CHART_WIDTH) -> str:
    """One line per hour of the day: ``05 |#####  12``."""
    top = max(counts) if counts else 0
    lines = []
    for hour, n in enumerate(counts):
        bar = "#" * (round(n / top * width) if top else 0)
        if n and not bar:
            bar = "."
        lines.append(f"{hour:02d} |{bar:<{width}} {n:>5}".rstrip() + "\n")
    return "".join(lines)
