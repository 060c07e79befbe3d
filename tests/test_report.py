"""``birdnet-edge log report``: the HTML page made from a real log (written through the
SQLite sink, and by the daemon replaying the soundscape with clips on), checked against
``log summary`` and ``log new``, parsed for valid and self-contained markup, and opened in a
real headless browser (Debian's ``chromium``) at desktop and phone widths."""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from birdnet_edge.errors import BirdnetEdgeError
from birdnet_edge.report.page import READY
from tests import test_store_review as scene
from tests.replay import replay
from tests.test_store_review import run_log

# The scene of the review tests: a real database written through the sink (New York time).
scene_db = scene.scene_db
new_york = scene.new_york
SINCE = "2025-04-01"  # the scene is on 2025-04-30 and 2025-05-01

VOID = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
    "track", "wbr",
}  # fmt: skip
#: SVG elements written self-closed (``<line .../>``).
SELF_CLOSED = {"line", "rect", "circle", "path"}


class Markup(HTMLParser):
    """Checks nesting (every non-void element closed, in order) and collects what a test looks
    at: the tags with their attributes, and the problems found."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        if tag not in VOID:
            self.stack.append(tag)
        self._in_style = tag == "style"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        if tag not in VOID and tag not in SELF_CLOSED:
            self.problems.append(f"<{tag}/> self-closed")

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False
        if tag in VOID:
            self.problems.append(f"</{tag}> closes a void element")
        elif not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def check_markup(page: str) -> Markup:
    """Parse ``page``; fail on bad nesting or anything fetched from elsewhere."""
    parsed = Markup()
    parsed.feed(page)
    parsed.close()
    assert page.startswith("<!DOCTYPE html>")
    assert parsed.problems == []
    assert parsed.stack == [], f"never closed: {parsed.stack}"
    for tag, attrs in parsed.tags:
        assert not (tag == "script" and "src" in attrs), "an external script"
        assert not (tag == "link" and "href" in attrs), "a linked style sheet or font"
        for name in ("src", "href", "poster", "srcset", "data"):
            value = attrs.get(name, "")
            assert not value or value.startswith(("data:", "#")), f"<{tag} {name}={value[:40]}>"
    css = "".join(parsed.styles)
    assert all(m.startswith("data:") for m in re.findall(r"url\(\s*['\"]?([^)'\"]*)", css))
    assert "@import" not in css
    assert "http://" not in page
    assert "https://" not in page
    return parsed


def tags(parsed: Markup, name: str) -> list[dict[str, str]]:
    return [attrs for tag, attrs in parsed.tags if tag == name]


def cards(page: str) -> dict[str, dict[str, str]]:
    """The species cards: their facts by scientific name."""
    out: dict[str, dict[str, str]] = {}
    for card in re.findall(r'<li class="card".*?</li>', page, re.S):
        sci = html.unescape(re.search(r'<h3[^>]*>.*?<span class="sci">(.*?)</span>', card)[1])  # type: ignore[index]
        out[sci] = {
            html.unescape(k): html.unescape(v)
            for k, v in re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", card)
        }
    return out


def facts(page: str) -> dict[str, str]:
    """The summary's facts."""
    summary = page.split('id="summary-h"', 1)[1].split("</dl>", 1)[0]
    return {
        html.unescape(k): html.unescape(v)
        for k, v in re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", summary)
    }


