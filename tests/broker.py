"""A real Mosquitto broker for tests, on a free loopback port with its own config file.

``Broker`` writes ``mosquitto.conf`` into its directory (optionally with a password file made by
``mosquitto_passwd`` and a TLS listener with a CA and server certificate made by ``openssl``),
starts ``mosquitto -c``, and can be stopped and started again on the same port; persistence is on,
so retained messages and persistent sessions survive a restart like they do in production.

Import the fixtures into a test module: ``from tests.broker import broker, mosquitto_bin``.
``Subscriber`` is a paho client that collects messages from a topic filter.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _tool(name: str, *extra: str) -> str:
    for candidate in (shutil.which(name), *extra):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.skip(f"{name} not installed (Debian package mosquitto / openssl)")


@dataclass(frozen=True)
class TLSFiles:
    """A throw-away CA and a server certificate for 127.0.0.1 and localhost."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def make(cls, directory: Path) -> TLSFiles:
        openssl = _tool("openssl")
        directory.mkdir(parents=True, exist_ok=True)
        ca_key, ca, key, csr, cert = (
            directory / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt")
        )
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

        def run(*args: str) -> None:
            subprocess.run([openssl, *args], check=True, capture_output=True)

        run("req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
            "-subj", "/CN=birdnet-edge test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
        run("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
        ext = directory / "server.ext"
        ext.write_text(
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n"
            "authorityKeyIdentifier=keyid\n"
        )
        run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
        return cls(ca, cert, key)


class Broker:
    """One mosquitto process; ``stop()`` and ``start()`` keep the port and the stored state."""

    def __init__(
        self,
        directory: Path,
        *,
        users: dict[str, str] | None = None,
        tls: TLSFiles | None = None,
    ) -> None:
        self.binary = _tool("mosquitto", "/usr/sbin/mosquitto")
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = free_port()
        self.tls = tls
        self.log = self.dir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        lines = [
            f"listener {self.port} {HOST}",
            f"allow_anonymous {'false' if users else 'true'}",
            "persistence true",
            f"persistence_location {self.dir}/",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
        ]
        if os.geteuid() == 0:  # mosquitto would switch to its own user and lose our files
            lines.append("user root")
        if users:
            passwd = self.dir / "passwd"
            passwd.touch(mode=0o600)
            tool = _tool("mosquitto_passwd")
            for user, password in users.items():
                subprocess.run(
                    [tool, "-b", str(passwd), user, password], check=True, capture_output=True
                )
            lines.append(f"password_file {passwd}")
        if tls:
            lines += [f"cafile {tls.ca}", f"certfile {tls.cert}", f"keyfile {tls.key}"]
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> None:
        assert self.proc is None, "already running"
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                self.proc = None
                raise RuntimeError(f"mosquitto exited: {err} {self.log_text()}")
            if "Opening ipv4 listen socket" in self.log_text() and self._accepts():
                return
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start listening on {self.port}")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its persistence file and exits."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def client_tls_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.tls.ca)) if self.tls else None


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """``broker_factory(users=..., tls=True)`` -> a started Broker, stopped after the test."""
    started: list[Broker] = []

    def make(*, users: dict[str, str] | None = None, tls: bool = False) -> Broker:
        n = len(started)
        files = TLSFiles.make(tmp_path / f"tls{n}") if tls else None
        b = Broker(tmp_path / f"broker{n}", users=users, tls=files)
        b.start()
        started.append(b)
        return b

    yield make
    for b in started:
        b.stop()


@pytest.fixture
def broker(broker_factory: Callable[..., Broker]) -> Broker:
    """A plain anonymous broker on a free loopback port."""
    return broker_factory()


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float  # time.monotonic() on arrival

    def text(self) -> str:
        return self.payload.decode()


class Subscriber:
    """A paho client in its own thread that records every message of ``topics``.

    With ``client_id`` it keeps a persistent session (clean_session false, QoS 1), so the broker
    queues messages for it while it is disconnected, including across a broker restart.
    """

    def __init__(
        self,
        broker: Broker,
        topics: list[str],
        *,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        from paho.mqtt.client import Client
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._topics = topics
        self._subscribed = threading.Event()
        self.client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or "",
            clean_session=client_id is None,
        )
        if username:
            self.client.username_pw_set(username, password)
        ctx = broker.client_tls_context()
        if ctx is not None:
            self.client.tls_set_context(ctx)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("test subscriber did not subscribe")

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            client.subscribe([(t, 1) for t in self._topics])

    def _on_subscribe(self, *_args: Any) -> None:
        self._subscribed.set()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self._cond:
            self.messages.append(Received(msg.topic, msg.payload, msg.retain, time.monotonic()))
            self._cond.notify_all()

    def on(self, topic: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 20.0
    ) -> list[Received]:
        """Wait until ``predicate(messages)`` holds; returns the messages (fails on timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    topics = [m.topic for m in self.messages]
                    raise AssertionError(f"timed out after {timeout} s; received {topics}")
                self._cond.wait(left)
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextlib.contextmanager
def subscriber(broker: Broker, topics: list[str], **kwargs: Any) -> Iterator[Subscriber]:
    sub = Subscriber(broker, topics, **kwargs)
    try:
        yield sub
    finally:
        sub.close()


def retained(broker: Broker, topic: str, timeout: float = 3.0, **kwargs: Any) -> bytes | None:
    """The retained message of ``topic`` now, read by a fresh client (None if there is none)."""
    with subscriber(broker, [topic], **kwargs) as sub:
        try:
            got = sub.wait_for(lambda ms: any(m.topic == topic for m in ms), timeout)
        except AssertionError:
            return None
        return next(m.payload for m in got if m.topic == topic)


def env_without_mqtt_secrets() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("BIRDNET_EDGE_MQTT_PASSWORD", None)
    env.pop("CREDENTIALS_DIRECTORY", None)
    return env
