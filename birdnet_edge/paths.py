"""Default locations, following the XDG base directory spec (and systemd's directories), and
output files written whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from birdnet_edge.errors import BirdnetEdgeError

#: Where the systemd service keeps its state and reads its config (``StateDirectory=`` and
#: ``ConfigurationDirectory=`` in systemd/birdnet-edge.service), so that ``birdnet-edge log``
#: run by hand on a service install finds them.
SERVICE_STATE_DIR = Path("/var/lib/birdnet-edge")
SERVICE_CONFIG_DIR = Path("/etc/birdnet-edge")
CONFIG_NAME = "config.yaml"


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


def check_output(path: Path, option: str = "--output") -> None:
    """Fail before any work, naming the fix, when ``path`` cannot become an output file."""
    if path.is_dir():
        raise BirdnetEdgeError(f"{path} is a folder: give {option} a file name")
    if not path.parent.is_dir():
        raise BirdnetEdgeError(
            f"folder {path.parent} does not exist: create it or choose another {option}"
        )


@contextmanager
def written_whole(path: Path, option: str = "--output") -> Iterator[TextIO]:
    """A text file that appears at ``path`` only once it is complete (through ``path.part``);
    on any failure the partial file is removed."""
    check_output(path, option)
    tmp = path.with_name(path.name + ".part")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as out:
            yield out
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BirdnetEdgeError(
            f"cannot write {path}: {exc.strerror or exc}: choose another {option}"
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
