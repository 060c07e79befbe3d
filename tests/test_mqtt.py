"""MQTT publishing against a real Mosquitto: schema, order, outages, restarts, auth and TLS.

Detections go through the real SQLite sink and its outbox, as in the daemon. The tests that kill
the publisher run it in a child process (``CHILD``: the SQLite sink and the publisher fed with
synthetic events on command) so it can be SIGKILLed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from birdnet_edge.config import Config, DiscoveryConfig, MQTTConfig, StationConfig, TLSConfig
from birdnet_edge.credentials import Secret, mqtt_password
from birdnet_edge.detect.events import EventChange
from birdnet_edge.detect.sinks import Fanout
from birdnet_edge.errors import ConfigError
from birdnet_edge.log.feed import LogFeed
from birdnet_edge.log.outbox import Outbox
from birdnet_edge.log.record import Detection, DetectionContext
from birdnet_edge.log.schema import open_database
from birdnet_edge.log.writer import LogWriter
from birdnet_edge.mqtt.discovery import Topics
from birdnet_edge.mqtt.messages import Announcer, outbox_messages
from birdnet_edge.mqtt.publisher import MQTTPublisher
from tests.broker import Broker, retained, subscriber
from tests.storage import fill
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parent.parent
STATION = "Test Garden"
TOPICS = Topics.for_station(STATION)
CONTEXT = DetectionContext(
    STATION, 52.52, 13.405, "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite", "FP32", 1.0, 0.0, 0.7
)
DETECTION_KEYS = {
    "id", "status", "windows", "start", "end", "scientific_name", "common_name", "confidence",
    "station", "latitude", "longitude", "model", "precision", "kind", "first_of_day",
    "first_in_days", "first_ever", "clip",
}  # fmt: skip
FAST = {"retry_min": 0.2, "retry_max": 0.5}


def event_id(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


def make_event(i: int, windows: int = 1, closed: bool = False) -> Detection:
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    species = i % 5
    return Detection(
        event_id(i),
        start,
        start + dt.timedelta(seconds=3 * windows),
        start.astimezone().utcoffset() or dt.timedelta(),
        f"Genus species{species}",
        f"Bird {species}",
        0.5 + species / 10,
        windows,
        closed,
        CONTEXT,
    )


def mqtt_cfg(b: Broker, **mqtt: Any) -> Config:
    return Config(
        station=StationConfig(STATION, CONTEXT.latitude, CONTEXT.longitude),
        mqtt=MQTTConfig(enabled=True, host=b.host, port=b.port, **mqtt),
    )


def outbox_rows(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        # Detections waiting (each also has a Home Assistant event row on the event topic).
        query = "SELECT count(*) FROM outbox WHERE topic = 'detection'"
        return int(conn.execute(query).fetchone()[0])


def detections(sub: Any) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in sub.on(TOPICS.detection)]


def unique_ids(messages: list[dict[str, Any]]) -> list[str]:
    """Ids in order of first arrival (at-least-once delivery may repeat one)."""
    seen: dict[str, None] = {}
    for m in messages:
        seen.setdefault(m["id"], None)
    return list(seen)


class Pipeline:
    """The SQLite sink and the publisher wired as the daemon wires them."""

    def __init__(self, cfg: Config, db: Path, **retry: float) -> None:
        feed = LogFeed()
        self.publisher = MQTTPublisher(cfg, db, feed=feed, **{**FAST, **retry})
        self.sink = LogWriter(db, feed=feed, retry_seconds=0.2)
        self.sinks = Fanout([self.sink, self.publisher], Announcer(cfg.mqtt.min_windows))
        self.publisher.start()

    def change(self, change: EventChange) -> None:
        self.sinks.handle(change)

    def detect(self, indices: range) -> None:
        for i in indices:
            self.change(EventChange("opened", make_event(i)))
        assert self.sink.flush(10)

    def close(self) -> None:
        self.sink.close()
        self.publisher.close()


@contextlib.contextmanager
def pipeline(cfg: Config, db: Path, **retry: float) -> Iterator[Pipeline]:
    p = Pipeline(cfg, db, **retry)
    try:
        yield p
    finally:
        p.close()


# --- the daemon-like child process ------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import logging, sys
    from pathlib import Path
    from birdnet_edge.config import load_config
    from birdnet_edge.detect.events import EventChange
    from tests.test_mqtt import Pipeline, make_event

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    p = Pipeline(load_config(sys.argv[1]), Path(sys.argv[2]))
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "detect":
            first, n = map(int, args)
            p.detect(range(first, first + n))
        elif cmd == "quit":
            p.close()
            break
        print("done", p.publisher.state, flush=True)
    """
)


