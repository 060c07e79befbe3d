"""MQTT publishing with Home Assistant discovery; no detection is lost while the broker is away.

Detections travel through the SQLite outbox (see :mod:`birdnet_edge.log.outbox`): the
:class:`Announcer` stamps each event change with the messages that announce it, the log writes
them with the change in one transaction and tells its feed, which the publisher follows
(:meth:`MQTTPublisher.written`). The publisher thread sends pending rows in order with QoS 1 on
``<prefix>/detection`` (and Home Assistant's event on ``<prefix>/event``) and deletes a row only
when the broker's PUBACK for it arrives, so after a broker outage or a daemon restart everything
pending goes out, oldest first. Each message carries the event's UUID: a consumer drops the rare
duplicate of at-least-once delivery.

As a sink (:meth:`MQTTPublisher.handle`) it keeps the retained ``<prefix>/state`` (last detection
and today's counts).

One thread owns the paho client and runs its network loop (``loop_read``/``loop_write``/
``loop_misc`` around one ``select`` that also watches a wake-up socket): paho callbacks run in
that thread and only record what happened; the loop then acts on it. A refused connection (bad
credentials, not authorised) is an error with the broker's reason, retried slowly; an
unreachable broker is retried with exponential backoff.
"""

from __future__ import annotations

import collections
import datetime as dt
import enum
import logging
import queue
import select
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from birdnet_edge import __version__
from birdnet_edge.config import Config
from birdnet_edge.credentials import Secret
from birdnet_edge.detect.events import EventChange
from birdnet_edge.errors import BirdnetEdgeError
from birdnet_edge.log import record
from birdnet_edge.log.feed import HeldMessage, LogFeed
from birdnet_edge.log.outbox import Outbox
from birdnet_edge.log.record import Detection
from birdnet_edge.mqtt.discovery import (
    OFFLINE,
    ONLINE,
    Device,
    Topics,
    discovery_messages,
    slug,
    status_topic,
    topic_prefix,
)
from birdnet_edge.mqtt.messages import DayCounts, dumps, state_message
from birdnet_edge.mqtt.settings import check_settings, refusal_fix, tls_context

if TYPE_CHECKING:  # paho is imported when a publisher is made, not with this module
    from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessage
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

_LOGGER = logging.getLogger(__name__)

WINDOW = 20  # outbox messages in flight (sent, not yet acknowledged) at once
POLL_SECONDS = 5.0  # look at the outbox this often even without wake()
TICK_SECONDS = 1.0  # longest select(): keepalive pings, retries and midnight need no more


class Session(enum.Enum):
    """The publisher thread's session with the broker; :meth:`MQTTPublisher._after_callbacks`
    moves it along what paho's callbacks saw."""

    DOWN = "down"  # no connection: not tried yet, or lost (a retry is scheduled)
    CONNECTING = "connecting"  # CONNECT sent, no CONNACK yet
    UP = "up"  # CONNACK accepted: publishing
    REFUSED = "refused"  # CONNACK refused: the socket is closing


