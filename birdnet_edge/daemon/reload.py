"""What a config reload (SIGHUP) may change in a running daemon, decided without touching it.

The model, the audio device and the database file are fixed while the daemon runs: a changed
value there is kept as it is running (and named, so the user knows a restart is needed); the
command line's overrides of the model section stay. Everything else takes the file's value.
"""

from __future__ import annotations

import dataclasses

from birdnet_edge.config import Config

#: Settings only a restart changes, by the key the user sees.
RESTART_ONLY = ("model", "audio", "database.path")


def _value(cfg: Config, key: str) -> object:
    section, _, field = key.partition(".")
    value = getattr(cfg, section)
    return getattr(value, field) if field else value


def reloaded(new_file: Config, old_file: Config, running: Config) -> tuple[Config, list[str]]:
    """The config to run with after the file changed from ``old_file`` to ``new_file`` while
    ``running`` runs; and the restart-only keys whose change waits for a restart."""
    waiting = [k for k in RESTART_ONLY if _value(new_file, k) != _value(old_file, k)]
    new = dataclasses.replace(
        new_file,
        model=running.model,
        audio=running.audio,
        database=dataclasses.replace(new_file.database, path=running.database.path),
    )
    return new, waiting


def mqtt_changed(new: Config, running: Config) -> bool:
    """Whether the MQTT publisher must be rebuilt (its settings, or the station it names)."""
    return new.mqtt != running.mqtt or (new.mqtt.enabled and new.station != running.station)
