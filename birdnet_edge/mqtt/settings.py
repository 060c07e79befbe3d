"""The MQTT settings the publisher refuses before connecting, its TLS context, and what to fix
when the broker refuses the connection."""

from __future__ import annotations

import ssl

from birdnet_edge.config import Config, TLSConfig
from birdnet_edge.credentials import Secret, mqtt_password
from birdnet_edge.errors import ConfigError
from birdnet_edge.mqtt.discovery import Topics, topic_prefix

# What to fix for a refused CONNACK, by words in the broker's reason.
_REFUSAL_FIX = (
    (
        ("authori", "user name", "password", "bad auth"),
        "check mqtt.username and the password (mqtt.password_file, "
        "$BIRDNET_EDGE_MQTT_PASSWORD or the mqtt-password credential)",
    ),
    (("identifier", "client id"), "set another mqtt.client_id"),
    (("protocol",), "set mqtt.protocol to the version the broker speaks"),
)


def refusal_fix(reason: str) -> str:
    low = reason.lower()
    for words, fix in _REFUSAL_FIX:
        if any(w in low for w in words):
            return fix
    return "check the broker's log and its settings for this client"


def check_settings(cfg: Config) -> Secret | None:
    """Everything the publisher refuses in ``cfg.mqtt``, checked without connecting (``run``
    and ``check-config`` alike); returns the password."""
    m = cfg.mqtt
    Topics.for_station(cfg.station.name, m.topic_prefix)
    topic_prefix(m.discovery.prefix, "mqtt.discovery.prefix")
    if m.tls.enabled:
        tls_context(m.tls)
    password = mqtt_password(m)
    if password is not None and not m.username:
        raise ConfigError(
            f"mqtt.username: a password is configured ({password.source}) but no user "
            "name: set mqtt.username"
        )
    return password


def tls_context(tls: TLSConfig) -> ssl.SSLContext:
    """A client context that verifies the broker (against ``ca_file`` or the system CAs)."""
    try:
        ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"mqtt.tls.ca_file: cannot load {tls.ca_file}: {exc}: give a PEM CA certificate"
        ) from None
    if tls.certfile is not None:
        try:
            ctx.load_cert_chain(str(tls.certfile), str(tls.keyfile) if tls.keyfile else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"mqtt.tls.certfile: cannot load {tls.certfile} (key {tls.keyfile}): {exc}: "
                "give a PEM certificate and its key"
            ) from None
    elif tls.keyfile is not None:
        raise ConfigError("mqtt.tls.keyfile: set only together with mqtt.tls.certfile")
    return ctx
