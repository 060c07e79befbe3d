"""Strict config loading: unknown keys and bad values name their key path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from birdnet_edge.config import Config, field_docs, load_config
from birdnet_edge.errors import ConfigError
from tests.conftest import REPO, run_cli


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    cfg = load_config(None)
    assert cfg == Config()
    # A grid window every 1.5 s, refined where a species nears the threshold (README: Recall).
    assert cfg.analysis.overlap == 1.5
    assert cfg.analysis.refine.enabled
    assert cfg.analysis.refine.candidate == 0.2


def test_values_are_read_and_typed(tmp_path: Path) -> None:
    cfg = load_config(
        _write(
            tmp_path,
            """
station: {name: meadow, latitude: 42.5, longitude: -76}
analysis: {overlap: 1, sensitivity: 1.25}
filters: {species_list: lists/mine.txt, exclude: [Corvus corax]}
mqtt: {protocol: 5}
""",
        )
    )
    assert cfg.station.longitude == -76.0
    assert isinstance(cfg.analysis.overlap, float)
    assert cfg.filters.species_list == tmp_path / "lists" / "mine.txt"  # relative to the file
    assert cfg.filters.exclude == ("Corvus corax",)
    assert cfg.mqtt.protocol == "5"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("analysis: {overlap: 3}", "analysis.overlap: must be between 0 and 2.9, got 3"),
        ("analysis: {overlapp: 1}", "analysis.overlapp: unknown key"),
        ("mqtt: {tls: {enabled: yes please}}", "mqtt.tls.enabled: must be true or false"),
        ("model: {runtime: tensorflow}", "model.runtime: must be one of auto, litert"),
        ("model: {threads: 1.5}", "model.threads: must be a whole number"),
        ("station: {latitude: 10}", "latitude and longitude must be given together"),
        ("model: {variant: fast}", "model.variant: must be one of auto, original, optimized"),
        ("model: {file: x.tflite, variant: original}", "model: file (x.tflite) and variant"),
        ("filters: {exclude: Corvus corax}", "filters.exclude: must be a list"),
        ("audio: [1, 2]", "audio: must be a mapping"),
        ("audio: {channel: -1}", "audio.channel: must be at least 0, got -1"),
        ("database: {retention_days: -1}", "database.retention_days: must be at least 0"),
        ("analysis: {overlap: .nan}", "analysis.overlap: must be a finite number"),
        ("analysis: {overlap: [}", "not valid YAML at line 1"),
    ],
)
def test_errors_name_the_key_path(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(_write(tmp_path, text))


def test_a_section_with_every_key_commented_out_keeps_its_defaults(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, "mqtt:\n  # host: broker.lan\n  tls:\nstation: {name: x}\n"))
    assert cfg.mqtt == Config().mqtt
    assert cfg.station.name == "x"


def test_a_config_that_is_not_utf8_says_to_save_it_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes("station: {name: G\xe4rten}\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"is not UTF-8 text: save it as UTF-8"):
        load_config(path)


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist: copy config.example.yaml"):
        load_config(tmp_path / "nope.yaml")


def _keys(data: dict[str, object], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for k, v in data.items():
        path = f"{prefix}.{k}" if prefix else k
        # A mapping with no keys (per-species settings, empty by default) is a key itself.
        keys |= _keys(v, path) if isinstance(v, dict) and v else {path}
    return keys


def test_example_config_is_valid_and_documents_every_key() -> None:
    example = REPO / "config.example.yaml"
    load_config(example)
    # Every key appears in the example (commented-out keys count: strip the comment marks).
    text = "\n".join(
        line.replace("# ", "", 1) if line.lstrip().startswith("# ") and ":" in line else line
        for line in example.read_text().splitlines()
    )
    documented = _keys(yaml.safe_load(text))
    assert set(field_docs(Config)) <= documented


def test_check_config_command(tmp_path: Path) -> None:
    good = run_cli(["check-config", str(REPO / "config.example.yaml")])
    assert good.returncode == 0, good.stderr
    bad = run_cli(["check-config", str(_write(tmp_path, "analysis: {sensitivity: 9}"))])
    assert bad.returncode == 2
    assert (
        bad.stderr.strip()
        .splitlines()[-1]
        .startswith("birdnet-edge: error: analysis.sensitivity: must be between 0.5 and 1.5")
    )


def test_a_key_set_twice_is_an_error_naming_its_path(tmp_path: Path) -> None:
    path = _write(tmp_path, "analysis:\n  overlap: 1\nmqtt:\n  tls:\n    enabled: true\n"
                  "    enabled: false\n")  # fmt: skip
    with pytest.raises(ConfigError, match=r"mqtt\.tls\.enabled is set twice \(lines 5 and 6\)"):
        load_config(path)
    path = _write(tmp_path, "station: {name: a}\nstation: {name: b}\n")
    with pytest.raises(ConfigError, match=r": station is set twice \(lines 1 and 2\): keep one"):
        load_config(path)