class Child:
    """A publisher process driven line by line over stdin."""

    def __init__(self, config: Path, db: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(config), str(db)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def command(self, line: str) -> str:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def write_config(path: Path, b: Broker, keepalive: int = 30) -> Path:
    path.write_text(
        textwrap.dedent(
            f"""
            station: {{name: {STATION}, latitude: 52.52, longitude: 13.405}}
            mqtt:
              enabled: true
              host: {b.host}
              port: {b.port}
              keepalive: {keepalive}
            """
        )
    )
    return path


# --- tests: messages --------------------------------------------------------------------------


def test_detections_arrive_with_the_documented_schema_in_order(
    broker: Broker, tmp_path: Path
) -> None:
    db = tmp_path / "detections.db"
    with subscriber(broker, [f"{TOPICS.prefix}/#"]) as sub, pipeline(mqtt_cfg(broker), db) as p:
        sub.wait_for(lambda ms: any(m.payload == b"online" for m in ms))
        assert p.publisher.state == "connected"
        p.detect(range(25))
        sub.wait_for(lambda ms: len([m for m in ms if m.topic == TOPICS.detection]) >= 25)
        got = detections(sub)
        assert [m["id"] for m in got] == [event_id(i) for i in range(25)]
        for i, m in enumerate(got):
            assert set(m) == DETECTION_KEYS
            start, end = dt.datetime.fromisoformat(m["start"]), dt.datetime.fromisoformat(m["end"])
            assert start.utcoffset() is not None  # ISO 8601 with an offset
            assert end > start
            assert m["common_name"] == f"Bird {i % 5}"
            assert m["scientific_name"] == f"Genus species{i % 5}"
            assert m["confidence"] == pytest.approx(0.5 + (i % 5) / 10)
            assert (m["station"], m["latitude"], m["longitude"]) == (STATION, 52.52, 13.405)
            assert m["model"] == CONTEXT.model
        # Home Assistant's event entity fires once per detection
        sub.wait_for(lambda ms: len([m for m in ms if m.topic == TOPICS.event]) >= 25)
        fired = [json.loads(m.payload) for m in sub.on(TOPICS.event)]
        assert [f["id"] for f in fired] == [event_id(i) for i in range(25)]
        assert {f["event_type"] for f in fired} == {"detection"}
        assert fired[7]["species"] == "Bird 2"
        assert fired[7]["scientific_name"] == "Genus species2"
        assert not any(m.retain for m in sub.on(TOPICS.event))
        wait_until(lambda: outbox_rows(db) == 0, what="outbox emptied by PUBACKs")
    # retained after a clean stop: offline, the state, and nothing pending
    assert retained(broker, TOPICS.availability) == b"offline"
    state = json.loads(retained(broker, TOPICS.state) or b"{}")
    assert state["last"]["id"] == event_id(24)
    assert state["today"]["total"] == 25
    assert state["today"]["species"] == {f"Bird {s}": 5 for s in range(5)}


def test_discovery_is_retained_and_sent_again_when_home_assistant_starts(
    broker: Broker, tmp_path: Path
) -> None:
    config_filter = "homeassistant/+/+/+/config"
    with pipeline(mqtt_cfg(broker), tmp_path / "d.db") as p:
        wait_until(lambda: p.publisher.state == "connected")
        with subscriber(broker, [config_filter]) as sub:
            first = sub.wait_for(lambda ms: len(ms) >= 7)
            assert all(m.retain for m in first)  # stored by the broker for Home Assistant
            # (the image: the last spectrogram, clips being on by default)
            assert sorted(m.topic.split("/")[1] for m in first) == [
                "binary_sensor", "event", "image", "sensor", "sensor", "sensor", "sensor",
            ]  # fmt: skip
            for m in first:
                payload = json.loads(m.payload)
                assert payload["availability"][0]["topic"] == TOPICS.availability
            sub.client.publish("homeassistant/status", "online", qos=1)
            again = sub.wait_for(lambda ms: len(ms) >= 14)
            assert {m.topic for m in again[7:]} == {m.topic for m in first}


def test_discovery_can_be_switched_off(broker: Broker, tmp_path: Path) -> None:
    cfg = mqtt_cfg(broker, discovery=DiscoveryConfig(enabled=False))
    with pipeline(cfg, tmp_path / "d.db") as p:
        wait_until(lambda: p.publisher.state == "connected")
        p.detect(range(1))
        assert retained(broker, TOPICS.state) is not None
        assert retained(broker, "homeassistant/#", timeout=1.0) is None


def test_min_windows_publishes_once_the_event_is_confirmed(broker: Broker, tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    with (
        subscriber(broker, [TOPICS.detection, TOPICS.event]) as sub,
        pipeline(mqtt_cfg(broker, min_windows=2), db) as p,
    ):
        wait_until(lambda: p.publisher.state == "connected")
        p.change(EventChange("opened", make_event(1, windows=1)))
        assert p.sink.flush(10)
        p.change(EventChange("updated", make_event(1, windows=2)))
        p.change(EventChange("updated", make_event(1, windows=3)))
        p.change(EventChange("closed", make_event(1, windows=3, closed=True)))
        # A later detection: everything sent for the first one arrives before it.
        p.change(EventChange("opened", make_event(2, windows=2)))
        sub.wait_for(lambda ms: any(json.loads(m.payload)["id"] == event_id(2) for m in ms))
        first = [m for m in sub.messages if json.loads(m.payload)["id"] == event_id(1)]
        assert sorted(m.topic for m in first) == [
            TOPICS.detection, TOPICS.detection, TOPICS.event
        ]  # fmt: skip
        opened, final = (json.loads(m.payload) for m in first if m.topic == TOPICS.detection)
        assert (opened["id"], opened["status"], opened["windows"]) == (event_id(1), "open", 2)
        assert (final["id"], final["status"], final["windows"]) == (event_id(1), "final", 3)


def test_todays_counts_survive_a_restart(broker: Broker, tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    with pipeline(mqtt_cfg(broker), db) as p:
        p.detect(range(3))
        wait_until(lambda: outbox_rows(db) == 0)
    with pipeline(mqtt_cfg(broker), db) as p:
        wait_until(lambda: p.publisher.state == "connected")
        p.detect(range(3, 4))
        wait_until(lambda: outbox_rows(db) == 0)
    state = json.loads(retained(broker, TOPICS.state) or b"{}")
    assert state["today"]["total"] == 4
    assert state["last"]["id"] == event_id(3)


# --- tests: nothing lost ----------------------------------------------------------------------


def test_broker_outage_loses_nothing_and_keeps_the_order(broker: Broker, tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    # a persistent session: the broker keeps the subscription (and queues for it) across restarts
    with (
        subscriber(broker, [TOPICS.detection, TOPICS.event], client_id="test-outage") as sub,
        pipeline(mqtt_cfg(broker), db) as p,
    ):
        p.detect(range(2))
        sub.wait_for(lambda ms: len(ms) >= 4)
        broker.stop()
        wait_until(lambda: p.publisher.state != "connected", what="publisher notices the outage")
        p.detect(range(2, 27))  # 25 detections while the broker is away
        assert outbox_rows(db) == 25
        wait_until(lambda: p.publisher.pending == 25, timeout=10, what="pending count")
        assert p.publisher.state.startswith(("unreachable", "disconnected"))
        time.sleep(1.0)  # the broker returns a second after the last detection
        back = dt.datetime.now(dt.timezone.utc)
        broker.start()
        # Both topics are delivered from the outbox, each in order, but not in step: wait for
        # the last of each (waiting for the events alone let a detection still be in flight).
        sub.wait_for(
            lambda ms: all(
                event_id(26) in {json.loads(m.payload)["id"] for m in ms if m.topic == topic}
                for topic in (TOPICS.detection, TOPICS.event)
            ),
            30,
        )
        assert unique_ids(detections(sub)) == [event_id(i) for i in range(27)]
        # Home Assistant's event entity fires for the detections made during the outage too,
        # each with its own detection time, so an automation can judge how old it is.
        fired = [json.loads(m.payload) for m in sub.on(TOPICS.event)]
        assert unique_ids(fired) == [event_id(i) for i in range(27)]  # at least once, in order
        for f in fired:
            assert dt.datetime.fromisoformat(f["start"]) < back  # not the delivery time
        wait_until(lambda: outbox_rows(db) == 0, what="outbox emptied")
        assert p.publisher.state == "connected"


def test_publisher_killed_while_the_broker_is_down_delivers_after_restart(
    broker: Broker, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "config.yaml", broker)
    db = tmp_path / "d.db"
    with subscriber(broker, [TOPICS.detection], client_id="test-kill") as sub:
        first = Child(config, db)
        try:
            assert first.command("detect 0 3").startswith("done")
            sub.wait_for(lambda ms: len(ms) >= 3)
            broker.stop()
            assert first.command("detect 3 20").startswith("done")  # committed to SQLite
            first.kill()
        finally:
            first.close()
        assert outbox_rows(db) == 20
        broker.start()
        second = Child(config, db)
        try:
            assert second.command("detect 23 2").startswith("done")
            sub.wait_for(lambda ms: len({json.loads(m.payload)["id"] for m in ms}) >= 25, 30)
            assert unique_ids(detections(sub)) == [event_id(i) for i in range(25)]
            wait_until(lambda: outbox_rows(db) == 0)
            assert second.command("quit") == ""
            assert second.proc.wait(10) == 0
        finally:
            second.close()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "frozen"])
def test_last_will_marks_a_killed_publisher_offline(
    broker: Broker, tmp_path: Path, sig: signal.Signals
) -> None:
    """SIGKILL closes the socket: the broker sends the Will at once, well within 1.5 x keepalive.
    A frozen process (SIGSTOP: a hung daemon, a pulled cable) is found by the keepalive alone;
    Mosquitto 2.0.11 expires it 1.5 x keepalive after its last packet plus a few seconds of its
    own (11 s measured for keepalive 5), so that case is only bounded loosely."""
    keepalive = 5
    config = write_config(tmp_path / "config.yaml", broker, keepalive=keepalive)
    with subscriber(broker, [TOPICS.availability]) as sub:
        child = Child(config, tmp_path / "d.db")
        try:
            sub.wait_for(lambda ms: any(m.payload == b"online" for m in ms))
            signalled = time.monotonic()
            child.proc.send_signal(sig)
            got = sub.wait_for(lambda ms: any(m.payload == b"offline" for m in ms), 3 * keepalive)
        finally:
            child.close()
    offline = next(m for m in got if m.payload == b"offline")
    elapsed = offline.at - signalled
    print(f"Last Will 'offline' {elapsed:.1f} s after {sig.name} (keepalive {keepalive} s)")
    if sig == signal.SIGKILL:
        assert elapsed <= 1.5 * keepalive
    else:
        assert elapsed <= 3 * keepalive
    assert retained(broker, TOPICS.availability) == b"offline"


# --- tests: authentication and TLS ------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_password_and_tls(
    broker_factory: Callable[..., Broker],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    protocol: str,
) -> None:
    monkeypatch.delenv("BIRDNET_EDGE_MQTT_PASSWORD", raising=False)
    b = broker_factory(users={"birdnet": "s3cret pass"}, tls=True)
    assert b.tls is not None
    password_file = tmp_path / "mqtt-password"
    password_file.write_text("s3cret pass\n")
    cfg = mqtt_cfg(
        b,
        protocol=protocol,
        username="birdnet",
        password_file=password_file,
        tls=TLSConfig(enabled=True, ca_file=b.tls.ca),
    )
    login = {"username": "birdnet", "password": "s3cret pass"}
    with (
        subscriber(b, [TOPICS.detection], **login) as sub,
        pipeline(cfg, tmp_path / "d.db") as p,
    ):
        p.detect(range(3))
        sub.wait_for(lambda ms: len(ms) >= 3)
        assert unique_ids(detections(sub)) == [event_id(i) for i in range(3)]
        assert p.publisher.state == "connected"


def test_wrong_password_is_a_clear_error_retried_slowly(
    broker_factory: Callable[..., Broker],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    b = broker_factory(users={"birdnet": "right"})
    monkeypatch.setenv("BIRDNET_EDGE_MQTT_PASSWORD", "WrongPassword123")
    db = tmp_path / "d.db"
    caplog.set_level(logging.DEBUG, logger="birdnet_edge")
    with pipeline(mqtt_cfg(b, username="birdnet"), db, retry_refused=60) as p:
        wait_until(lambda: p.publisher.state.startswith("refused"), what="refusal")
        assert "authori" in p.publisher.state.lower()
        # the rest keeps running: detections are logged to SQLite and wait in the outbox
        p.detect(range(5))
        with contextlib.closing(sqlite3.connect(db)) as conn:
            assert conn.execute("SELECT count(*) FROM detections").fetchone()[0] == 5
        assert outbox_rows(db) == 5
        time.sleep(1.5)
        assert p.publisher.state.startswith("refused")
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "refused" in errors[0]
    assert "mqtt.username" in errors[0]
    assert b.log_text().count("not authorised") == 1  # no retry within 60 s
    assert all("WrongPassword123" not in r.getMessage() for r in caplog.records)


def test_untrusted_certificate_is_a_tls_error(
    broker_factory: Callable[..., Broker], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    b = broker_factory(tls=True)
    cfg = mqtt_cfg(b, tls=TLSConfig(enabled=True))  # the system CAs do not know the test CA
    with pipeline(cfg, tmp_path / "d.db") as p:
        wait_until(lambda: p.publisher.state.startswith("TLS error"), what="TLS failure")
        assert "certificate" in p.publisher.state
    assert any("mqtt.tls.ca_file" in r.getMessage() for r in caplog.records)


def test_unreachable_broker_does_not_block_the_sinks(tmp_path: Path) -> None:
    b = Broker(tmp_path / "never-started")  # a free port nobody listens on
    db = tmp_path / "d.db"
    with pipeline(mqtt_cfg(b), db) as p:
        p.detect(range(10))  # the sinks take them although no broker answers
        wait_until(lambda: p.publisher.state.startswith("unreachable"))
        assert outbox_rows(db) == 10
    assert outbox_rows(db) == 10  # kept for the next start


def test_password_without_username_is_a_config_error(
    broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BIRDNET_EDGE_MQTT_PASSWORD", "x")
    with pytest.raises(ConfigError, match=r"mqtt\.username"):
        MQTTPublisher(mqtt_cfg(broker), tmp_path / "d.db")


@pytest.mark.parametrize("prefix", ["homeassistant/#", "+", " / "])
def test_a_discovery_prefix_with_wildcards_is_a_config_error(
    broker: Broker, tmp_path: Path, prefix: str
) -> None:
    # paho refuses such topics only on connecting, which stopped the publisher for good.
    cfg = mqtt_cfg(broker, discovery=DiscoveryConfig(prefix=prefix))
    with pytest.raises(ConfigError, match=r"^mqtt\.discovery\.prefix: .*\(no \+ or #\)"):
        MQTTPublisher(cfg, tmp_path / "d.db")


# --- the daemon end to end --------------------------------------------------------------------


def _replay_config(
    tmp_path: Path, broker: Broker, model_dir: Path, more: str = ""
) -> tuple[Path, Path]:
    """A daemon config publishing to ``broker`` (and its database), with ``more`` YAML lines."""
    db = tmp_path / "detections.db"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"station: {{name: {STATION}}}\nmodel: {{dir: {model_dir}}}\n"
        f"analysis: {{min_confidence: 0.3}}\ndatabase: {{path: {db}}}\n"
        f"mqtt: {{enabled: true, host: {broker.host}, port: {broker.port}}}\n{more}\n"
    )
    return db, config


def _replay(soundscape: Path, config: Path, *args: str, tz: str | None = None) -> None:
    """``birdnet-edge run`` on the soundscape at full speed, to its end."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **({"TZ": tz} if tz else {})}
    done = subprocess.run(
        [sys.executable, "-m", "birdnet_edge", "run", "--input", str(soundscape), "--fast",
         "--quiet", "--config", str(config), *args],
        capture_output=True, text=True, timeout=600, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_replayed_soundscape_arrives_in_order(
    broker: Broker, tmp_path: Path, soundscape: Path, model_dir: Path
) -> None:
    db, config = _replay_config(tmp_path, broker, model_dir)
    with subscriber(broker, [TOPICS.detection]) as sub:
        _replay(soundscape, config)
        with contextlib.closing(sqlite3.connect(db)) as conn:
            stored = [r[0] for r in conn.execute("SELECT id FROM detections ORDER BY rowid")]
        print(f"{len(stored)} detections from the soundscape")
        assert len(stored) >= 5
        sub.wait_for(lambda ms: len(ms) >= 2 * len(stored))  # first and final messages
    messages = detections(sub)
    got = [m for m in messages if m["status"] == "open"]
    final = [m for m in messages if m["status"] == "final"]
    assert sorted(unique_ids(got)) == sorted(stored) == sorted(unique_ids(final))
    assert len(unique_ids(got)) == len(got)  # no duplicates on a healthy connection
    assert len(unique_ids(final)) == len(final)
    starts = [dt.datetime.fromisoformat(m["start"]) for m in got]
    # In detection order. (Fails while the SQLite sink writes a batch's outbox rows in the order
    # of each event's latest change rather than the order the events became detections.)
    assert starts == sorted(starts)
    assert all(set(m) == DETECTION_KEYS for m in got)
    assert outbox_rows(db) == 0


def test_first_of_day_fires_once_per_species_and_day_across_midnight(
    broker: Broker, tmp_path: Path, soundscape: Path, model_dir: Path
) -> None:
    """The soundscape replayed from 23:59:00 station time: Home Assistant's event says
    first_of_day once per species before midnight and once again after it."""
    db, config = _replay_config(tmp_path, broker, model_dir, "events: {gap_seconds: 0}")
    with subscriber(broker, [TOPICS.event]) as sub:
        _replay(soundscape, config, "--start-time", "2026-03-28T23:59:00+01:00", tz="Europe/Berlin")
        with contextlib.closing(sqlite3.connect(db)) as conn:
            stored = conn.execute("SELECT count(*) FROM detections").fetchone()[0]
        sub.wait_for(lambda ms: len(ms) >= stored)
    fired = [json.loads(m.payload) for m in sub.on(TOPICS.event)]
    days: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for event in fired:
        day = dt.datetime.fromisoformat(event["start"]).date().isoformat()
        days.setdefault((event["scientific_name"], day), []).append(event)
    assert {day for _, day in days} == {"2026-03-28", "2026-03-29"}, "the replay spans midnight"
    for (species, day), events in days.items():
        events.sort(key=lambda e: e["start"])
        flags = [e["first_of_day"] for e in events]
        assert flags == [True] + [False] * (len(events) - 1), (species, day, flags)
        if day == "2026-03-29" and (species, "2026-03-28") in days:
            assert events[0]["first_in_days"] == 1
    assert any(len(events) > 1 for events in days.values()), "a species heard twice a day"
    assert any(day == "2026-03-29" and (s, "2026-03-28") in days for s, day in days)


# --- unit tests: secrets and the outbox -------------------------------------------------------


def test_password_sources_in_order(tmp_path: Path) -> None:
    pw_file = tmp_path / "pw"
    pw_file.write_text("from-file\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("from-credential")
    env = {"BIRDNET_EDGE_MQTT_PASSWORD": "from-env", "CREDENTIALS_DIRECTORY": str(creds)}
    with_file = MQTTConfig(password_file=pw_file)
    secret = mqtt_password(with_file, env)
    assert secret is not None
    assert secret.value == "from-file"  # trailing newline dropped
    secret = mqtt_password(MQTTConfig(), env)
    assert secret is not None
    assert secret.value == "from-env"
    secret = mqtt_password(MQTTConfig(), {"CREDENTIALS_DIRECTORY": str(creds)})
    assert secret is not None
    assert secret.value == "from-credential"
    assert mqtt_password(MQTTConfig(), {}) is None
    assert mqtt_password(MQTTConfig(), {"CREDENTIALS_DIRECTORY": str(tmp_path)}) is None
    # The unit's SetCredential=mqtt-password:\n fallback (no password file) means "none".
    (creds / "mqtt-password").write_text("\n")
    assert mqtt_password(MQTTConfig(), {"CREDENTIALS_DIRECTORY": str(creds)}) is None


def test_secret_never_prints(tmp_path: Path) -> None:
    secret = Secret("hunter2", "test")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in f"{secret}"
    with pytest.raises(ConfigError, match=r"mqtt\.password_file: .* does not exist"):
        mqtt_password(MQTTConfig(password_file=tmp_path / "missing"), {})


def test_outbox_reads_in_order_and_deletes_only_what_is_acknowledged(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    outbox = Outbox(db)
    assert outbox.pending() == []  # no file yet: nothing, and no file created
    assert not db.exists()
    conn = open_database(db)
    conn.executemany(
        "INSERT INTO outbox (event_id, payload, created_utc) VALUES (?, ?, ?)",
        [(f"e{i}", f"p{i}", "2025-05-04T00:00:00.000Z") for i in range(5)],
    )
    rows = outbox.pending(limit=3)
    assert [r.payload for r in rows] == ["p0", "p1", "p2"]
    assert [r.payload for r in outbox.pending(after_seq=rows[-1].seq)] == ["p3", "p4"]
    outbox.ack([rows[0].seq, rows[2].seq])
    assert [r.payload for r in outbox.pending()] == ["p1", "p3", "p4"]
    assert outbox.count() == 3
    outbox.close()
    conn.close()


def test_outbox_without_the_table_is_empty(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    sqlite3.connect(db).close()
    outbox = Outbox(db)
    assert outbox.pending() == []
    assert outbox.count() == 0
    outbox.close()


def test_outbox_messages_are_the_detection_then_home_assistants_event() -> None:
    event = make_event(7)
    (detection, topic_d), (fired, topic_e) = [
        (json.loads(p), t) for t, p in outbox_messages(event, "detected")
    ]
    assert (topic_d, topic_e) == ("detection", "event")
    assert detection["id"] == event_id(7)
    assert set(detection) == DETECTION_KEYS
    assert detection["status"] == "open"
    assert fired == {"event_type": "detection", "species": event.common, **detection}
    ((topic, final),) = outbox_messages(dataclasses.replace(event, closed=True), "final")
    assert topic == "detection"
    assert json.loads(final) == {**detection, "status": "final"}
    # Closed as it became a detection: both, in order.
    both = outbox_messages(dataclasses.replace(event, closed=True), "detected")
    assert [(t, json.loads(p)["status"]) for t, p in both if t == "detection"] == [
        ("detection", "open"),
        ("detection", "final"),
    ]


def test_the_announcer_announces_each_detection_once_from_min_windows() -> None:
    announcer = Announcer(2)
    e = make_event(1)
    grown = dataclasses.replace(e, windows=2)
    changes = [
        EventChange("opened", e),
        EventChange("updated", grown),
        EventChange("updated", dataclasses.replace(e, windows=3)),
        EventChange("closed", dataclasses.replace(e, windows=3, closed=True)),
    ]
    stamped = [announcer(c) for c in changes]
    assert [c.announce for c in stamped] == [None, "detected", "grew", "final"]
    assert [len(c.messages) for c in stamped] == [0, 2, 0, 1]
    assert announcer.announced == set()  # closed: forgotten
    # A reload hands the set on: an event in progress is not announced again.
    first = Announcer(1)
    first(EventChange("opened", make_event(2)))
    after = Announcer(1, first.announced)
    assert after(EventChange("updated", make_event(2, windows=2))).announce == "grew"


def test_the_final_state_follows_the_first_message_and_updates_the_sensors(
    broker: Broker, tmp_path: Path
) -> None:
    db = tmp_path / "d.db"
    first = dataclasses.replace(make_event(3), confidence=0.4591)
    grown = dataclasses.replace(
        first, confidence=0.7375, windows=3, end=first.end + dt.timedelta(seconds=6)
    )
    with (
        subscriber(broker, [TOPICS.detection]) as sub,
        pipeline(mqtt_cfg(broker), db) as p,
    ):
        wait_until(lambda: p.publisher.state == "connected")
        p.change(EventChange("opened", first))
        sub.wait_for(lambda ms: len(ms) >= 1)  # the low-latency message, at once
        p.change(EventChange("updated", grown))
        p.change(EventChange("closed", dataclasses.replace(grown, closed=True)))
        got = sub.wait_for(lambda ms: len(ms) >= 2)
        opened, final = (json.loads(m.payload) for m in got[:2])
        assert (opened["status"], opened["confidence"], opened["windows"]) == ("open", 0.4591, 1)
        assert (final["id"], final["status"]) == (first.id, "final")
        assert (final["confidence"], final["windows"]) == (0.7375, 3)
        assert dt.datetime.fromisoformat(final["end"]) == grown.end
        # The retained state, which the Last confidence sensor reads, ends at the final state.
        wait_until(
            lambda: (
                (json.loads(retained(broker, TOPICS.state) or b"{}").get("last") or {}).get(
                    "confidence"
                )
                == 0.7375
            ),
            what="state with the final confidence",
        )


def test_detections_in_the_same_millisecond_fire_two_distinct_events(
    broker: Broker, tmp_path: Path
) -> None:
    a = make_event(1)
    b = dataclasses.replace(
        make_event(2), start=a.start, end=a.end, scientific=a.scientific, common=a.common
    )
    with (
        subscriber(broker, [TOPICS.event]) as sub,
        pipeline(mqtt_cfg(broker), tmp_path / "d.db") as p,
    ):
        wait_until(lambda: p.publisher.state == "connected")
        p.change(EventChange("opened", a))
        p.change(EventChange("opened", b))
        got = sub.wait_for(lambda ms: len(ms) >= 2)
        payloads = [m.payload for m in got[:2]]
        assert payloads[0] != payloads[1]
        assert [json.loads(x)["id"] for x in payloads] == [a.id, b.id]
        assert json.loads(payloads[0])["start"] == json.loads(payloads[1])["start"]


# --- a disk that cannot be written ------------------------------------------------------------


def test_mqtt_publishes_from_memory_while_the_disk_is_full(broker: Broker, tiny_fs: Path) -> None:
    db = tiny_fs / "d.db"
    with (
        subscriber(broker, [TOPICS.detection, TOPICS.event]) as sub,
        pipeline(mqtt_cfg(broker), db) as p,
    ):
        wait_until(lambda: p.publisher.state == "connected")
        p.detect(range(2))
        sub.wait_for(lambda ms: len(ms) >= 4)
        filler = fill(tiny_fs)
        for i in range(2, 7):  # five detections while nothing can be written
            p.change(EventChange("opened", make_event(i)))
        # They reach the broker anyway, detection and Home Assistant event, in order.
        sub.wait_for(lambda ms: len([m for m in ms if m.topic == TOPICS.event]) >= 7)
        assert unique_ids(detections(sub)) == [event_id(i) for i in range(7)]
        assert p.sink.pending == 5  # and wait in memory for the disk
        wait_until(lambda: p.publisher.in_memory == 0, what="memory messages acknowledged")
        assert p.publisher.delivered_from_memory == {event_id(i) for i in range(2, 7)}
        filler.unlink()  # space again: the log catches up, without sending them twice
        assert p.sink.flush(30)
        p.detect(range(7, 8))
        sub.wait_for(lambda ms: any(json.loads(m.payload)["id"] == event_id(7) for m in ms))
        ids = [json.loads(m.payload)["id"] for m in sub.on(TOPICS.detection)]
        assert sorted(ids) == sorted({*ids})  # each once
        wait_until(lambda: outbox_rows(db) == 0, what="outbox empty")
    with contextlib.closing(sqlite3.connect(db)) as conn:
        stored = {r[0] for r in conn.execute("SELECT id FROM detections")}
    assert stored == {event_id(i) for i in range(8)}


def test_events_neither_disk_nor_broker_took_are_counted_at_the_stop(
    broker: Broker, tiny_fs: Path
) -> None:
    db = tiny_fs / "d.db"
    p = Pipeline(mqtt_cfg(broker), db)
    try:
        wait_until(lambda: p.publisher.state == "connected")
        p.detect(range(1))
        fill(tiny_fs)
        broker.stop()
        wait_until(lambda: p.publisher.state != "connected", what="publisher notices")
        for i in range(1, 4):
            p.change(EventChange("opened", make_event(i)))
        wait_until(lambda: p.publisher.in_memory == 6, what="messages held in memory")
    finally:
        p.close()
    assert p.sink.unwritten == {event_id(i) for i in range(1, 4)}
    assert p.publisher.delivered_from_memory == set()
