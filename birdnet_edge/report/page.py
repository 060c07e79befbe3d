"""The report as one HTML page: styles and script inline, charts as inline SVG, media as
``data:`` URIs, every text escaped. It needs no network, and shows everything without its
script (which only adds sorting and the species filter to the detection table)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from html import escape

from birdnet_edge.log.queries import SpeciesSummary
from birdnet_edge.log.record import Detection
from birdnet_edge.report import svg
from birdnet_edge.report.data import Report, Row
from birdnet_edge.report.media import Embedded, embed

TIME = "%Y-%m-%d %H:%M:%S"
#: The attribute the script sets on <html> once it has run to its end (tests look for it).
READY = 'data-js="ready"'

STYLE = """
:root{--bg:#fbfaf7;--fg:#1f2421;--muted:#5b635e;--line:#d5d9d4;--card:#fff;--accent:#2f7d4f;
--badge:#fde7b0;--badge-fg:#5a3d00;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--bg:#141714;--fg:#e7ebe7;--muted:#a7b0a9;
--line:#3a413c;--card:#1d211e;--accent:#6cc28d;--badge:#5a4615;--badge-fg:#fde7b0}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);line-height:1.45;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header,main,footer{max-width:75rem;margin:0 auto;padding:0 1rem}
header{padding-top:1rem}
h1{font-size:1.6rem;margin:.4rem 0}
h2{font-size:1.3rem;margin:2rem 0 .6rem;border-bottom:1px solid var(--line);padding-bottom:.2rem}
h3{font-size:1.05rem;margin:0 0 .4rem}
.sci{font-style:italic;color:var(--muted);font-weight:normal}
dl.facts{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.2rem 1rem;margin:0}
dl.facts dt{color:var(--muted)}
dl.facts dd{margin:0;overflow-wrap:anywhere}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(16rem,30rem));gap:1rem 2rem;
margin:1rem 0}
figure{margin:0}
figcaption{font-size:.85rem;color:var(--muted)}
svg.chart{display:block;width:100%;height:auto}
svg.chart text{font-size:9px;fill:var(--muted)}
.bar{fill:var(--accent)}
.axis{stroke:var(--line);stroke-width:1}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(18rem,1fr));gap:1rem;
padding:0;margin:0;list-style:none}
.card{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:.8rem}
.card dl.facts{font-size:.9rem;margin-bottom:.6rem}
.card .charts{grid-template-columns:1fr;gap:.6rem;margin:0}
table{border-collapse:collapse;width:100%;background:var(--card)}
caption{text-align:left;color:var(--muted);padding:.3rem 0;caption-side:top}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);
vertical-align:middle}
thead th{position:sticky;top:0;background:var(--card);font-size:.9rem;white-space:nowrap}
.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto}
.nw{white-space:nowrap}
td.time{white-space:nowrap;font-variant-numeric:tabular-nums}
th button{font:inherit;font-weight:bold;color:inherit;background:none;border:0;padding:0;
cursor:pointer}
th[aria-sort=ascending] button::after{content:" \\25B2"}
th[aria-sort=descending] button::after{content:" \\25BC"}
.badge{display:inline-block;font-size:.75rem;background:var(--badge);color:var(--badge-fg);
border-radius:.6rem;padding:0 .45rem;margin-left:.3rem;font-style:normal;font-weight:normal}
img.spec{display:block;height:4.5rem;width:auto;max-width:16rem;object-fit:cover;
object-position:left;border-radius:.2rem;cursor:zoom-in}
img.spec.big{height:auto;max-width:100%;cursor:zoom-out}
audio{width:14rem;max-width:100%;height:2.2rem}
.none{color:var(--muted);font-size:.85rem}
.note{background:var(--card);border-left:.25rem solid var(--accent);padding:.4rem .7rem;
margin:.6rem 0}
#controls{margin:.6rem 0;display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}
#controls[hidden]{display:none}
select{font:inherit;max-width:100%}
footer{color:var(--muted);font-size:.85rem;padding:2rem 1rem}
@media (max-width:40rem){
h1{font-size:1.3rem}
td.time{white-space:normal}
th,td{padding:.3rem .3rem}
table.detections thead{position:absolute;width:1px;height:1px;overflow:hidden;
clip:rect(0 0 0 0)}
table.detections tr{display:grid;grid-template-columns:1fr auto;gap:.1rem .6rem;
padding:.5rem 0;border-bottom:1px solid var(--line)}
table.detections th,table.detections td{display:block;border:0;padding:.1rem .3rem}
table.detections .num{text-align:left}
table.detections .media{grid-column:1/-1}
table.detections td[data-label]::before{content:attr(data-label) ": ";color:var(--muted);
font-size:.85rem}
img.spec{max-width:100%}
audio{width:100%}
}
"""

SCRIPT = """
(function () {
  var table = document.getElementById("detections");
  if (table) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var heads = table.tHead.rows[0].cells;
    var select = document.getElementById("species-filter");
    var shown = document.getElementById("shown");
    var filter = function () {
      var wanted = select.value, n = 0;
      rows.forEach(function (r) {
        var on = !wanted || r.getAttribute("data-species") === wanted;
        r.hidden = !on;
        if (on) { n += 1; }
      });
      shown.textContent = n + " of " + rows.length + " rows shown";
    };
    var key = function (row, i, numeric) {
      var cell = row.cells[i];
      var v = cell.getAttribute("data-v") || cell.textContent;
      return numeric ? parseFloat(v) : v.toLowerCase();
    };
    var sort = function (i) {
      var th = heads[i], numeric = th.getAttribute("data-sort") === "num";
      var up = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
      rows.sort(function (a, b) {
        var x = key(a, i, numeric), y = key(b, i, numeric);
        return (x < y ? -1 : x > y ? 1 : 0) * (up ? 1 : -1);
      });
      var frag = document.createDocumentFragment();
      rows.forEach(function (r) { frag.appendChild(r); });
      body.appendChild(frag);
    };
    Array.prototype.forEach.call(heads, function (th, i) {
      if (!th.hasAttribute("data-sort")) { return; }
      var b = document.createElement("button");
      b.type = "button";
      b.textContent = th.textContent;
      th.textContent = "";
      th.appendChild(b);
      b.addEventListener("click", function () { sort(i); });
    });
    select.addEventListener("change", filter);
    document.getElementById("controls").hidden = false;
    filter();
    body.addEventListener("click", function (ev) {
      var t = ev.target;
      if (t.tagName === "IMG") { t.classList.toggle("big"); }
    });
  }
  document.documentElement.setAttribute("data-js", "ready");
})();
"""


def e(text: object) -> str:
    """Text or an attribute value, escaped."""
    return escape(str(text), quote=True)


def _t(t: dt.datetime, report: Report) -> str:
    """A time as the page shows it: in the station's offset at that time, or UTC."""
    return f"{t.astimezone(dt.timezone.utc) if report.utc else t:{TIME}}"


