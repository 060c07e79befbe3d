"""MQTT topic names and Home Assistant discovery payloads: pure functions, no I/O.

One Home Assistant device per station, with:

- ``event.<station>_detection``: fires on every detection (event type ``detection``), so an
  automation triggers even when the same species sings again;
- sensors for the last species (its detection as attributes), its confidence, the time it was
  heard, and the number of detections today (per-species counts as attributes);
- a diagnostic ``binary_sensor`` (device class ``connectivity``) that follows the availability
  topic.

Every entity names the availability topic, so Home Assistant shows the station unavailable when
the daemon stops or its Last Will fires. Ids contain only ``[a-zA-Z0-9_-]``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from birdnet_edge.errors import ConfigError

ONLINE = "online"
OFFLINE = "offline"
EVENT_TYPE = "detection"

_NOT_ID = re.compile(r"[^a-z0-9_-]+")


def slug(name: str) -> str:
    """``Mein Garten/Süd`` -> ``mein_garten_sud``: safe in topics and Home Assistant ids."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return _NOT_ID.sub("_", ascii_name.lower()).strip("_") or "station"


def topic_prefix(prefix: str, key: str) -> str:
    """``prefix`` without surrounding blanks and slashes; a :class:`ConfigError` naming the
    config ``key`` when it cannot lead a topic (empty, or wildcards paho would refuse)."""
    clean = prefix.strip().strip("/")
    if not clean or any(c in clean for c in "+#\0"):
        raise ConfigError(
            f"{key}: {prefix!r} is not a valid topic prefix: use letters, digits and / (no + or #)"
        )
    return clean


@dataclass(frozen=True)
class Topics:
    """The topics of one station."""

    prefix: str

    @classmethod
    def for_station(cls, station: str, prefix: str | None = None) -> Topics:
        """Topics under ``prefix`` (default ``birdnet-edge/<station slug>``)."""
        if prefix is None:
            return cls(f"birdnet-edge/{slug(station)}")
        return cls(topic_prefix(prefix, "mqtt.topic_prefix"))

    @property
    def detection(self) -> str:
        """One JSON message per detection event, QoS 1, from the durable outbox."""
        return f"{self.prefix}/detection"

    @property
    def image(self) -> str:
        """The last detection's spectrogram (PNG bytes, retained), with clips on."""
        return f"{self.prefix}/image"

    @property
    def sound(self) -> str:
        """BirdNET's sounds (dog, engine, siren...) with ``filters.report_sounds``; QoS 1."""
        return f"{self.prefix}/sound"

    @property
    def availability(self) -> str:
        """Retained ``online``/``offline``; ``offline`` is also the Last Will."""
        return f"{self.prefix}/availability"

    @property
    def state(self) -> str:
        """Retained JSON: the last detection and today's counts."""
        return f"{self.prefix}/state"

    @property
    def event(self) -> str:
        """Non-retained ``{"event_type": "detection", ...}`` for Home Assistant's event entity."""
        return f"{self.prefix}/event"


@dataclass(frozen=True)
class Device:
    """What Home Assistant shows about the station."""

    station: str  # the configured station name
    model: str  # e.g. "BirdNET V2.4"
    sw_version: str

    @property
    def node_id(self) -> str:
        return f"birdnet_edge_{slug(self.station)}"


@dataclass(frozen=True)
class DiscoveryMessage:
    """One retained discovery config: its topic and JSON object."""

    component: str
    object_id: str
    topic: str
    payload: dict[str, Any]


def _availability(topics: Topics, value_template: str | None = None) -> list[dict[str, str]]:
    entry = {
        "topic": topics.availability,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
    }
    if value_template is not None:
        entry["value_template"] = value_template
    return [entry]


def _device(device: Device) -> dict[str, Any]:
    return {
        "identifiers": [device.node_id],
        "name": f"BirdNET {device.station}",
        "manufacturer": "birdnet-edge",
        "model": device.model,
        "sw_version": device.sw_version,
    }


def discovery_messages(
    topics: Topics, device: Device, discovery_prefix: str = "homeassistant", *, image: bool = False
) -> list[DiscoveryMessage]:
    """The discovery config of every entity of the station, to publish retained (``image``:
    the last detection's spectrogram too, when clips are kept)."""
    node = device.node_id
    last = "value_json.last"
    entities: list[tuple[str, str, dict[str, Any]]] = [
        (
            "event",
            "detection",
            {
                "name": "Detection",
                "state_topic": topics.event,
                "event_types": [EVENT_TYPE],
                "icon": "mdi:bird",
            },
        ),
        (
            "sensor",
            "last_species",
            {
                "name": "Last species",
                "state_topic": topics.state,
                "value_template": f"{{{{ {last}.common_name if {last} else None }}}}",
                "json_attributes_topic": topics.state,
                "json_attributes_template": f"{{{{ ({last} or {{}}) | tojson }}}}",
                "icon": "mdi:bird",
            },
        ),
        (
            "sensor",
            "last_confidence",
            {
                "name": "Last confidence",
                "state_topic": topics.state,
                "value_template": (
                    f"{{{{ ({last}.confidence * 100) | round(1) if {last} else None }}}}"
                ),
                "unit_of_measurement": "%",
                "state_class": "measurement",
                "icon": "mdi:percent",
            },
        ),
        (
            "sensor",
            "last_detected",
            {
                "name": "Last detected",
                "state_topic": topics.state,
                "value_template": f"{{{{ {last}.start if {last} else None }}}}",
                "device_class": "timestamp",
            },
        ),
        (
            "sensor",
            "detections_today",
            {
                "name": "Detections today",
                "state_topic": topics.state,
                "value_template": "{{ value_json.today.total }}",
                "json_attributes_topic": topics.state,
                "json_attributes_template": "{{ value_json.today.species | tojson }}",
                "unit_of_measurement": "detections",
                "state_class": "total_increasing",
                "icon": "mdi:counter",
            },
        ),
        (
            "binary_sensor",
            "connectivity",
            {
                "name": "Connectivity",
                "state_topic": topics.availability,
                "payload_on": ONLINE,
                "payload_off": OFFLINE,
                "device_class": "connectivity",
                "entity_category": "diagnostic",
            },
        ),
    ]
    if image:
        entities.append(
            (
                "image",
                "last_spectrogram",
                {
                    "name": "Last spectrogram",
                    "image_topic": topics.image,
                    "content_type": "image/png",
                    "icon": "mdi:waveform",
                },
            )
        )
    messages = []
    for component, object_id, config in entities:
        # The connectivity sensor shows `offline` as OFF instead of turning unavailable: any
        # message on the availability topic makes it available.
        template = "{{ 'online' }}" if component == "binary_sensor" else None
        payload = {
            **config,
            "unique_id": f"{node}_{object_id}",
            "availability": _availability(topics, template),
            "device": _device(device),
            "origin": {"name": "birdnet-edge", "sw_version": device.sw_version},
        }
        messages.append(
            DiscoveryMessage(
                component,
                object_id,
                f"{discovery_prefix}/{component}/{node}/{object_id}/config",
                payload,
            )
        )
    return messages


def status_topic(discovery_prefix: str = "homeassistant") -> str:
    """Where Home Assistant announces ``online`` after it starts (its birth message)."""
    return f"{discovery_prefix}/status"