def table_rows(page: str) -> list[str]:
    body = page.split('id="detections"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr .*?</tr>", body, re.S)


def station_time(iso: str) -> str:
    return f"{dt.datetime.fromisoformat(iso):%Y-%m-%d %H:%M:%S}"


def report(
    argv: list[str], capsys: pytest.CaptureFixture[str], out: Path
) -> tuple[str, str]:  # fmt: skip
    """Run ``log report ARGV -o OUT``; the page and what was said on stderr."""
    code, _, err = run_log(["log", "report", *argv, "-o", str(out)], capsys)
    assert code == 0
    return out.read_text(encoding="utf-8"), err


def reference(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """``log ARGV --format json`` as records."""
    code, out, _ = run_log(["log", *argv, "--format", "json"], capsys)
    assert code == 0
    records: list[dict[str, Any]] = json.loads(out)
    return records


def assert_as_summary(page: str, summary: list[dict[str, Any]]) -> None:
    """The page's species, counts, first/last heard and best confidence are `log summary`'s."""
    shown = cards(page)
    assert list(shown) == [s["scientific"] for s in summary]  # most detected first, as it
    for s in summary:
        card = shown[s["scientific"]]
        assert card["Detections"] == f"{s['count']:,}"
        assert card["First heard"] == station_time(s["first"])
        assert card["Last heard"] == station_time(s["last"])
        assert card["Best confidence"] == f"{s['max_confidence']:.2f}"
        assert f">{html.escape(s['common'])} <span" in page
    total = sum(s["count"] for s in summary)
    assert facts(page)["Detections"] == f"{total:,}"
    assert facts(page)["Species"] == str(len(summary))


# -- content ----------------------------------------------------------------------------------


def test_the_report_says_what_log_summary_and_log_new_say(
    scene_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page, err = report(["--db", str(scene_db), "--since", SINCE], capsys, tmp_path / "r.html")
    summary = reference(["summary", "--db", str(scene_db), "--since", SINCE], capsys)
    assert_as_summary(page, summary)
    total = sum(s["count"] for s in summary)
    assert f"report of {total} detections of {len(summary)} species" in err
    rows = table_rows(page)
    assert len(rows) == total
    listed = reference(["--db", str(scene_db), "--since", SINCE, "--limit", "100"], capsys)
    assert [re.search(r'data-species="(.*?)"', r)[1] for r in rows] == [  # type: ignore[index]
        d["scientific"]
        for d in reversed(listed)  # newest first
    ]
    times = [re.sub(r"<.*?>", "", re.search(r'class="time">(.*?)</td>', r)[1]) for r in rows]  # type: ignore[index]
    assert times == [station_time(d["start"]) for d in reversed(listed)]
    arrivals = reference(["new", "--db", str(scene_db), "--since", SINCE], capsys)
    arrived = page.split('id="arrivals-h"', 1)[1].split("</table>", 1)[0]
    assert re.findall(r'<span class="sci">(.*?)</span>', arrived) == [
        a["scientific"] for a in arrivals
    ]
    assert "Grauhäubchenmeise" in page  # the log's names, in the station's language
    assert facts(page)["Station"] == "garden"
    assert facts(page)["Model"] == "BirdNET_GLOBAL_6K_V2.4_Model_FP32 (fp32)"
    assert facts(page)["Period"].startswith("2025-04-01 00:00:00 to 2025-05-01 08:00:00")
    assert "No clips were kept" in page  # no spectrogram or clip columns for nothing


def test_hours_and_days_charts_count_each_detection(
    scene_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page, _ = report(["--db", str(scene_db), "--since", SINCE], capsys, tmp_path / "r.html")
    code, hourly, _ = run_log(
        ["log", "summary", "--db", str(scene_db), "--species", "House Finch", "--hourly"], capsys
    )
    assert code == 0
    lines = [line.split() for line in hourly.splitlines()[1:]]  # "05 |#####   2"
    expected = {int(parts[0]): int(parts[-1]) for parts in lines}
    card = re.search(r'<li class="card"[^>]*>.*?Haemorhous mexicanus.*?</li>', page, re.S)
    assert card is not None
    bars = re.findall(r"<title>(\d\d):00 to \d\d:00: (\d+)</title>", card[0])
    assert {int(h): int(n) for h, n in bars} == {h: n for h, n in expected.items() if n}
    days = dict(re.findall(r"<title>(\d{4}-\d\d-\d\d) \(\w+\): (\d+)</title>", card[0]))
    assert days == {"2025-05-01": "4"}
    svgs = tags(check_markup(page), "svg")
    assert svgs
    assert all(s["role"] == "img" and s["aria-labelledby"] for s in svgs)
    assert page.count("<svg") == page.count("<title id=") == page.count("<desc id=")


def test_filters_and_the_row_cap(
    scene_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--db", str(scene_db), "--since", SINCE, "--species", "finch"]
    page, _ = report(argv, capsys, tmp_path / "finch.html")
    summary = reference(["summary", *argv], capsys)
    assert {s["common"] for s in summary} == {"House Finch", "American Goldfinch"}
    assert_as_summary(page, summary)
    assert "species matching “finch”" in facts(page)["Filters"]
    page, _ = report([*argv, "--max-rows", "2"], capsys, tmp_path / "capped.html")
    assert len(table_rows(page)) == 2
    assert "The table lists the newest 2 of the 5 detections (--max-rows)" in page
    assert_as_summary(page, summary)  # the counts still cover every detection


def test_utc_times(scene_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--db", str(scene_db), "--since", SINCE, "--utc"]
    page, _ = report(argv, capsys, tmp_path / "utc.html")
    assert "Time (UTC)" in page
    card = cards(page)["Cyanocitta cristata"]
    assert card["First heard"] == "2025-04-30 23:30:00"


def test_errors_name_the_problem_and_the_fix(
    scene_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.html"
    with pytest.raises(BirdnetEdgeError, match=r"no detections since 2030-01-01.*widen"):
        report(["--db", str(scene_db), "--since", "2030-01-01"], capsys, out)
    with pytest.raises(BirdnetEdgeError, match=r"no detections .*species matching 'kiwi'"):
        report(["--db", str(scene_db), "--since", SINCE, "--species", "kiwi"], capsys, out)
    with pytest.raises(BirdnetEdgeError, match=r"does not exist: create it or choose another"):
        report(["--db", str(scene_db), "--since", SINCE], capsys, tmp_path / "no" / "r.html")
    with pytest.raises(BirdnetEdgeError, match=r"is a folder: give --output a file name"):
        report(["--db", str(scene_db), "--since", SINCE], capsys, tmp_path)
    assert not out.exists()
    assert not list(tmp_path.glob("*.part"))


def test_valid_accessible_and_self_contained(
    scene_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page, _ = report(["--db", str(scene_db), "--since", SINCE], capsys, tmp_path / "r.html")
    parsed = check_markup(page)
    assert tags(parsed, "html")[0]["lang"] == "en"
    assert any(m.get("name") == "viewport" for m in tags(parsed, "meta"))
    assert [t for t, _ in parsed.tags if t in {"h1", "h2"}] == ["h1", "h2", "h2", "h2"]
    assert page.count("<table") == page.count("<caption>") == 2
    assert all(th.get("scope") in {"col", "row"} for th in tags(parsed, "th"))
    assert all("alt" in img for img in tags(parsed, "img"))
    assert len(tags(parsed, "script")) == 1
    hidden = [d for d in tags(parsed, "div") if d.get("id") == "controls"]
    assert "hidden" in hidden[0]  # the filter appears only with the script that makes it work


# -- the replayed soundscape, clips on --------------------------------------------------------


@pytest.fixture(scope="module")
def replayed(
    soundscape: Path, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """The daemon's database of the soundscape with clips, and a config naming it."""
    folder = tmp_path_factory.mktemp("replay")
    db = replay(soundscape, folder, model_dir)
    config = folder / "c.yaml"
    config.write_text(f"database: {{path: {db}}}\n")
    return db, config


@pytest.mark.model
def test_clips_and_spectrograms_are_embedded_within_the_size_cap(
    replayed: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _db, config = replayed
    argv = ["-c", str(config), "--since", "2026-04-01"]
    page, _ = report(argv, capsys, tmp_path / "r.html")
    assert_as_summary(page, reference(["summary", *argv], capsys))
    check_markup(page)
    rows = table_rows(page)
    clipped = reference([*argv, "--limit", "1000"], capsys)
    assert len(rows) == len(clipped)
    assert all(d["clip"] for d in clipped)
    for row in rows:
        assert '<img class="spec" src="data:image/png;base64,' in row
        assert 'alt="Spectrogram of the ' in row
        assert '<audio controls preload="none" src="data:audio/flac;base64,' in row
    assert "left out" not in page

    small, err = report([*argv, "--max-size", "0.1"], capsys, tmp_path / "small.html")
    assert len(small.encode()) < 0.1 * 2**20
    assert "written to" in err
    assert "were left out to keep this file under 0.1 MB (--max-size" in small
    assert small.count("data:audio/flac") < len(rows)
    assert "left out (size)" in small
    check_markup(small)

    bare, _ = report([*argv, "--max-size", "0"], capsys, tmp_path / "bare.html")
    assert "data:image/png" not in bare
    assert "data:audio/flac" not in bare
    assert f"{len(rows)} spectrograms and {len(rows)} audio clips were left out" in bare


# -- a real browser ---------------------------------------------------------------------------

SIZES = {"desktop": (1280, 900), "phone": (390, 844)}


@pytest.fixture(scope="session")
def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    return found


def browse(chromium: str, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Open ``page`` in headless chromium with its console logged to stderr."""
    return subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={page.parent / 'chromium-profile'}",
            "--enable-logging=stderr", "--v=0", *args, page.as_uri(),
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def console_errors(stderr: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if "Uncaught" in line or (":CONSOLE" in line and "error" in line.lower())
    ]


def script_ran(chromium: str, page: Path) -> tuple[bool, list[str]]:
    """Whether the page's script ran to its end (the DOM after load says so, and shows the
    controls it adds), and the console errors."""
    done = browse(chromium, page, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    ran = READY in dom
    if ran:  # the sort buttons, and the species filter shown
        assert '<th scope="col" data-sort="text" aria-sort="descending"><button' in dom
        assert '<div id="controls">' in dom
        assert re.search(r'<span id="shown" aria-live="polite">\d+ of \d+ rows shown', dom)
    return ran, console_errors(done.stderr)


#: Headless chromium paints nothing when told to scroll to a fragment before its screenshot:
#: the table's screenshots are of a copy of the page with the sections above it hidden.
TABLE_ONLY = (
    '<style>main > section:not([aria-labelledby="detections-h"]){display:none}</style></head>'
)


def screenshots(chromium: str, page: Path, name: str) -> Iterator[Path]:
    """Screenshots of ``page`` in its folder (and ``$BIRDNET_EDGE_SCREENSHOTS``): its top and
    its detection table, at desktop and phone widths."""
    keep = os.environ.get("BIRDNET_EDGE_SCREENSHOTS")
    table = page.with_name(f"{page.stem}-table.html")
    table.write_text(page.read_text(encoding="utf-8").replace("</head>", TABLE_ONLY, 1))
    for width, (w, h) in SIZES.items():
        for part, shown in (("top", page), ("table", table)):
            shot = page.parent / f"{name}-{width}-{part}.png"
            done = browse(chromium, shown, f"--screenshot={shot}", f"--window-size={w},{h}")
            assert done.returncode == 0, done.stderr[-2000:]
            assert console_errors(done.stderr) == []
            assert shot.read_bytes().startswith(b"\x89PNG")
            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, Path(keep) / shot.name)
            yield shot


def test_in_a_browser_the_script_runs_without_errors(
    scene_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], chromium: str
) -> None:
    out = tmp_path / "report.html"
    page, _ = report(["--db", str(scene_db), "--since", SINCE], capsys, out)
    assert script_ran(chromium, out) == (True, [])
    assert len(list(screenshots(chromium, out, "scene"))) == 4
    # The check sees a script that fails.
    broken = tmp_path / "broken.html"
    broken.write_text(page.replace("var body = table.tBodies[0];", "var body = table.nope[0];"))
    ran, errors = script_ran(chromium, broken)
    assert not ran
    assert any("Uncaught TypeError" in e for e in errors)


@pytest.mark.model
def test_in_a_browser_with_clips(
    replayed: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    chromium: str,
) -> None:  # fmt: skip
    _db, config = replayed
    out = tmp_path / "report.html"
    report(["-c", str(config), "--since", "2026-04-01"], capsys, out)
    assert script_ran(chromium, out) == (True, [])
    assert len(list(screenshots(chromium, out, "soundscape"))) == 4


def test_each_clip_is_embedded_with_its_own_formats_type(tmp_path: Path) -> None:
    """An Opus clip (clips.format: opus) is served as Ogg audio, a FLAC clip as FLAC: a browser
    told the wrong type may refuse to play it."""
    import numpy as np

    from birdnet_edge.clips.cutter import Clip, clip_name
    from birdnet_edge.clips.writer import ClipWriter
    from birdnet_edge.report.data import Row
    from birdnet_edge.report.media import embed
    from tests.test_sqlite_sink import make_event

    writer = ClipWriter(tmp_path)
    rows = []
    for suffix in (".flac", ".opus"):
        d = make_event()
        noise = np.random.default_rng(0).integers(-3000, 3000, 48_000).astype(np.int16)
        writer.put(Clip(clip_name(d, suffix), noise, d))
        rows.append(Row(d, tmp_path / clip_name(d, suffix)))
    writer.close(timeout=30)
    embedded = embed(rows, budget=10 << 20)
    flac, opus = (embedded.media[r.detection.id] for r in rows)
    assert flac.audio is not None
    assert flac.audio.startswith("data:audio/flac;base64,")
    assert opus.audio is not None
    assert opus.audio.startswith("data:audio/ogg;base64,")
    assert flac.image is not None
    assert opus.image is not None
