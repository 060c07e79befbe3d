"""The systemd notify protocol (``sd_notify``) with the standard library.

systemd passes ``$NOTIFY_SOCKET`` to a ``Type=notify`` service: a datagram socket given as a file
system path or, starting with ``@``, a name in Linux's abstract namespace. Each message is one
datagram of newline-separated ``KEY=VALUE`` lines (``READY=1``, ``STATUS=...``, ``WATCHDOG=1``).
Without ``$NOTIFY_SOCKET`` (not under systemd) every call is a no-op, and a failed send is never
an error: it is logged once at debug level and the daemon carries on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from types import TracebackType

_LOGGER = logging.getLogger(__name__)

#: How long one send may wait when systemd is slow to read its socket.
SEND_TIMEOUT = 1.0


class Notifier:
    """Sends state changes to systemd; safe to share between threads.

    Build it with :meth:`from_env` in the daemon; ``Notifier(None)`` is a notifier that does
    nothing. Every method returns whether the message was sent.
    """

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        """``address``: the socket (a path, or ``@name`` for the abstract namespace)."""
        self._address = _socket_address(address) if address else None
        self._watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failure_logged = False
        if address and self._address is None:
            _LOGGER.debug("NOTIFY_SOCKET=%s is not a path or @name: not notifying systemd", address)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """A notifier for ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC`` (``os.environ`` by default).

        ``$WATCHDOG_USEC`` counts only when ``$WATCHDOG_PID`` is unset or is this process, as
        ``sd_watchdog_enabled`` does.
        """
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET") or None, _watchdog_usec(env))

    @property
    def enabled(self) -> bool:
        """Whether there is a socket to notify (the process runs under systemd)."""
        return self._address is not None

    def watchdog_timeout(self) -> float | None:
        """The unit's ``WatchdogSec=`` in seconds, or None when the watchdog is off."""
        return None if self._watchdog_usec is None else self._watchdog_usec / 1e6

    def watchdog_interval(self) -> float | None:
        """Send :meth:`watchdog` at least this often (half the timeout, as systemd advises)."""
        timeout = self.watchdog_timeout()
        return None if timeout is None else timeout / 2

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: start-up is complete (model loaded, audio flowing), or a reload is."""
        return self.notify("READY=1", *_status(status))

    def status(self, text: str) -> bool:
        """``STATUS=text``: one line shown by ``systemctl status``."""
        return self.notify(*_status(text))

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the service is alive; systemd restarts it when these stop."""
        return self.notify("WATCHDOG=1")

    def reloading(self, status: str | None = None) -> bool:
        """``RELOADING=1`` with ``MONOTONIC_USEC`` (as ``Type=notify-reload`` requires).

        Send :meth:`ready` once the new configuration is in effect (or was rejected).
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", *_status(status))

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: shutdown has begun."""
        return self.notify("STOPPING=1", *_status(status))

    def extend_timeout(self, seconds: float) -> bool:
        """``EXTEND_TIMEOUT_USEC``: ask for ``seconds`` more to start (or stop) from now on."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={max(0, round(seconds * 1e6))}")

    def notify(self, *lines: str) -> bool:
        """Send ``KEY=VALUE`` lines as one datagram; False when not sent (never raises)."""
        if self._address is None or not lines:
            return False
        data = "\n".join(lines).encode("utf-8", "replace")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self._sock.settimeout(SEND_TIMEOUT)
                self._sock.sendto(data, self._address)
            except OSError as exc:
                self._drop_socket()
                if not self._failure_logged:
                    self._failure_logged = True
                    _LOGGER.debug("cannot notify systemd at %s: %s", self._address, exc)
                return False
        return True

    def close(self) -> None:
        """Close the socket; later messages open it again."""
        with self._lock:
            self._drop_socket()

    def _drop_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _socket_address(address: str) -> str | None:
    """The address for ``sendto``: a path as is, ``@name`` as ``\\0name``; None if unusable."""
    if address.startswith("@") and len(address) > 1:
        return "\0" + address[1:]
    if address.startswith("/"):
        return address
    return None  # e.g. systemd 254's vsock: addresses, which containers and VMs use


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    pid = env.get("WATCHDOG_PID")
    if pid is not None and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec if usec > 0 else None


def _status(text: str | None) -> tuple[str, ...]:
    """The ``STATUS=`` line for ``text`` (newlines would end it early; they become spaces)."""
    if text is None:
        return ()
    return ("STATUS=" + " ".join(text.splitlines()),)
