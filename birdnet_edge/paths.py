"""Default locations, following the XDG base directory spec (and systemd's directories)."""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    if value and Path(value).is_absolute():
        return Path(value)
    return Path.home() / fallback


def default_model_dir() -> Path:
    """``$XDG_DATA_HOME/birdnet-edge/models`` (``$STATE_DIRECTORY/models`` under systemd)."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0]) / "models"
    return _xdg("XDG_DATA_HOME", ".local/share") / "birdnet-edge" / "models"


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/birdnet-edge`` (``$STATE_DIRECTORY`` under systemd)."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0])
    return _xdg("XDG_STATE_HOME", ".local/state") / "birdnet-edge"


def default_config_path() -> Path:
    """``$CONFIGURATION_DIRECTORY/config.yaml`` under systemd, else ``$XDG_CONFIG_HOME``."""
    conf = os.environ.get("CONFIGURATION_DIRECTORY")
    if conf:
        return Path(conf.split(":")[0]) / "config.yaml"
    return _xdg("XDG_CONFIG_HOME", ".config") / "birdnet-edge" / "config.yaml"