class MQTTPublisher:
    """Publishes detections from the outbox, the retained state, and Home Assistant discovery.

    It follows the log's feed (``written``/``unstored``: see :mod:`birdnet_edge.log.feed`);
    ``handle``/``close`` make it a :class:`~birdnet_edge.detect.sinks.Sink`. ``retry_*``
    (seconds) are the reconnect backoff for an unreachable broker and the delay after a refusal.
    """

    def __init__(
        self,
        cfg: Config,
        db_path: Path,
        *,
        retry_min: float = 1.0,
        retry_max: float = 30.0,
        retry_refused: float = 60.0,
        feed: LogFeed | None = None,
    ) -> None:
        """A publisher for ``cfg.mqtt``, reading the outbox of the log at ``db_path`` and
        following its ``feed`` while it runs (from :meth:`start` to :meth:`close`)."""
        m = cfg.mqtt
        self.cfg = cfg
        password = check_settings(cfg)
        self.topics = Topics.for_station(cfg.station.name, m.topic_prefix)
        self.discovery_prefix = topic_prefix(m.discovery.prefix, "mqtt.discovery.prefix")
        self.client_id = m.client_id or f"birdnet-edge-{slug(cfg.station.name)}"
        self.where = f"{m.host}:{m.port}"
        self.min_windows = m.min_windows
        self.retry_min, self.retry_max, self.retry_refused = retry_min, retry_max, retry_refused
        self.device = Device(cfg.station.name, "BirdNET V2.4", __version__)
        self._client = self._make_client(password)
        self.db_path = db_path
        self.feed = feed
        self._outbox = Outbox(db_path)
        self._changes: queue.SimpleQueue[EventChange] = queue.SimpleQueue()
        # Messages the SQLite sink could not write (full or failing disk), published from memory.
        self._memory_in: queue.SimpleQueue[list[HeldMessage]] = queue.SimpleQueue()
        self._memory: collections.deque[HeldMessage] = collections.deque()
        self._memory_inflight: dict[int, HeldMessage] = {}  # paho mid -> message
        #: Events whose detection message reached the broker from memory (never on disk).
        self.delivered_from_memory: set[str] = set()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._outbox_signal = threading.Event()
        self._stop = threading.Event()
        # _handed_over: set by hand_over(), another publisher takes the outbox from then on.
        self._handed_over, self._close_timeout = False, 5.0
        self._thread: threading.Thread | None = None
        self._state = "not started"
        self._pending = 0
        # Everything below belongs to the publisher thread (paho callbacks run there too).
        self._connected_once = False
        self._session = Session.DOWN
        self._refusal = ""  # why the broker refused the last CONNECT
        #: What paho's callbacks saw, in order, for the loop to act on: ("accepted", ""),
        #: ("refused", reason) or ("closed", why).
        self._events: list[tuple[str, str]] = []
        self._failure: str | None = None  # the last failure logged, to log each kind once
        self._backoff = retry_min
        self._next_attempt = 0.0
        self._next_poll = 0.0
        self._next_count = 0.0
        self._hold_until = 0.0
        self._cursor = 0  # highest outbox seq handed to paho in this process
        self._inflight: dict[int, int] = {}  # paho mid -> outbox seq
        self._acks: list[tuple[int, bool, str]] = []  # (mid, failed, reason) from on_publish
        self._acked: list[int] = []  # seqs acknowledged, to delete from the outbox
        self._ha_online = False
        self._state_dirty = True
        self._image: bytes | None = None  # the latest spectrogram, not yet published
        self._last: dict[str, Any] | None = None
        self._day = DayCounts(dt.datetime.now().astimezone().date())
        self._offline_mid: int | None = None  # the retained offline's, on a clean stop
        self._offline_acked = self._db_failing = False

    # ----------------------------------------------------------------- the interface

    def written(self, opened: Sequence[Detection], outboxed: int) -> None:
        """The log committed ``outboxed`` new outbox rows (it follows the log's feed)."""
        if outboxed:
            self._outbox_signal.set()
            self._poke()

    def image(self, png: bytes) -> None:
        """The last detection's spectrogram, for Home Assistant's image entity (any thread;
        only the latest is kept until it is sent)."""
        self._image = png
        self._poke()

    def unstored(self, messages: Sequence[HeldMessage]) -> None:
        """Publish these (event id, topic, payload) the log could not write to the outbox: kept
        in memory until the broker acknowledges them."""
        self._memory_in.put(list(messages))
        self._outbox_signal.set()
        self._poke()

    def start(self) -> None:
        """Start the publisher thread; it connects and keeps reconnecting on its own."""
        if self._thread is not None:
            return
        self._state = "connecting"
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)
        self._thread.start()
        if self.feed is not None:
            self.feed.follow(self)

    def handle(self, change: EventChange) -> None:
        """Queue a change for the state topic and the Home Assistant event; never blocks."""
        self._changes.put(change)
        self._poke()

    def hand_over(self, timeout: float = 5.0) -> threading.Thread:
        """Another publisher (a reload's) takes over: from this moment this one takes no new
        outbox row or message, so what follows goes out under the new settings only; what it
        has in flight it finishes, then it closes, on a thread of its own (returned)."""
        self._handed_over = True
        if self.feed is not None:
            self.feed.unfollow(self)
        closing = threading.Thread(target=self.close, args=(timeout,), name="mqtt-close")
        closing.daemon = True
        closing.start()
        return closing

    def close(self, timeout: float = 5.0) -> None:
        """Send what is pending (briefly), publish retained ``offline``, and disconnect."""
        self._close_timeout = timeout
        self._stop.set()
        self._poke()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                _LOGGER.warning("MQTT publisher did not stop within %.1f s", timeout)
                return
        if self.feed is not None:
            self.feed.unfollow(self)
        self._wake_r.close()
        self._wake_w.close()
        self._state = "stopped"

    @property
    def state(self) -> str:
        """``connected``, ``connecting``, ``unreachable: ...``, ``refused: ...``, ..."""
        return self._state

    @property
    def pending(self) -> int:
        """Detections in the outbox not yet acknowledged by the broker (as last counted)."""
        return self._pending

    @property
    def in_memory(self) -> int:
        """Messages held in memory (the outbox could not be written) not yet acknowledged."""
        return len(self._memory) + len(self._memory_inflight)

    # ----------------------------------------------------------------- set-up

    def _make_client(self, password: Secret | None) -> Client:
        from paho.mqtt.client import Client
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        m = self.cfg.mqtt
        v5 = m.protocol == "5"
        client = Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if v5 else True,
            reconnect_on_failure=False,  # this thread decides when to reconnect
        )
        client.will_set(self.topics.availability, OFFLINE, qos=1, retain=True)
        if m.username:
            client.username_pw_set(m.username, password.value if password else None)
        if m.tls.enabled:
            client.tls_set_context(tls_context(m.tls))
            client.tls_insecure_set(m.tls.insecure)
        client.max_inflight_messages_set(WINDOW)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _poke(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except BlockingIOError:
            return  # the socket is full of wake-ups already: the thread will look anyway
        except OSError:
            return  # closed: the publisher has stopped

    # ----------------------------------------------------------------- paho callbacks
    # They run in the publisher thread, inside loop_read/loop_write, and only record state.

    def _on_connect(
        self,
        _client: Client,
        _userdata: object,
        _flags: ConnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        self._events.append(("refused", str(reason)) if reason.is_failure else ("accepted", ""))

    def _on_disconnect(
        self,
        _client: Client,
        _userdata: object,
        flags: DisconnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        from_broker = flags.is_disconnect_packet_from_server
        why = f"the broker disconnected us: {reason}" if from_broker else "connection lost"
        self._events.append(("closed", why))

    def _on_publish(
        self,
        _client: Client,
        _userdata: object,
        mid: int,
        reason: ReasonCode,
        _props: Properties,
    ) -> None:
        if mid == self._offline_mid:
            self._offline_acked = True
        self._acks.append((mid, bool(reason.is_failure), str(reason)))

    def _on_message(self, _client: Client, _userdata: object, msg: MQTTMessage) -> None:
        # Home Assistant's birth message; a retained one is old news (discovery went at connect).
        ha_status = status_topic(self.discovery_prefix)
        if msg.topic == ha_status and msg.payload == b"online" and not msg.retain:
            self._ha_online = True

    # ----------------------------------------------------------------- the thread

    def _run(self) -> None:
        try:
            self._restore_today()
            self._loop()
        except Exception as exc:
            _LOGGER.exception("MQTT publisher stopped by an unexpected error")
            self._state = f"failed: {exc}"
        finally:
            self._outbox.close()

    def _loop(self) -> None:
        shutdown: _Shutdown | None = None
        while True:
            if self._stop.is_set() and shutdown is None:
                shutdown = _Shutdown(time.monotonic(), self._close_timeout)
            if self._client.socket() is None:
                if shutdown is not None:
                    return
                if time.monotonic() >= self._next_attempt:
                    self._connect()
            self._poll(TICK_SECONDS)
            self._after_callbacks()
            self._take_acks()
            self._housekeeping()
            self._take_memory()
            self._apply_changes()
            if self._session is Session.UP:
                self._work()
            if shutdown is not None and self._shutdown_step(shutdown):
                return

    def _connect(self) -> None:
        self._session = Session.CONNECTING
        self._state = "connecting"
        m = self.cfg.mqtt
        try:
            if self._connected_once:
                self._client.reconnect()
            else:
                self._client.connect(m.host, m.port, keepalive=m.keepalive)
                self._connected_once = True
        except ssl.SSLError as exc:
            detail = getattr(exc, "verify_message", None) or exc.reason or str(exc)
            self._failed(
                f"TLS error: {detail}",
                f"check mqtt.tls.ca_file and that the broker's certificate names {m.host}",
                slow=True,
            )
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._failed(f"unreachable: {reason}", "is the broker running?", slow=False)
        # Otherwise CONNECT is on its way; the CONNACK arrives through loop_read.

    def _failed(self, state: str, fix: str, *, slow: bool) -> None:
        self._session = Session.DOWN
        if slow:
            delay = self.retry_refused
        else:
            delay = self._backoff
            self._backoff = min(self._backoff * 2, self.retry_max)
        self._next_attempt = time.monotonic() + delay
        self._state = state
        if state != self._failure:
            self._failure = state
            log = _LOGGER.error if slow else _LOGGER.warning
            log(
                "MQTT broker %s: %s%s; retrying in %g s (detections wait in the outbox)",
                self.where,
                state,
                f": {fix}" if fix else "",
                delay,
            )
        else:
            _LOGGER.debug("MQTT broker %s: %s; retrying in %g s", self.where, state, delay)

    def _poll(self, timeout: float) -> None:
        """Wait for network traffic or a wake-up, then let paho read and write."""
        client = self._client
        sock = client.socket()
        rlist: list[Any] = [self._wake_r]
        wlist: list[Any] = []
        pending_tls = 0
        if sock is not None:
            rlist.append(sock)
            if client.want_write():
                wlist.append(sock)
            if isinstance(sock, ssl.SSLSocket):
                pending_tls = sock.pending()
        readable, writable, _ = select.select(rlist, wlist, [], 0.0 if pending_tls else timeout)
        if self._wake_r in readable:
            self._drain_wake()
        if sock is None:
            return
        if sock in readable or pending_tls:
            client.loop_read()
        if client.socket() is not None and sock in writable:
            client.loop_write()
        if client.socket() is not None:
            client.loop_misc()

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            return

    def _after_callbacks(self) -> None:
        """Move the session along what the callbacks saw, in order."""
        events, self._events = self._events, []
        announce = False
        for kind, detail in events:
            if kind == "accepted":
                self._session, announce = Session.UP, True
            elif kind == "refused":
                # The broker closes after a refused CONNACK; make sure the socket goes too.
                self._session, self._refusal = Session.REFUSED, detail
                if self._client.socket() is not None:
                    self._client.disconnect()
            elif self._session is not Session.DOWN:  # "closed", once per session
                was, self._session, announce = self._session, Session.DOWN, False
                if was is Session.REFUSED:
                    refusal = self._refusal
                    self._failed(f"refused: {refusal}", refusal_fix(refusal), slow=True)
                elif not self._stop.is_set():
                    self._failed(f"disconnected: {detail}", "", slow=False)
        if announce:  # connected, and not lost again in the same breath
            self._on_session()

    def _on_session(self) -> None:
        """Just connected: announce ourselves; paho re-sends what was in flight."""
        self._backoff = self.retry_min
        self._failure = None
        self._state = "connected"
        client = self._client
        client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
        disc = self.cfg.mqtt.discovery
        if disc.enabled:
            client.subscribe(status_topic(self.discovery_prefix), qos=1)
            self._publish_discovery()
        self._state_dirty = True
        self._outbox_signal.set()
        self._count_pending()
        _LOGGER.info(
            "MQTT connected to %s as %s (%d detections pending)",
            self.where,
            self.client_id,
            self._pending,
        )

    def _publish_discovery(self) -> None:
        image = self.cfg.clips.enabled
        for msg in discovery_messages(self.topics, self.device, self.discovery_prefix, image=image):
            self._client.publish(msg.topic, dumps(msg.payload), qos=1, retain=True)

    def _work(self) -> None:
        """Connected: discovery, state, then the outbox."""
        if self._ha_online:
            self._ha_online = False
            if self.cfg.mqtt.discovery.enabled:
                _LOGGER.info("Home Assistant is online: sending discovery again")
                self._publish_discovery()
                self._client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
                self._state_dirty = True
        if self._state_dirty:
            self._state_dirty = False
            state = state_message(self._last, self._day)
            self._client.publish(self.topics.state, dumps(state), qos=1, retain=True)
        image, self._image = self._image, None
        if image is not None:  # retained: a dashboard opened later still shows it
            self._client.publish(self.topics.image, image, qos=1, retain=True)
        self._send_outbox()

    def _take_acks(self) -> None:
        rejected: list[tuple[int, str]] = []
        for mid, failed, reason in self._acks:
            held = self._memory_inflight.pop(mid, None)
            if held is not None:
                if failed:
                    self._memory.appendleft(held)  # refused: tried again after the hold
                    self._hold_until = time.monotonic() + self.retry_refused
                elif held[1] == "detection":
                    self.delivered_from_memory.add(held[0])
                continue
            seq = self._inflight.pop(mid, None)
            if seq is None:
                continue  # not an outbox message (state, discovery, availability)
            if failed:
                rejected.append((seq, reason))
            else:
                self._acked.append(seq)
        self._acks.clear()
        if self._acked:
            try:
                self._outbox.ack(self._acked)
            except sqlite3.Error as exc:  # e.g. locked for longer than busy_timeout
                self._db_trouble(exc)
            else:
                self._db_failing = False
                self._pending = max(0, self._pending - len(self._acked))
                self._acked.clear()
                self._outbox_signal.set()  # room in the window: look for more
        if rejected:
            seq, reason = min(rejected)
            self._cursor = min(self._cursor, seq - 1)
            self._hold_until = time.monotonic() + self.retry_refused
            self._state = f"publish refused: {reason}"
            _LOGGER.error(
                "MQTT broker %s refused detection messages on %s: %s: allow this client to "
                "publish there; retrying in %.0f s",
                self.where,
                self.topics.detection,
                reason,
                self.retry_refused,
            )

    def _send_outbox(self) -> None:
        """Publish pending outbox rows, oldest first, then what is held in memory."""
        now = time.monotonic()
        room = WINDOW - len(self._inflight) - len(self._memory_inflight)
        if room <= 0 or now < self._hold_until or self._handed_over:
            return
        if not self._outbox_signal.is_set() and now < self._next_poll:
            return
        self._outbox_signal.clear()  # before reading, so a wake() during the query counts
        self._next_poll = now + POLL_SECONDS
        if self._state.startswith("publish refused"):
            self._state = "connected"
        try:
            rows = self._outbox.pending(self._cursor, room)
        except sqlite3.Error as exc:
            self._db_trouble(exc)  # what is in memory still goes out
            rows = []
        else:
            self._db_failing = False
        for row in rows:
            info = self._client.publish(self._topic(row.topic), row.payload, qos=1)
            self._inflight[info.mid] = row.seq
            self._cursor = row.seq
        room -= len(rows)
        while room > 0 and self._memory:
            held = self._memory.popleft()
            info = self._client.publish(self._topic(held[1]), held[2], qos=1)
            self._memory_inflight[info.mid] = held
            room -= 1
        if room <= 0:
            self._outbox_signal.set()  # there may be more once these are acknowledged

    def _topic(self, name: str) -> str:
        return {"event": self.topics.event, "sound": self.topics.sound}.get(
            name, self.topics.detection
        )

    def _take_memory(self) -> None:
        while True:
            try:
                self._memory.extend(self._memory_in.get_nowait())
            except queue.Empty:
                return

    # ----------------------------------------------------------------- state and HA events

    def _restore_today(self) -> None:
        """Today's counts and the last detection from the database, after a restart."""
        from birdnet_edge.log import queries as store

        midnight = dt.datetime.combine(self._day.date, dt.time(), tzinfo=None).astimezone()
        try:
            conn = store.connect(self.db_path)
        except BirdnetEdgeError as exc:  # no database yet: nothing was detected
            _LOGGER.debug("no counts to restore: %s", exc)
            return
        try:
            for d in store.detections(conn, store.Filters(since=midnight)):
                if d.windows >= self.min_windows:
                    self._day.species[d.common] += 1
                    self._last = record.message(d)
        except sqlite3.Error as exc:
            _LOGGER.warning("cannot read today's detections from %s: %s", self.db_path, exc)
        finally:
            conn.close()

    def _housekeeping(self) -> None:
        """Count what is pending now and then; start a new day at local midnight."""
        now = time.monotonic()
        if now >= self._next_count:
            self._next_count = now + POLL_SECONDS
            self._count_pending()
        today = dt.datetime.now().astimezone().date()
        if today > self._day.date:
            self._day = DayCounts(today)
            self._state_dirty = True

    def _count_pending(self) -> None:
        try:
            self._pending = self._outbox.count()
        except sqlite3.Error as exc:
            self._db_trouble(exc)

    def _db_trouble(self, exc: sqlite3.Error) -> None:
        """The outbox cannot be read or written right now: say so once, try again later."""
        if not self._db_failing:
            self._db_failing = True
            _LOGGER.warning("MQTT outbox in %s not usable yet: %s; retrying", self.db_path, exc)
        else:
            _LOGGER.debug("MQTT outbox still not usable: %s", exc)

    def _apply_changes(self) -> None:
        while True:
            try:
                change = self._changes.get_nowait()
            except queue.Empty:
                return
            self._apply(change)

    def _apply(self, change: EventChange) -> None:
        if change.announce is None or change.detection.kind == "sound":
            return  # the state and today's counts are the animals
        d = change.detection
        message = record.message(d)
        if change.announce == "detected":
            # The event just became a detection: count it (Home Assistant's event entity fires
            # from the outbox, durably).
            date = d.start.astimezone().date()
            if date > self._day.date:
                self._day = DayCounts(date)
            if date == self._day.date:
                self._day.species[d.common] += 1
            self._last = message
            self._state_dirty = True
        elif self._last is not None and self._last["id"] == d.id and message != self._last:
            self._last = message  # the same bird sang on: a later end, maybe a higher confidence
            self._state_dirty = True

    # ----------------------------------------------------------------- shutdown

    def _shutdown_step(self, sd: _Shutdown) -> bool:
        """One step of a clean stop; True when the thread may end."""
        client = self._client
        if self._session is not Session.UP:
            if client.socket() is not None:
                client.disconnect()
            return True
        now = time.monotonic()
        if self._offline_mid is None:
            self._take_memory()
            held = self._memory or self._memory_inflight
            try:
                drained = (
                    not self._inflight
                    and not held
                    and (self._handed_over or not self._outbox.pending(self._cursor, 1))
                )
            except sqlite3.Error:
                drained = not self._inflight and not held  # the outbox waits for next time
            if drained or now >= sd.drain_until:
                info = client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)
                self._offline_mid = info.mid
            return False
        if self._offline_acked or now >= sd.give_up:
            client.disconnect()
            self._session = Session.DOWN
            self._state = "stopped"
            return True
        return False


class _Shutdown:
    """Deadlines of a clean stop: send pending detections, then ``offline``, then go."""

    def __init__(self, start: float, timeout: float) -> None:
        self.drain_until = start + 0.5 * timeout
        self.give_up = start + 0.8 * timeout