def _when(text: str) -> str:
    """A time for a table cell: its date and its clock each kept on one line."""
    day, _, clock = text.partition(" ")
    return f'<span class="nw">{e(day)}</span> <span class="nw">{e(clock)}</span>'


def _zone_words(report: Report) -> str:
    return "UTC" if report.utc else "station time"


def _name(common: str, scientific: str) -> str:
    return f'{e(common)} <span class="sci">{e(scientific)}</span>'


def _newness(s: SpeciesSummary) -> str:
    days = s.days_away
    return "first ever" if days is None else f"back after {days} days"


def _badge(d: Detection) -> str:
    """A detection's new-species notice, as the log recorded it (as `log summary`'s column)."""
    if d.first_ever:
        return '<span class="badge">first ever</span>'
    if d.first_in_days is not None and d.first_in_days >= 2:
        return f'<span class="badge">first in {d.first_in_days} days</span>'
    return ""


def _period(report: Report) -> str:
    end = "before " + _t(report.end, report) if report.bounded else "to " + _t(report.end, report)
    return f"{_t(report.start, report)} {end} ({_zone_words(report)}, {len(report.days)} days)"


def _summary(report: Report) -> Iterator[str]:
    species = len(report.species)
    stations = ", ".join(sorted({s.station for s in report.setups}))
    models = "; ".join(
        f"{s.model} ({s.precision})" + (f": {s.count}" if len(report.setups) > 1 else "")
        for s in report.setups
    )
    facts = [
        ("Period", _period(report)),
        ("Station", stations or "unknown"),
        ("Model", models or "unknown"),
        ("Detections", f"{report.total:,}"),
        ("Species", f"{species:,}"),
    ]
    f = report.filters
    chosen = [f"species matching “{f.species}”"] if f.species else []
    if f.min_conf is not None:
        chosen.append(f"confidence at least {f.min_conf:g}")
    if chosen:
        facts.append(("Filters", "; ".join(chosen)))
    yield '<section aria-labelledby="summary-h"><h2 id="summary-h">Summary</h2>'
    yield '<dl class="facts">'
    yield "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in facts)
    yield "</dl>"
    hours = [sum(s.hours[h] for s in report.species) for h in range(24)]
    days = [sum(s.days[i] for s in report.species) for i in range(len(report.days))]
    yield from _charts("all", "All species", hours, days, report)
    yield '<h3 id="arrivals-h">First arrivals</h3>'
    if not report.arrivals:
        yield (
            f"<p>No species arrived in the period: each was heard within {report.away_days} "
            "days before it.</p>"
        )
    else:
        yield (
            '<div class="scroll"><table class="arrivals"><caption>Species heard for the '
            f"first time, or back after at least {report.away_days} days without a "
            "detection, in order of arrival</caption><thead><tr>"
            '<th scope="col">Species</th><th scope="col">First heard</th>'
            '<th scope="col">New</th></tr></thead><tbody>'
        )
        for s in report.arrivals:
            yield (
                f'<tr><th scope="row">{_name(s.common, s.scientific)}</th>'
                f'<td class="time">{_when(_t(s.first, report))}</td>'
                f"<td>{e(_newness(s))}</td></tr>"
            )
        yield "</tbody></table></div>"
    yield "</section>"


