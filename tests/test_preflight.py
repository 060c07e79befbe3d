"""check-config refuses exactly what run refuses: one validation for both."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

MQTT = "mqtt: {enabled: true, host: 127.0.0.1, port: 1}\n"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("mqtt: {enabled: true, topic_prefix: 'birds/#'}\n", "mqtt.topic_prefix"),
        (
            "mqtt: {enabled: true, discovery: {prefix: 'home/+'}}\n",
            "mqtt.discovery.prefix",
        ),
        (
            "mqtt: {enabled: true, tls: {enabled: true, ca_file: /nonexistent/ca.crt}}\n",
            "mqtt.tls.ca_file: cannot load /nonexistent/ca.crt",
        ),
        (
            "mqtt: {enabled: true, username: u, password_file: /nonexistent/pw}\n",
            "mqtt.password_file: /nonexistent/pw does not exist",
        ),
        (
            "filters: {species_list: /nonexistent/list.txt}\n",
            "filters.species_list: /nonexistent/list.txt does not exist",
        ),
    ],
)
def test_check_config_and_run_refuse_the_same_configs(tmp_path: Path, text: str, says: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text + f"database: {{path: {tmp_path / 'd.db'}}}\n")
    checked = run_cli(["check-config", str(config)])
    ran = run_cli(["run", "-c", str(config), "--input", "/nonexistent.wav"])  # never reached
    for proc in (checked, ran):
        assert proc.returncode != 0
        (line,) = proc.stderr.strip().splitlines()
        assert says in line


@pytest.mark.model
def test_a_missing_label_language_is_refused_by_both(tmp_path: Path, model_dir: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"model: {{dir: {model_dir}, locale: xx}}\n")
    for proc in (
        run_cli(["check-config", str(config)]),
        run_cli(["run", "-c", str(config), "--input", str(tmp_path / "none.wav")]),
    ):
        assert proc.returncode != 0
        assert "no 'xx' labels installed" in proc.stderr


def test_a_password_file_others_can_read_is_named_with_the_fix(tmp_path: Path) -> None:
    password = tmp_path / "pw"
    password.write_text("secret\n")
    password.chmod(0o644)
    config = tmp_path / "config.yaml"
    config.write_text(f"mqtt: {{enabled: true, username: u, password_file: {password}}}\n")
    proc = run_cli(["check-config", str(config)])
    assert proc.returncode == 0, proc.stderr
    assert f"can be read by other users (mode 0644): chmod 600 {password}" in proc.stderr
    password.chmod(0o600)
    proc = run_cli(["check-config", str(config)])
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr
