"""What a reload may change: decided by a pure function before the daemon is touched."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from birdnet_edge.config import (
    AnalysisConfig,
    AudioConfig,
    Config,
    DatabaseConfig,
    ModelConfig,
    MQTTConfig,
    StationConfig,
)
from birdnet_edge.daemon.reload import mqtt_changed, reloaded

RUNNING = Config(
    model=ModelConfig(dir=Path("/models/from-the-command-line")),
    database=DatabaseConfig(path=Path("/var/lib/birdnet-edge/detections.db")),
)


def test_restart_only_settings_keep_running_values_and_are_named() -> None:
    old_file = Config(database=DatabaseConfig(path=Path("/var/lib/birdnet-edge/detections.db")))
    new_file = Config(
        audio=AudioConfig(device="USB"),
        database=DatabaseConfig(path=Path("/elsewhere.db"), retention_days=30),
        analysis=AnalysisConfig(min_confidence=0.4),
    )
    new, waiting = reloaded(new_file, old_file, RUNNING)
    assert waiting == ["audio", "database.path"]
    assert new.audio == RUNNING.audio
    assert new.model == RUNNING.model  # the command line's override stays
    assert new.database.path == RUNNING.database.path
    assert new.database.retention_days == 30  # the rest of the section applies
    assert new.analysis.min_confidence == 0.4


def test_nothing_waits_when_only_live_settings_change() -> None:
    old_file = Config()
    new, waiting = reloaded(Config(analysis=AnalysisConfig(sensitivity=1.25)), old_file, RUNNING)
    assert waiting == []
    assert new.analysis.sensitivity == 1.25


def test_the_publisher_is_rebuilt_for_its_settings_or_its_station() -> None:
    on = dataclasses.replace(RUNNING, mqtt=MQTTConfig(enabled=True, host="broker"))
    assert not mqtt_changed(on, on)
    assert mqtt_changed(dataclasses.replace(on, mqtt=MQTTConfig(enabled=True, host="other")), on)
    moved = dataclasses.replace(on, station=StationConfig("shed"))
    assert mqtt_changed(moved, on)  # the station names its topics and device
    off = dataclasses.replace(RUNNING, station=StationConfig("shed"))
    assert not mqtt_changed(off, RUNNING)  # without MQTT, a new station name changes nothing