def _charts(
    ident: str, name: str, hours: list[int], days: list[int], report: Report
) -> Iterator[str]:
    yield '<div class="charts">'
    yield (
        f"<figure>{svg.by_hour(hours, ident=f'{ident}-h', name=name)}"
        "<figcaption>By hour of the day (station time)</figcaption></figure>"
    )
    if len(report.days) > 1:
        yield (
            f"<figure>{svg.by_day(report.days, days, ident=f'{ident}-d', name=name)}"
            "<figcaption>By day</figcaption></figure>"
        )
    yield "</div>"


def _species(report: Report) -> Iterator[str]:
    yield '<section aria-labelledby="species-h"><h2 id="species-h">Species</h2>'
    yield '<ul class="cards">'
    for i, sp in enumerate(report.species):
        s = sp.summary
        facts = [
            ("Detections", f"{s.count:,}"),
            ("First heard", _t(s.first, report)),
            ("Last heard", _t(s.last, report)),
            ("Best confidence", f"{s.max_confidence:.2f}"),
        ]
        if s.days_away is None or s.days_away >= report.away_days:
            facts.append(("New", _newness(s)))
        yield (
            f'<li class="card" id="sp-{i}"><article aria-labelledby="sp-{i}-h">'
            f'<h3 id="sp-{i}-h">{_name(s.common, s.scientific)}</h3><dl class="facts">'
            + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in facts)
            + "</dl>"
        )
        yield from _charts(f"sp{i}", s.common, list(sp.hours), list(sp.days), report)
        yield "</article></li>"
    yield "</ul></section>"


def _notes(report: Report, embedded: Embedded, max_size_mb: float, clips: bool) -> Iterator[str]:
    shown = len(report.rows)
    if shown < report.total:
        yield (
            f"The table lists the newest {shown:,} of the {report.total:,} detections "
            "(--max-rows); the counts and charts above cover them all."
        )
    if embedded.left_out:
        yield (
            f"{embedded.images_left_out:,} spectrograms and {embedded.clips_left_out:,} audio "
            f"clips were left out to keep this file under {max_size_mb:g} MB (--max-size; the "
            "newest are kept). The station has them: birdnet-edge log play ID."
        )
    if embedded.missing:
        yield (
            f"{len(embedded.missing):,} clips named in the log are no longer on the station "
            "(deleted by the clip budget or retention)."
        )
    if not clips:
        yield "No clips were kept for these detections (clips.enabled is off)."


def _media_cells(row: Row, embedded: Embedded, when: str) -> str:
    d = row.detection
    media = embedded.media.get(d.id)
    if row.clip is None:
        reason = "no clip"
    elif d.id in embedded.missing:
        reason = "deleted"
    else:
        reason = "left out (size)"
    if media is not None and media.image is not None:
        size = f' width="{media.size[0]}" height="{media.size[1]}"' if media.size else ""
        image = (
            f'<img class="spec" src="{media.image}"{size} loading="lazy" '
            f'alt="Spectrogram of the {e(d.common)} at {e(when)}, 0 to 12 kHz">'
        )
    else:
        image = f'<span class="none">{reason}</span>'
    if media is not None and media.audio is not None:
        audio = (
            f'<audio controls preload="none" src="{media.audio}" '
            f'aria-label="Clip of the {e(d.common)} at {e(when)}"></audio>'
        )
    else:
        audio = f'<span class="none">{reason}</span>'
    return (
        f'<td class="media" data-label="Spectrogram">{image}</td>'
        f'<td class="media" data-label="Clip">{audio}</td>'
    )


