"""Benchmark MQTT latency: from the end of a window to the detection reaching a subscriber.

::

    python -m birdnet_edge.bench.mqtt_latency [--count 200] [--interval 0.05] [--json]

The clock starts when the pipeline hands a window's ``opened`` event change to the sinks (the
window has been scored) and stops when a subscriber on the same machine receives the message on
``<prefix>/detection``. In between is the daemon's whole path: the SQLite sink commits the event
and its outbox row (``synchronous=FULL``: synced to disk), wakes the publisher, which reads the
row and publishes it with QoS 1. Events are handed over one at a time, ``--interval`` apart.

Without ``--host`` a private Mosquitto (Debian package ``mosquitto``) is started on a free
loopback port; the database lives in ``--dir`` (default a temporary directory).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from birdnet_edge.bench.broker import private_broker
from birdnet_edge.config import Config, MQTTConfig, StationConfig
from birdnet_edge.detect.events import EventChange
from birdnet_edge.detect.sinks import Fanout
from birdnet_edge.errors import BirdnetEdgeError
from birdnet_edge.log.feed import LogFeed
from birdnet_edge.log.record import Detection, DetectionContext
from birdnet_edge.log.writer import LogWriter
from birdnet_edge.mqtt.messages import Announcer
from birdnet_edge.mqtt.publisher import MQTTPublisher

STATION = "bench"
CONTEXT = DetectionContext(STATION, 52.52, 13.40, "BirdNET_GLOBAL_6K_V2.4_Model_FP32", "FP32",
                           1.0, 0.0, 0.7)  # fmt: skip


class _Subscriber:
    def __init__(self, host: str, port: int, topic: str) -> None:
        from paho.mqtt.client import Client
        from paho.mqtt.enums import CallbackAPIVersion

        self.arrived: dict[str, float] = {}
        self.cond = threading.Condition()
        self.ready = threading.Event()
        self.client = Client(CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        if not self.ready.wait(10):
            raise BirdnetEdgeError("the benchmark subscriber could not subscribe")

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        now = time.monotonic()
        with self.cond:
            self.arrived.setdefault(json.loads(msg.payload)["id"], now)
            self.cond.notify_all()

    def wait(self, n: int, timeout: float) -> None:
        with self.cond:
            self.cond.wait_for(lambda: len(self.arrived) >= n, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def measure(host: str, port: int, workdir: Path, count: int, interval: float) -> dict[str, Any]:
    cfg = Config(
        station=StationConfig(STATION),
        mqtt=MQTTConfig(enabled=True, host=host, port=port, client_id=f"bench-{uuid.uuid4()}"),
    )
    db = workdir / "bench.db"
    feed = LogFeed()  # wired as the daemon wires them
    publisher = MQTTPublisher(cfg, db, feed=feed)
    sink = LogWriter(db, feed=feed)
    sinks = Fanout([sink, publisher], Announcer(cfg.mqtt.min_windows))
    sub = _Subscriber(host, port, publisher.topics.detection)
    publisher.start()
    deadline = time.monotonic() + 10
    while publisher.state != "connected" and time.monotonic() < deadline:
        time.sleep(0.05)
    handed: dict[str, float] = {}
    try:
        for i in range(count):
            start = dt.datetime.now(dt.timezone.utc)
            event = Detection(
                str(uuid.uuid4()), start - dt.timedelta(seconds=3), start, dt.timedelta(),
                f"Genus species{i % 50}", f"Bird {i % 50}", 0.8, 1, False, CONTEXT,
            )  # fmt: skip
            handed[event.id] = time.monotonic()  # the window is scored: its change goes out
            sinks.handle(EventChange("opened", event))
            time.sleep(interval)
        sub.wait(count, 30)
    finally:
        sub.close()
        sinks.close()
    lat = sorted(1000 * (sub.arrived[k] - t) for k, t in handed.items() if k in sub.arrived)
    if not lat:
        raise BirdnetEdgeError("no detection reached the subscriber")
    return {
        "messages": count,
        "received": len(lat),
        "latency_median_ms": round(statistics.median(lat), 2),
        "latency_p95_ms": round(lat[int(0.95 * (len(lat) - 1))], 2),
        "latency_max_ms": round(lat[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="detections to send")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between them")
    parser.add_argument("--host", help="use this broker instead of a private Mosquitto")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--dir", type=Path, help="database directory (default: temporary)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.dir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        if args.host:
            result = measure(args.host, args.port, workdir, args.count, args.interval)
        else:
            with private_broker() as port:
                host = "127.0.0.1"
                result = measure(host, port, workdir, args.count, args.interval)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"window end -> subscriber on loopback, {result['received']}/{result['messages']} "
        f"detections: median {result['latency_median_ms']:g} ms, p95 "
        f"{result['latency_p95_ms']:g} ms, max {result['latency_max_ms']:g} ms"
    )


if __name__ == "__main__":
    main()
