"""The sd_notify protocol against a real datagram socket standing in for systemd."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from birdnet_edge.daemon.sd_notify import Notifier


class NotifyListener:
    """A bound ``AF_UNIX`` datagram socket that receives what a service sends to systemd.

    ``address`` is what systemd would put in ``$NOTIFY_SOCKET``.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)

    def receive(self, timeout: float = 5.0) -> str:
        """The next datagram as text; fails the test when none comes within ``timeout``."""
        self.sock.settimeout(timeout)
        return self.sock.recv(4096).decode("utf-8")

    def pending(self) -> list[str]:
        """Every datagram already queued, without waiting."""
        self.sock.setblocking(False)
        found = []
        try:
            while True:
                found.append(self.sock.recv(4096).decode("utf-8"))
        except BlockingIOError:
            return found

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    lst = NotifyListener(str(tmp_path / "notify"))
    yield lst
    lst.close()


def test_messages_arrive_as_systemd_expects(listener: NotifyListener) -> None:
    with Notifier.from_env({"NOTIFY_SOCKET": listener.address}) as n:
        assert n.enabled
        assert n.ready("listening on USB Audio")
        assert listener.receive() == "READY=1\nSTATUS=listening on USB Audio"
        assert n.status("12 detections today")
        assert listener.receive() == "STATUS=12 detections today"
        assert n.watchdog()
        assert listener.receive() == "WATCHDOG=1"
        assert n.extend_timeout(30)
        assert listener.receive() == "EXTEND_TIMEOUT_USEC=30000000"
        assert n.stopping()
        assert listener.receive() == "STOPPING=1"
    assert listener.pending() == []


def test_reloading_carries_the_monotonic_clock(listener: NotifyListener) -> None:
    n = Notifier(listener.address)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert n.reloading("reloading config")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = listener.receive().split("\n")
    assert lines[0] == "RELOADING=1"
    key, value = lines[1].split("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after
    assert lines[2] == "STATUS=reloading config"
    n.close()


def test_status_stays_one_line(listener: NotifyListener) -> None:
    n = Notifier(listener.address)
    assert n.status("broker disconnected\nREADY=1\r\nretrying")
    assert listener.receive() == "STATUS=broker disconnected READY=1 retrying"
    n.close()


def test_abstract_namespace_address() -> None:
    lst = NotifyListener(f"@birdnet-edge-test-{uuid.uuid4().hex}")
    try:
        n = Notifier.from_env({"NOTIFY_SOCKET": lst.address})
        assert n.ready()
        assert lst.receive() == "READY=1"
        n.close()
    finally:
        lst.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    n = Notifier.from_env({})
    assert not n.enabled
    assert not n.ready()
    assert not n.watchdog()
    assert n.watchdog_interval() is None
    n.close()


@pytest.mark.parametrize("address", ["relative/socket", "vsock:2:1234", "@"])
def test_unusable_address_disables_notifying(address: str) -> None:
    n = Notifier.from_env({"NOTIFY_SOCKET": address})
    assert not n.enabled
    assert not n.ready()


def test_send_failure_is_logged_once_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "late"
    n = Notifier(str(path))
    with caplog.at_level(logging.DEBUG, logger="birdnet_edge.daemon.sd_notify"):
        assert not n.ready()  # nobody listens yet: no exception, just False
        assert not n.watchdog()
    failures = [r for r in caplog.records if "cannot notify systemd" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].levelno == logging.DEBUG
    lst = NotifyListener(str(path))  # systemd (re)appears: the next message gets through
    try:
        assert n.watchdog()
        assert lst.receive() == "WATCHDOG=1"
    finally:
        lst.close()
        n.close()


def test_watchdog_interval_from_environment() -> None:
    n = Notifier.from_env({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())})
    assert n.watchdog_timeout() == 60.0
    assert n.watchdog_interval() == 30.0
    assert Notifier.from_env({"WATCHDOG_USEC": "3000000"}).watchdog_interval() == 1.5


@pytest.mark.parametrize(
    "env",
    [
        {"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"},  # meant for another process
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "soon"},
        {"WATCHDOG_PID": "1"},
    ],
)
def test_watchdog_off(env: dict[str, str]) -> None:
    assert Notifier.from_env(env).watchdog_interval() is None


def test_threads_share_one_notifier(listener: NotifyListener) -> None:
    n = Notifier(listener.address)
    threads = [threading.Thread(target=lambda: [n.watchdog() for _ in range(20)]) for _ in range(4)]
    for t in threads:
        t.start()
    # Read while they send: a datagram socket queues only a few messages (max_dgram_qlen).
    received = [listener.receive() for _ in range(80)]
    for t in threads:
        t.join()
    assert set(received) == {"WATCHDOG=1"}
    n.close()
