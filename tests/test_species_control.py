"""Per-species control: thresholds, include and exclude lists, the confirmation rule."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from birdnet_edge.config import Config, load_config
from birdnet_edge.detect.confirm import Confirmation
from birdnet_edge.detect.events import EventChange
from birdnet_edge.detect.filters import window_hits
from birdnet_edge.detect.stack import confirmation_of, per_label_thresholds, thresholds
from birdnet_edge.errors import BirdnetEdgeError
from birdnet_edge.model.birdnet import load_labels
from birdnet_edge.model.files import ModelPaths
from birdnet_edge.mqtt.messages import Announcer
from tests.test_sqlite_sink import make_event

pytestmark = pytest.mark.model


def _cfg(tmp_path: Path, model_dir: Path, filters: str, locale: str | None = None) -> Config:
    path = tmp_path / "c.yaml"
    model = f"model: {{dir: {model_dir}" + (f", locale: {locale}}}" if locale else "}")
    path.write_text(f"{model}\nfilters:\n{filters}")
    return load_config(path)


def test_own_thresholds_by_any_name_in_any_language(tmp_path: Path, model_dir: Path) -> None:
    cfg = _cfg(
        tmp_path, model_dir,
        "  thresholds: {Haussperling: 0.9, Turdus merula: 0.4, Great Tit: 0.5}\n", locale="de",
    )  # fmt: skip
    labels = load_labels(ModelPaths.at(model_dir), "de")
    per = per_label_thresholds(cfg, labels)
    assert per is not None
    by_name = {label.scientific: per[label.index] for label in labels}
    assert by_name["Passer domesticus"] == pytest.approx(0.9)  # German common name
    assert by_name["Turdus merula"] == pytest.approx(0.4)  # scientific
    assert by_name["Parus major"] == pytest.approx(0.5)  # English, although the locale is de
    assert by_name["Erithacus rubecula"] == pytest.approx(0.7)  # the others: min_confidence
    conf = np.zeros(len(labels), dtype=np.float32)
    sparrow = next(label.index for label in labels if label.scientific == "Passer domesticus")
    blackbird = next(label.index for label in labels if label.scientific == "Turdus merula")
    conf[sparrow], conf[blackbird] = 0.85, 0.45
    ((index, confidence),) = window_hits(conf, 0.7, None, None, per)
    assert (index, round(confidence, 2)) == (blackbird, 0.45)


def test_include_and_exclude_lists_inline_and_from_files(tmp_path: Path, model_dir: Path) -> None:
    excluded = tmp_path / "never.txt"
    excluded.write_text("# noisy neighbours\nPasser domesticus\n")
    cfg = _cfg(
        tmp_path, model_dir,
        f"  include: [House Sparrow, Eurasian Blackbird, European Robin]\n"
        f"  exclude: [European Robin]\n  exclude_list: {excluded}\n  range_filter: false\n",
    )  # fmt: skip
    labels = load_labels(ModelPaths.at(model_dir), None)
    mask = thresholds(cfg, labels).allowed
    assert mask is not None
    allowed = {labels[i].scientific for i in np.flatnonzero(mask)}
    assert allowed == {"Turdus merula"}


def test_an_unknown_name_is_a_config_error_with_the_closest_label(
    tmp_path: Path, model_dir: Path
) -> None:
    cfg = _cfg(tmp_path, model_dir, "  thresholds: {Eurasian Blackbrid: 0.5}\n")
    labels = load_labels(ModelPaths.at(model_dir), None)
    with pytest.raises(BirdnetEdgeError, match=r"filters\.thresholds\.Eurasian Blackbrid .* "
                       r"did you mean 'Eurasian Blackbird' \(Turdus merula\)\?"):  # fmt: skip
        per_label_thresholds(cfg, labels)


def test_the_confirmation_rule_per_species_and_for_single_callers(
    tmp_path: Path, model_dir: Path
) -> None:
    cfg = _cfg(
        tmp_path, model_dir,
        "  min_windows: {Eurasian Blackbird: 3}\n  single_call: [Black-capped Chickadee]\n",
    )  # fmt: skip
    cfg = dataclasses.replace(cfg, mqtt=dataclasses.replace(cfg.mqtt, min_windows=2))
    labels = load_labels(ModelPaths.at(model_dir), None)
    confirm = confirmation_of(cfg, labels)
    assert confirm == Confirmation(2, confirm.per_species)
    assert confirm.windows("Turdus merula") == 3
    assert confirm.windows("Poecile atricapillus") == 1  # calls once: its first window counts
    assert confirm.windows("Erithacus rubecula") == 2  # mqtt.min_windows
    announcer = Announcer(confirm)
    chickadee = make_event()  # Poecile atricapillus, one window
    assert announcer(EventChange("opened", chickadee)).announce == "detected"
    t0 = dt.datetime(2026, 5, 1, 5, 0, tzinfo=dt.timezone.utc)
    blackbird = dataclasses.replace(chickadee, id="b", scientific="Turdus merula", start=t0)
    grown = [dataclasses.replace(blackbird, windows=n) for n in (1, 2, 3)]
    changes = [EventChange("opened" if d.windows == 1 else "updated", d) for d in grown]
    stamped = [announcer(change).announce for change in changes]
    assert stamped == [None, None, "detected"]


def test_species_lists_what_the_range_filter_allows_in_the_users_language(
    model_dir: Path, data_dir: Path
) -> None:
    import csv
    import json

    from tests.conftest import run_cli

    proc = run_cli(
        ["species", "--model-dir", str(model_dir), "--lat", "42.5", "--lon", "-76.45",
         "--week", "4", "--locale", "de", "--json"]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    names = {s["common"] for s in listed["species"]}
    occurrences = [s["occurrence"] for s in listed["species"]]
    assert occurrences == sorted(occurrences, reverse=True)
    assert min(occurrences) >= 0.03
    # BirdNET-Analyzer's case 3 (this place and week, German names) reports only such species.
    with (data_dir / "bna-2.4-expected" / "case3.table.txt").open(encoding="utf-8") as f:
        expected = {row["Common Name"] for row in csv.DictReader(f, delimiter="\t")}
    assert expected <= names
    assert "Blaumeise" not in names  # a European tit is not expected in New York in January
    again = run_cli(["species", "--model-dir", str(model_dir), "--lat", "42.5", "--lon",
                     "-76.45", "--date", "2026-01-25", "--locale", "de", "--json"])  # fmt: skip
    assert json.loads(again.stdout)["week"] == 4