def _detections(report: Report, embedded: Embedded, max_size_mb: float) -> Iterator[str]:
    clips = any(r.clip is not None for r in report.rows)
    yield '<section aria-labelledby="detections-h"><h2 id="detections-h">Detections</h2>'
    for note in _notes(report, embedded, max_size_mb, clips):
        yield f'<p class="note" role="note">{e(note)}</p>'
    names = sorted({(r.detection.common, r.detection.scientific) for r in report.rows})
    yield (
        '<div id="controls" hidden><label for="species-filter">Species</label>'
        '<select id="species-filter"><option value="">all species</option>'
        + "".join(f'<option value="{e(sci)}">{e(common)}</option>' for common, sci in names)
        + '</select><span id="shown" aria-live="polite"></span></div>'
    )
    zone = _zone_words(report)
    heads = [
        f'<th scope="col" data-sort="text" aria-sort="descending">Time ({zone})</th>',
        '<th scope="col" data-sort="text">Species</th>',
        '<th scope="col" class="num" data-sort="num">Confidence</th>',
        '<th scope="col" class="num" data-sort="num">Length (s)</th>',
    ]
    if clips:
        heads += ['<th scope="col">Spectrogram</th>', '<th scope="col">Clip</th>']
    yield (
        '<table class="detections" id="detections"><caption>Detections, newest first'
        f"{'; with their spectrogram and clip where kept' if clips else ''}</caption>"
        f"<thead><tr>{''.join(heads)}</tr></thead><tbody>"
    )
    for row in report.rows:
        d = row.detection
        when = _t(d.start.astimezone(d.zone), report)
        yield (
            f'<tr data-species="{e(d.scientific)}"><td class="time">{_when(when)}</td>'
            f'<th scope="row" data-v="{e(d.common)}">{_name(d.common, d.scientific)}'
            f"{_badge(d)}</th>"
            f'<td class="num" data-label="Confidence">{d.confidence:.2f}</td>'
            f'<td class="num" data-label="Length (s)">{d.duration_s:g}</td>'
            + (_media_cells(row, embedded, when) if clips else "")
            + "</tr>"
        )
    yield "</tbody></table></section>"


def render(report: Report, embedded: Embedded, *, max_size_mb: float, lang: str = "en") -> str:
    """The whole page; ``lang``: the language of the species names (the station's locale)."""
    stations = ", ".join(sorted({s.station for s in report.setups})) or "the station"
    first, last = report.days[0], report.days[-1]
    span = f"{first:%Y-%m-%d}" + (f" to {last:%Y-%m-%d}" if last != first else "")
    title = f"Birds heard at {stations}, {span}"
    dates = f'<span class="nw">{first:%Y-%m-%d}</span>' + (
        f' to <span class="nw">{last:%Y-%m-%d}</span>' if last != first else ""
    )
    parts = [
        f'<!DOCTYPE html>\n<html lang="{e(lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{STYLE}</style></head><body>",
        f"<header><h1>Birds heard at {e(stations)}, {dates}</h1></header>",
        "<main>",
        *_summary(report),
        *_species(report),
        *_detections(report, embedded, max_size_mb),
        "</main>",
        f"<footer>Made by birdnet-edge log report on {report.generated:%Y-%m-%d %H:%M} from "
        f"{e(report.db)}. Common names as the station logged them.</footer>",
        f"<script>{SCRIPT}</script></body></html>\n",
    ]
    return "".join(parts)


MB = 1 << 20
NOTES_BYTES = 2000  # room for the notes a page with media says more than one without


def build(report: Report, *, max_size_mb: float, lang: str = "en") -> str:
    """The page with as many spectrograms and clips (newest first) as keep it within
    ``max_size_mb`` (MB of 2**20 bytes)."""
    bare = render(report, Embedded(), max_size_mb=max_size_mb, lang=lang)
    if not any(r.clip is not None for r in report.rows):
        return bare
    budget = int(max_size_mb * MB) - len(bare.encode("utf-8")) - NOTES_BYTES
    embedded = embed(report.rows, max(0, budget))
    return render(report, embedded, max_size_mb=max_size_mb, lang=lang)
