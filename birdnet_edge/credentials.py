"""Secrets read at start-up: the MQTT password, never logged or shown.

The password comes from the first of: the file named by ``mqtt.password_file``, the environment
variable ``BIRDNET_EDGE_MQTT_PASSWORD``, or the systemd credential ``mqtt-password``
(``$CREDENTIALS_DIRECTORY/mqtt-password``, from ``LoadCredential=`` in the unit).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from birdnet_edge.config import MQTTConfig
from birdnet_edge.errors import ConfigError

PASSWORD_ENV = "BIRDNET_EDGE_MQTT_PASSWORD"
CREDENTIAL_NAME = "mqtt-password"


@dataclass(frozen=True)
class Secret:
    """A value that prints as ``***``, so it cannot leak into a log line or a traceback."""

    value: str = field(repr=False)
    source: str  # where it came from, safe to show ("mqtt.password_file /etc/...")

    def __str__(self) -> str:
        return "***"


def _read(path: Path, what: str) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what}: {path} does not exist: create it or fix the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(
            f"{what}: cannot read {path}: {reason}: make it readable by this user"
        ) from None
    return text.rstrip("\r\n")  # a trailing newline from `echo pw > file` is not part of it


def mqtt_password(cfg: MQTTConfig, env: Mapping[str, str] | None = None) -> Secret | None:
    """The MQTT password, or ``None`` when none is configured anywhere."""
    env = os.environ if env is None else env
    if cfg.password_file is not None:
        return Secret(_read(cfg.password_file, "mqtt.password_file"), "mqtt.password_file")
    if env.get(PASSWORD_ENV):
        return Secret(env[PASSWORD_ENV], f"${PASSWORD_ENV}")
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds:
        path = Path(creds) / CREDENTIAL_NAME
        if path.is_file():
            value = _read(path, f"credential {CREDENTIAL_NAME}")
            if value.strip():  # the unit's SetCredential= fallback is a blank credential
                return Secret(value, f"credential {path}")
    return None


def exposed_password_file(cfg: MQTTConfig) -> str | None:
    """A warning when ``mqtt.password_file`` can be read by its group or others (ssh refuses
    such keys); None when it cannot, or no such file is configured."""
    path = cfg.password_file
    if path is None:
        return None
    try:
        mode = path.stat().st_mode
    except OSError:
        return None  # reading it fails with its own message
    if not mode & (stat.S_IRWXG | stat.S_IRWXO):
        return None
    return (
        f"mqtt.password_file {path} can be read by other users (mode {stat.S_IMODE(mode):04o}): "
        f"chmod 600 {path}"
    )
