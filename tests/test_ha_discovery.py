"""Home Assistant discovery payloads checked against what HA's MQTT platforms accept.

The rules below are taken from Home Assistant's MQTT integration (``homeassistant/components/
mqtt/{event,sensor,binary_sensor,schemas}.py`` and the ``event.mqtt``/``sensor.mqtt``/
``binary_sensor.mqtt`` documentation), as tried against Home Assistant 2025.4 (RECIPES.md):

- discovery topic ``<prefix>/<component>/[<node_id>/]<object_id>/config``, ids ``[a-zA-Z0-9_-]``;
- the payload is a JSON object; ``sensor``/``binary_sensor`` require ``state_topic``; ``event``
  requires ``state_topic`` and a non-empty list ``event_types``;
- a known key with a bad value (unknown ``device_class``, ``state_class``, ``entity_category``)
  rejects the payload; a reused ``unique_id`` is rejected; ``device`` needs ``identifiers`` (or
  ``connections``); ``availability`` is a list of ``{topic, payload_available,
  payload_not_available, value_template}`` and excludes ``availability_topic``;
- a sensor with a unit or ``state_class`` must receive numbers; ``device_class: timestamp`` needs
  an ISO time with a time zone; binary sensor payloads are ``ON``/``OFF`` unless set.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from typing import Any

import pytest

from birdnet_edge.errors import ConfigError
from birdnet_edge.log import record
from birdnet_edge.log.record import Detection, DetectionContext
from birdnet_edge.mqtt.discovery import (
    OFFLINE,
    ONLINE,
    Device,
    DiscoveryMessage,
    Topics,
    discovery_messages,
    slug,
    status_topic,
)
from birdnet_edge.mqtt.messages import DayCounts, state_message

# --- what Home Assistant accepts --------------------------------------------------------------

DISCOVERY_TOPIC = re.compile(
    r"^(?P<prefix>[^/]+)/(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?"
    r"(?P<object_id>[a-zA-Z0-9_-]+)/config$"
)
ID = re.compile(r"^[a-zA-Z0-9_-]+$")
ENTITY_CATEGORIES = {"config", "diagnostic"}
AVAILABILITY_MODES = {"all", "any", "latest"}
AVAILABILITY_KEYS = {"topic", "payload_available", "payload_not_available", "value_template"}
DEVICE_KEYS = {
    "identifiers", "connections", "manufacturer", "model", "model_id", "name", "hw_version",
    "serial_number", "sw_version", "via_device", "suggested_area", "configuration_url",
}  # fmt: skip
EVENT_DEVICE_CLASSES = {"button", "doorbell", "motion"}
BINARY_SENSOR_DEVICE_CLASSES = {
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door",
    "garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving", "occupancy",
    "opening", "plug", "power", "presence", "problem", "running", "safety", "smoke", "sound",
    "tamper", "update", "vibration", "window",
}  # fmt: skip
SENSOR_DEVICE_CLASSES = {
    "apparent_power", "aqi", "area", "atmospheric_pressure", "battery",
    "blood_glucose_concentration", "carbon_dioxide", "carbon_monoxide", "conductivity",
    "current", "data_rate", "data_size", "date", "distance", "duration", "energy",
    "energy_distance", "energy_storage", "enum", "frequency", "gas", "humidity", "illuminance",
    "irradiance", "moisture", "monetary", "nitrogen_dioxide", "nitrogen_monoxide",
    "nitrous_oxide", "ozone", "ph", "pm1", "pm10", "pm25", "power", "power_factor",
    "precipitation", "precipitation_intensity", "pressure", "reactive_power", "signal_strength",
    "sound_pressure", "speed", "sulphur_dioxide", "temperature", "timestamp",
    "volatile_organic_compounds", "volatile_organic_compounds_parts", "voltage", "volume",
    "volume_flow_rate", "volume_storage", "water", "weight", "wind_direction", "wind_speed",
}  # fmt: skip
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
REQUIRED = {
    "event": {"state_topic", "event_types"},
    "sensor": {"state_topic"},
    "binary_sensor": {"state_topic"},
    "image": {"image_topic"},
}
DEVICE_CLASSES = {
    "event": EVENT_DEVICE_CLASSES,
    "sensor": SENSOR_DEVICE_CLASSES,
    "binary_sensor": BINARY_SENSOR_DEVICE_CLASSES,
}


def _topic_ok(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and "\0" not in value and "#" not in value


def ha_problems(msg: DiscoveryMessage, seen_ids: set[str]) -> list[str]:
    """What Home Assistant would reject (or silently mis-handle) in one discovery message."""
    m = DISCOVERY_TOPIC.match(msg.topic)
    if m is None:
        return [f"bad discovery topic {msg.topic}"]
    component = m["component"]
    if component not in REQUIRED:
        return [f"component {component} not checked here"]
    p = json.loads(json.dumps(msg.payload))  # what goes over the wire
    if not isinstance(p, dict):
        return ["payload is not a JSON object"]
    return [
        *_platform_problems(component, p),
        *_identity_problems(p, seen_ids),
        *_availability_problems(p),
    ]


def _platform_problems(component: str, p: dict[str, Any]) -> list[str]:
    problems = [f"missing required {k}" for k in sorted(REQUIRED[component] - set(p))]
    for key in ("state_topic", "json_attributes_topic", "availability_topic"):
        if key in p and not _topic_ok(p[key]):
            problems.append(f"{key} is not a topic")
    if component == "event":
        types = p.get("event_types")
        if not (isinstance(types, list) and types and all(isinstance(t, str) for t in types)):
            problems.append("event_types must be a non-empty list of strings")
    if "device_class" in p and p["device_class"] not in DEVICE_CLASSES[component]:
        problems.append(f"unknown {component} device_class {p['device_class']}")
    if "state_class" in p and (component != "sensor" or p["state_class"] not in STATE_CLASSES):
        problems.append(f"bad state_class {p['state_class']}")
    if p.get("device_class") == "timestamp" and ("state_class" in p or "unit_of_measurement" in p):
        problems.append("a timestamp sensor takes neither unit nor state_class")
    if "entity_category" in p and p["entity_category"] not in ENTITY_CATEGORIES:
        problems.append(f"bad entity_category {p['entity_category']}")
    if p.get("entity_category") == "config":
        problems.append("read-only entities cannot be in the config category")
    for key in ("payload_on", "payload_off", "name", "icon", "unit_of_measurement"):
        if key in p and not isinstance(p[key], str):
            problems.append(f"{key} must be a string")
    return problems


def _identity_problems(p: dict[str, Any], seen_ids: set[str]) -> list[str]:
    problems = []
    uid = p.get("unique_id")
    if not isinstance(uid, str) or not ID.match(uid):
        problems.append(f"unique_id {uid!r} missing or not [a-zA-Z0-9_-]")
    elif uid in seen_ids:
        problems.append(f"unique_id {uid} reused")
    else:
        seen_ids.add(uid)
    device = p.get("device")
    if not isinstance(device, dict) or not (device.get("identifiers") or device.get("connections")):
        problems.append("device needs identifiers")
    elif set(device) - DEVICE_KEYS:
        problems.append(f"unknown device keys {sorted(set(device) - DEVICE_KEYS)}")
    if "origin" in p and not (isinstance(p["origin"], dict) and p["origin"].get("name")):
        problems.append("origin needs a name")
    return problems


def _availability_problems(p: dict[str, Any]) -> list[str]:
    problems = []
    if "availability" in p and "availability_topic" in p:
        problems.append("availability and availability_topic are exclusive")
    avail = p.get("availability")
    if not isinstance(avail, list) or not avail:
        problems.append("availability must be a non-empty list")
    else:
        for entry in avail:
            if not isinstance(entry, dict) or not _topic_ok(entry.get("topic")):
                problems.append("availability entry needs a topic")
            elif set(entry) - AVAILABILITY_KEYS:
                problems.append(
                    f"unknown availability keys {sorted(set(entry) - AVAILABILITY_KEYS)}"
                )
    if p.get("availability_mode", "latest") not in AVAILABILITY_MODES:
        problems.append("bad availability_mode")
    return problems


# --- fixtures ---------------------------------------------------------------------------------

TOPICS = Topics.for_station("Mein Garten/Süd")
DEVICE = Device("Mein Garten/Süd", "BirdNET V2.4", "0.1.0")
CONTEXT = DetectionContext("Mein Garten/Süd", 52.52, 13.4, "BirdNET.tflite", "FP32", 1.0, 0.0, 0.7)


def _event(common: str = "Amsel", confidence: float = 0.8731) -> Detection:
    start = dt.datetime(2025, 5, 4, 4, 12, 3, tzinfo=dt.timezone.utc)
    return Detection(
        "0b5e1f4c-3b7a-4c2e-9a57-2f0e6b1d9c11",
        start,
        start + dt.timedelta(seconds=6),
        dt.timedelta(hours=2),
        "Turdus merula",
        common,
        confidence,
        2,
        False,
        CONTEXT,
    )


def _state(last: bool = True) -> dict[str, Any]:
    day = DayCounts(dt.date(2025, 5, 4))
    if last:
        day.species.update({"Amsel": 3, "Kohlmeise": 1})
    msg = json.loads(json.dumps(record.message(_event()))) if last else None
    state: dict[str, Any] = json.loads(json.dumps(state_message(msg, day)))
    return state


def _by_id() -> dict[str, DiscoveryMessage]:
    return {m.object_id: m for m in discovery_messages(TOPICS, DEVICE)}


# --- tests ------------------------------------------------------------------------------------


def test_slug_and_default_topics() -> None:
    assert slug("Mein Garten/Süd") == "mein_garten_sud"
    assert slug("garden") == "garden"
    assert slug("+#/ ") == "station"
    assert TOPICS.prefix == "birdnet-edge/mein_garten_sud"
    assert TOPICS.detection == "birdnet-edge/mein_garten_sud/detection"
    assert TOPICS.availability.endswith("/availability")
    assert TOPICS.state.endswith("/state")
    assert TOPICS.event.endswith("/event")
    assert Topics.for_station("x", "home/birds/").prefix == "home/birds"
    assert status_topic("ha") == "ha/status"


@pytest.mark.parametrize("prefix", ["", "/", "birds/+", "birds/#"])
def test_bad_topic_prefix_names_the_key(prefix: str) -> None:
    with pytest.raises(ConfigError, match=r"mqtt\.topic_prefix"):
        Topics.for_station("garden", prefix)


def test_every_entity_is_accepted_by_home_assistant() -> None:
    messages = discovery_messages(TOPICS, DEVICE, "homeassistant")
    seen: set[str] = set()
    for msg in messages:
        assert ha_problems(msg, seen) == [], msg.topic
    components = sorted((m.component, m.object_id) for m in messages)
    assert components == [
        ("binary_sensor", "connectivity"),
        ("event", "detection"),
        ("sensor", "detections_today"),
        ("sensor", "last_confidence"),
        ("sensor", "last_detected"),
        ("sensor", "last_species"),
    ]
    node_ids = {DISCOVERY_TOPIC.match(m.topic)["node_id"] for m in messages}  # type: ignore[index]
    assert node_ids == {"birdnet_edge_mein_garten_sud"}
    # one device for the station, every entity available only while the daemon is online
    assert {json.dumps(m.payload["device"], sort_keys=True) for m in messages} == {
        json.dumps(messages[0].payload["device"], sort_keys=True)
    }
    for m in messages:
        (entry,) = m.payload["availability"]
        assert entry["topic"] == TOPICS.availability
        assert (entry["payload_available"], entry["payload_not_available"]) == (ONLINE, OFFLINE)


def test_event_entity_fires_on_the_event_topic() -> None:
    event = _by_id()["detection"].payload
    assert event["state_topic"] == TOPICS.event
    assert event["event_types"] == ["detection"]


def test_connectivity_sensor_follows_availability() -> None:
    conn = _by_id()["connectivity"].payload
    assert conn["state_topic"] == TOPICS.availability
    assert (conn["payload_on"], conn["payload_off"]) == (ONLINE, OFFLINE)
    assert conn["device_class"] == "connectivity"
    assert conn["entity_category"] == "diagnostic"


@pytest.mark.parametrize(
    ("component", "mutate", "expected"),
    [
        ("event", lambda p: p.pop("event_types"), "missing required event_types"),
        ("event", lambda p: p.update(event_types=[]), "event_types must be"),
        ("sensor", lambda p: p.pop("state_topic"), "missing required state_topic"),
        ("sensor", lambda p: p.update(device_class="birdsong"), "unknown sensor device_class"),
        ("sensor", lambda p: p.update(state_class="sometimes"), "bad state_class"),
        ("binary_sensor", lambda p: p.update(device_class="bird"), "unknown binary_sensor"),
        ("binary_sensor", lambda p: p.update(entity_category="system"), "bad entity_category"),
        ("sensor", lambda p: p["device"].pop("identifiers"), "device needs identifiers"),
        ("sensor", lambda p: p.update(unique_id="a b"), "unique_id"),
        ("sensor", lambda p: p.update(availability_topic="x"), "exclusive"),
        ("sensor", lambda p: p.update(availability=[{"payload_available": "on"}]), "needs a topic"),
    ],
)
def test_the_checker_rejects_what_home_assistant_rejects(
    component: str, mutate: Any, expected: str
) -> None:
    msg = next(m for m in discovery_messages(TOPICS, DEVICE) if m.component == component)
    bad = DiscoveryMessage(msg.component, msg.object_id, msg.topic, copy.deepcopy(msg.payload))
    mutate(bad.payload)
    assert any(expected in p for p in ha_problems(bad, set()))


def test_reused_unique_id_is_rejected() -> None:
    msg = discovery_messages(TOPICS, DEVICE)[0]
    seen: set[str] = set()
    assert ha_problems(msg, seen) == []
    assert any("reused" in p for p in ha_problems(msg, seen))


def _render(template: str, payload: dict[str, Any]) -> str:
    jinja2 = pytest.importorskip("jinja2")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return str(env.from_string(template).render(value_json=payload, value=json.dumps(payload)))


def test_templates_give_home_assistant_the_values_it_needs() -> None:
    state = _state()
    by_id = _by_id()
    assert _render(by_id["last_species"].payload["value_template"], state) == "Amsel"
    attrs = json.loads(_render(by_id["last_species"].payload["json_attributes_template"], state))
    assert attrs["scientific_name"] == "Turdus merula"
    assert attrs["confidence"] == pytest.approx(0.8731)
    # unit / state_class: the state must be a number
    assert float(_render(by_id["last_confidence"].payload["value_template"], state)) == 87.3
    assert int(_render(by_id["detections_today"].payload["value_template"], state)) == 4
    per_species = _render(by_id["detections_today"].payload["json_attributes_template"], state)
    assert json.loads(per_species) == {"Amsel": 3, "Kohlmeise": 1}
    # timestamp: ISO 8601 with a time zone
    stamp = dt.datetime.fromisoformat(
        _render(by_id["last_detected"].payload["value_template"], state)
    )
    assert stamp.tzinfo is not None
    assert stamp == dt.datetime(2025, 5, 4, 4, 12, 3, tzinfo=dt.timezone.utc)
    # the connectivity sensor is available whatever the availability payload is
    (entry,) = by_id["connectivity"].payload["availability"]
    assert _render(entry["value_template"], {}) == ONLINE


def test_templates_before_the_first_detection_give_unknown() -> None:
    state = _state(last=False)
    by_id = _by_id()
    for object_id in ("last_species", "last_confidence", "last_detected"):
        # Home Assistant's MQTT sensor turns the text "None" into the state `unknown`
        assert _render(by_id[object_id].payload["value_template"], state) == "None"
    attrs = _render(by_id["last_species"].payload["json_attributes_template"], state)
    assert json.loads(attrs) == {}
    assert _render(by_id["detections_today"].payload["value_template"], state) == "0"


def test_discovery_prefix_is_configurable() -> None:
    topics = {m.topic.split("/")[0] for m in discovery_messages(TOPICS, DEVICE, "ha-test")}
    assert topics == {"ha-test"}


def test_the_spectrogram_image_entity_when_clips_are_kept() -> None:
    messages = discovery_messages(TOPICS, DEVICE, "homeassistant", image=True)
    seen: set[str] = set()
    for msg in messages:
        assert ha_problems(msg, seen) == [], msg.topic
    (image,) = [m for m in messages if m.component == "image"]
    assert image.topic == "homeassistant/image/birdnet_edge_mein_garten_sud/last_spectrogram/config"
    assert image.payload["image_topic"] == TOPICS.image
    assert image.payload["content_type"] == "image/png"
    assert "url_topic" not in image.payload  # one or the other, never both
