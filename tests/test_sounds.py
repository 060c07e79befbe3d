"""BirdNET's sounds and animals that are not birds: kinds by label, and the window gate's rules."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from birdnet_edge.audio.format import SAMPLE_RATE, WINDOW_SAMPLES
from birdnet_edge.config import load_config
from birdnet_edge.detect.sounds import (
    HUMAN_LABELS,
    SOUND_LABELS,
    Kind,
    NoiseRule,
    SoundGate,
    SoundRules,
    kind_mask,
    kind_of,
)
from birdnet_edge.errors import ConfigError
from birdnet_edge.model.files import ModelPaths
from birdnet_edge.model.labels import Label, read_labels

LABELS = [
    Label(0, "Poecile atricapillus", "Black-capped Chickadee"),
    Label(1, "Human vocal", "Human vocal"),
    Label(2, "Siren", "Siren"),
    Label(3, "Strix varia", "Barred Owl"),
    Label(4, "Gryllus assimilis", "Gryllus assimilis"),
    Label(5, "Lithobates catesbeianus", "American Bullfrog"),
    Label(6, "Canis latrans", "Coyote"),
]
HUMAN, SIREN, OWL, CHICKADEE = 1, 2, 3, 0


def test_kinds_of_labels() -> None:
    kinds = [kind_of(label) for label in LABELS]
    assert kinds == [
        Kind.BIRD, Kind.HUMAN, Kind.SOUND, Kind.BIRD, Kind.INSECT, Kind.FROG, Kind.MAMMAL,
    ]  # fmt: skip
    assert kind_mask(LABELS, [Kind.BIRD]).tolist() == [1, 0, 0, 1, 0, 0, 0]
    assert kind_mask(LABELS, [Kind.BIRD, Kind.FROG]).tolist() == [1, 0, 0, 1, 0, 1, 0]


@pytest.mark.model
def test_every_non_bird_of_the_label_file_is_known(model_dir: Path) -> None:
    """The label file has no taxonomy: names that say frog, toad, katydid, cricket, squirrel...
    (and are not birds' names) must all be of a kind other than birds."""
    labels = read_labels(ModelPaths.at(model_dir).labels)
    kinds = {label.scientific: kind_of(label) for label in labels}
    assert sorted(s for s, k in kinds.items() if k is Kind.HUMAN) == sorted(HUMAN_LABELS)
    assert sorted(s for s, k in kinds.items() if k is Kind.SOUND) == sorted(SOUND_LABELS)
    not_birds = re.compile(
        r"\b(Frog|Toad|Peeper|Treefrog|Spadefoot|Bullfrog|Katydid|Trig|Cicada|Conehead|"
        r"Shieldback|Ground Cricket|Tree Cricket|Field Cricket|Bush Cricket|Wood Cricket|"
        r"Squirrel|Chipmunk|Coyote|Wolf|Deer|Monkey)\b"
    )
    birds_named_so = re.compile(r"Frogmouth|Cricket Longtail|Cricket Warbler|Squirrel Cuckoo")
    missed = [
        label
        for label in labels
        if not_birds.search(label.common)
        and not birds_named_so.search(label.common)
        and kind_of(label) is Kind.BIRD
    ]
    assert missed == []
    counts = {kind: sum(1 for k in kinds.values() if k is kind) for kind in Kind}
    assert counts[Kind.BIRD] > 6400
    assert (counts[Kind.INSECT], counts[Kind.FROG], counts[Kind.MAMMAL]) == (40, 41, 7)


def _scores(**by_label: float) -> np.ndarray:
    conf = np.zeros(len(LABELS), dtype=np.float32)
    for name, value in by_label.items():
        conf[{"human": HUMAN, "siren": SIREN, "owl": OWL, "chickadee": CHICKADEE}[name]] = value
    return conf


def _window(i: int, hop_seconds: float = 3.0) -> tuple[int, int]:
    start = round(i * hop_seconds * SAMPLE_RATE)
    return start, start + WINDOW_SAMPLES


PRIVACY = SoundRules.for_labels(
    LABELS, privacy_threshold=0.05, privacy_seconds=3.0, drop_in_private=True
)


def test_a_voice_makes_its_window_and_the_next_seconds_private_and_drops_birds_there() -> None:
    gate = SoundGate()
    seen = []
    for i, scores in enumerate(
        [
            _scores(chickadee=0.8),  # 0-3 s: reported before the voice
            _scores(chickadee=0.8, human=0.06),  # 3-6 s: the voice
            _scores(chickadee=0.8),  # 6-9 s: within 3 s of it
            _scores(chickadee=0.8),  # 9-12 s: starts past 6 + 3 s? no: 9 < 9 is false
        ]
    ):
        start, end = _window(i)
        verdict = gate.window(PRIVACY, start, end, scores, [(CHICKADEE, 0.8)])
        seen.append((verdict.private, [h for h, _ in verdict.hits]))
    assert seen == [(False, [0]), (True, []), (True, []), (False, [0])]
    assert (gate.stats.private_windows, gate.stats.dropped_private) == (1, 2)
    # Audio from 3 s before the voice's window to 3 s after it is private (clips).
    assert gate.is_private(0, 1)  # 3 s before the voice's window
    assert gate.is_private(8 * SAMPLE_RATE, 9 * SAMPLE_RATE)
    assert not gate.is_private(9 * SAMPLE_RATE, 13 * SAMPLE_RATE)  # 3 s after its end: free


def test_privacy_without_dropping_keeps_the_birds_and_only_marks_the_windows() -> None:
    keep = SoundRules.for_labels(
        LABELS, privacy_threshold=0.05, privacy_seconds=3.0, drop_in_private=False
    )
    gate = SoundGate()
    start, end = _window(0)
    verdict = gate.window(keep, start, end, _scores(chickadee=0.8, human=0.5), [(CHICKADEE, 0.8)])
    assert verdict.private
    assert verdict.hits == [(CHICKADEE, 0.8)]
    assert gate.stats.private_windows == 1


def test_a_voice_below_the_threshold_is_not_private() -> None:
    gate = SoundGate()
    start, end = _window(0)
    verdict = gate.window(PRIVACY, start, end, _scores(human=0.049), [(CHICKADEE, 0.8)])
    assert not verdict.private
    assert verdict.hits == [(CHICKADEE, 0.8)]


def test_a_siren_suppresses_the_listed_species_for_its_time_only() -> None:
    rule = NoiseRule(
        sounds=np.array([SIREN]), threshold=0.2, samples=10 * SAMPLE_RATE,
        species=frozenset({OWL}), name="Siren",
    )  # fmt: skip
    rules = SoundRules.for_labels(
        LABELS, privacy_threshold=None, privacy_seconds=0, drop_in_private=False, noise=(rule,)
    )
    gate = SoundGate()
    passed = []
    for i, scores in enumerate([_scores(siren=0.3)] + [_scores()] * 5):
        start, end = _window(i)  # the siren's window ends at 3 s: owls suppressed until 13 s
        hits = [(OWL, 0.7), (CHICKADEE, 0.9)]
        verdict = gate.window(rules, start, end, scores, hits)
        passed.append([h for h, _ in verdict.hits])
        if i == 0:
            assert verdict.dropped == [(OWL, "noise: Siren heard")]
    assert passed == [[CHICKADEE]] * 5 + [[OWL, CHICKADEE]]
    assert gate.stats.suppressed == 5


def test_the_config_names_kinds_and_sounds_strictly(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "filters:\n  classes: [birds, frogs]\n  privacy: {threshold: 0.1, drop_detections: true}\n"
        "  noise:\n    - {sounds: [Siren, Dog], species: [Barred Owl], seconds: 60}\n"
    )
    cfg = load_config(path)
    assert cfg.filters.classes == ("birds", "frogs")
    assert cfg.filters.privacy.drop_detections
    assert cfg.filters.noise[0].sounds == ("Siren", "Dog")
    path.write_text("filters:\n  classes: [bats]\n")
    with pytest.raises(ConfigError, match=r"filters\.classes\[0\]: must be one of birds"):
        load_config(path)
    path.write_text("filters:\n  noise:\n    - {sounds: [Ambulance]}\n")
    with pytest.raises(ConfigError, match=r"filters\.noise\[0\]\.sounds\[0\]: must be one of Dog"):
        load_config(path)


def test_a_sound_is_announced_on_its_own_topic_never_as_a_bird() -> None:
    import dataclasses
    import datetime as dt

    from birdnet_edge.detect.events import EventChange
    from birdnet_edge.log.record import Detection, DetectionContext, console_line
    from birdnet_edge.mqtt.messages import Announcer

    t0 = dt.datetime(2026, 5, 1, 14, 2, tzinfo=dt.timezone.utc)
    siren = Detection(
        "s1", t0, t0 + dt.timedelta(seconds=3), dt.timedelta(), "Siren", "Siren", 0.8, 1, False,
        DetectionContext("garden", None, None, "m", "FP32", 1.0, 0.0, 0.7), kind="sound",
    )  # fmt: skip
    announcer = Announcer(1)
    opened = announcer(EventChange("opened", siren))
    closed = announcer(EventChange("closed", dataclasses.replace(siren, closed=True)))
    assert [t for t, _ in opened.messages] == ["sound"]
    assert [t for t, _ in closed.messages] == ["sound"]
    assert "sound: Siren 0.80" in console_line(siren)


@pytest.mark.model
def test_an_unknown_name_in_a_noise_rule_is_refused_with_the_closest_label(
    tmp_path: Path, model_dir: Path
) -> None:
    from tests.conftest import run_cli

    path = tmp_path / "c.yaml"
    path.write_text(
        f"model: {{dir: {model_dir}}}\n"
        "filters:\n  noise:\n    - {sounds: [Siren], species: [Barred Owel]}\n"
    )
    proc = run_cli(["check-config", str(path)])
    assert proc.returncode == 2
    assert "filters.noise[0].species" in proc.stderr
    assert "did you mean 'Barred Owl' (Strix varia)?" in proc.stderr


def test_day_and_night_at_the_station() -> None:
    import datetime as dt

    from birdnet_edge.detect.daylight import is_day, sun_times

    utc = dt.timezone.utc
    berlin = (52.52, 13.405)
    rise, set_ = sun_times(*berlin, dt.date(2026, 6, 21))
    assert (rise.hour, rise.minute, set_.hour, set_.minute) == (2, 43, 19, 32)  # 04:43/21:32 CEST
    noon = dt.datetime(2026, 6, 21, 11, 0, tzinfo=utc)
    assert is_day(*berlin, noon, 30)
    assert not is_day(*berlin, dt.datetime(2026, 6, 21, 23, 0, tzinfo=utc), 30)
    assert not is_day(*berlin, rise + dt.timedelta(minutes=20), 30)  # dawn is the owls' too
    assert is_day(*berlin, rise + dt.timedelta(minutes=40), 30)
    honolulu = (21.3, -157.85)  # its day runs past midnight UTC: sunset 05:16 UTC next day
    assert is_day(*honolulu, dt.datetime(2026, 6, 22, 4, 0, tzinfo=utc), 30)  # 18:00 there
    svalbard = (78.2, 15.6)
    assert is_day(*svalbard, dt.datetime(2026, 6, 21, 0, 30, tzinfo=utc), 30)  # midnight sun
    assert not is_day(*svalbard, dt.datetime(2026, 12, 21, 11, 0, tzinfo=utc), 30)  # polar night


def test_a_nocturnal_species_by_day_is_not_reported_at_night_it_is() -> None:
    import datetime as dt

    from birdnet_edge.detect.daylight import NOCTURNAL_GENERA, nocturnal

    assert {"Strix", "Bubo", "Caprimulgus", "Tyto"} <= NOCTURNAL_GENERA
    assert "Glaucidium" not in NOCTURNAL_GENERA  # pygmy owls hunt by day
    assert nocturnal(LABELS) == frozenset({OWL})
    rules = SoundRules.for_labels(
        LABELS, privacy_threshold=None, privacy_seconds=0, drop_in_private=False,
        nocturnal=frozenset({OWL}), location=(42.5, -76.45),
    )  # fmt: skip
    hits = [(OWL, 0.8), (CHICKADEE, 0.9)]
    gate = SoundGate()
    noon = dt.datetime(2026, 5, 1, 16, 0, tzinfo=dt.timezone.utc)  # 12:00 in Ithaca
    by_day = gate.window(rules, 0, WINDOW_SAMPLES, _scores(), hits, at=noon)
    assert by_day.hits == [(CHICKADEE, 0.9)]
    assert by_day.dropped == [(OWL, "daylight: a nocturnal species heard by day")]
    night = dt.datetime(2026, 5, 1, 6, 0, tzinfo=dt.timezone.utc)  # 02:00 there
    assert gate.window(rules, 0, WINDOW_SAMPLES, _scores(), hits, at=night).hits == hits
    assert gate.window(rules, 0, WINDOW_SAMPLES, _scores(), hits).hits == hits  # no clock: kept
    assert gate.stats.by_day == 1
