"""The daemon: wires source, model, events and sinks; owns threads, signals and shutdown order.

Threads: the PortAudio callback (or the replay reader) fills the ring; the ``inference`` thread
runs :class:`Listener`; sinks run their own writer threads. The main thread only waits for
signals: SIGTERM/SIGINT stop (the window in flight is finished), SIGHUP reloads the config.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import numpy as np

from birdnet_edge.audio.format import SAMPLE_RATE, WINDOW_SAMPLES, WINDOW_SECONDS
from birdnet_edge.audio.microphone import MicrophoneSource, aligned_block
from birdnet_edge.audio.replay import FileSource
from birdnet_edge.audio.ring import RingBuffer
from birdnet_edge.audio.source import Source
from birdnet_edge.audio.windows import make_batch
from birdnet_edge.clips import clips_dir
from birdnet_edge.clips.budget import Budget, ClipBudget, on_disk
from birdnet_edge.clips.cutter import ClipCutter, ClipSettings
from birdnet_edge.clips.writer import ClipWriter
from birdnet_edge.config import Config, load_config
from birdnet_edge.daemon.calendar_days import Calendar, Clock, day_line, local_now
from birdnet_edge.daemon.console import Console
from birdnet_edge.daemon.memory import trim_heap
from birdnet_edge.daemon.reload import mqtt_changed, reloaded
from birdnet_edge.daemon.sd_notify import Notifier
from birdnet_edge.detect.board import resolve_overlap
from birdnet_edge.detect.confirm import Confirmation
from birdnet_edge.detect.detector import Detector, ScoredWindow
from birdnet_edge.detect.events import EventChange, EventTracker
from birdnet_edge.detect.filters import week_of_year
from birdnet_edge.detect.listener import Listener
from birdnet_edge.detect.refine import refinement_of
from birdnet_edge.detect.sinks import Fanout
from birdnet_edge.detect.stack import confirmation_of, load_detector, thresholds
from birdnet_edge.errors import BirdnetEdgeError
from birdnet_edge.log import queries
from birdnet_edge.log.feed import LogFeed
from birdnet_edge.log.history import History
from birdnet_edge.log.record import DetectionContext
from birdnet_edge.log.schema import default_db_path
from birdnet_edge.log.writer import LogWriter
from birdnet_edge.model.files import ModelPaths
from birdnet_edge.mqtt.messages import Announcer
from birdnet_edge.mqtt.publisher import MQTTPublisher

_LOGGER = logging.getLogger(__name__)

STOP_BUDGET = 4.5  # seconds from SIGTERM to exit: the window in flight, then the sinks
SINK_SHARE = 1.5  # of which kept for the sinks to write what is queued
STATUS_EVERY = 10.0  # seconds between STATUS= lines to systemd
MIC_GRACE = 20.0  # seconds to wait for the microphone before reporting READY=1 anyway
TRIM_EVERY = 10.0  # seconds between handing the C heap's free pages back (costs < 1 ms)


@dataclass(frozen=True)
class RunOptions:
    """How ``birdnet-edge run`` was asked to run."""

    config_path: Path | None = None
    input_file: Path | None = None
    fast: bool = False
    start_time: float | None = None  # wall-clock time of the replayed file's first sample
    scores_out: Path | None = None
    console: bool = True
    repeat: int = 1  # with input_file: play it this many times (soak tests)
    explain: bool = False  # log each window's labels and what became of them


def detection_context(cfg: Config, detector: Detector, overlap: float) -> DetectionContext:
    model = detector.classifier.model
    return DetectionContext(
        station=cfg.station.name,
        latitude=cfg.station.latitude,
        longitude=cfg.station.longitude,
        model=model.path.name,
        precision=model.precision,
        sensitivity=cfg.analysis.sensitivity,
        overlap=overlap,
        min_confidence=cfg.analysis.min_confidence,
    )


class Daemon:
    """One running listener."""

    def __init__(
        self,
        cfg: Config,
        options: RunOptions,
        notifier: Notifier | None = None,
        detector: Detector | None = None,
        clock: Clock = local_now,
    ) -> None:
        """Wire a daemon for ``cfg``; ``detector`` (default: loaded from ``cfg``) is how tests and
        benchmarks run it with a stand-in for the model."""
        self.cfg = cfg
        self.options = options
        self.notifier = notifier or Notifier(None)
        self.stop_event = threading.Event()
        self._stop_requested = False
        self._reload_requested = False
        # The file's own settings, to tell on reload what changed in it (the command line may
        # override the model section, and those overrides stay).
        self._file_cfg = load_config(options.config_path) if options.config_path else cfg
        self.calendar = Calendar(clock)
        self._range_week = range_week(cfg, self.calendar.today)
        self._scores: list[tuple[int, np.ndarray]] = []
        # The database first: one that cannot be used stops the start before the model loads.
        self.db_path = cfg.database.path or default_db_path()
        # What the log wrote: the console prints it (so a line on screen is a row on disk), the
        # MQTT publisher wakes up for it (or publishes from memory what the disk refused).
        self.feed = LogFeed()
        if options.console:
            self.feed.follow(Console())
        self.mqtt = self._publisher(cfg)
        self.sqlite = LogWriter(
            self.db_path,
            feed=self.feed,
            retention_days=cfg.database.retention_days,
            max_size_mb=cfg.database.max_size_mb,
        )
        self.notifier.status("loading the model")
        self.detector = detector or load_detector(cfg)
        # The first invoke() packs the weights (hundreds of ms): pay it now, not on a bird.
        self.detector.classifier.logits(make_batch(1))
        released = self.detector.classifier.model.release_file_pages()
        _LOGGER.debug("released %.0f MB of model file pages", released / 1e6)
        self.today = _DayCounter()
        self.confirm = confirmation_of(cfg, self.detector.labels)
        self.sinks = self._fanout(cfg, self.mqtt)
        self.overlap = resolve_overlap(cfg.analysis, ModelPaths.at(cfg.model.dir).dir)
        self.source = self._make_source()
        self.tracker = EventTracker(
            detection_context(cfg, self.detector, self.overlap),
            cfg.events.gap_seconds,
            cfg.events.max_seconds,
            history=History(self.db_path, self.confirm),
            confirm=self.confirm,
        )
        self.listener = Listener(
            self.source,
            self.detector,
            self.tracker,
            self.sinks,
            overlap=self.overlap,
            refinement=refinement_of(cfg.analysis.refine),
            on_batch=self._on_batch,
            explain=options.explain,
        )
        #: Writes the clips the listener cuts (``clips.enabled``), on its own thread.
        self.clip_writer: ClipWriter | None = None
        if cfg.clips.enabled:
            self.clip_writer = ClipWriter(
                clips_dir(cfg, self.db_path), self._clip_budget(cfg), on_image=self._image
            )
            settings = ClipSettings(
                pre=round(cfg.clips.pre * SAMPLE_RATE),
                post=round(cfg.clips.post * SAMPLE_RATE),
                longest=round(cfg.clips.max_seconds * SAMPLE_RATE),
                suffix=f".{cfg.clips.format}",
            )
            self.listener.keep_clips(ClipCutter(self.source.ring, settings, self.clip_writer.put))

    def _image(self, png: bytes) -> None:
        """A spectrogram was written: Home Assistant's image entity shows it."""
        mqtt = self.mqtt  # read once: a reload may swap the publisher
        if mqtt is not None:
            mqtt.image(png)

    def _clip_budget(self, cfg: Config) -> ClipBudget:
        """The clips' budget, with the clips already on disk (their species from the log)."""
        root = clips_dir(cfg, self.db_path)
        conn = queries.connect(self.db_path)
        try:
            known = queries.clips(conn)
        finally:
            conn.close()
        c = cfg.clips
        limits = Budget(c.max_size_mb << 20, c.min_free_mb << 20, c.retention_days)
        return ClipBudget(root, limits, on_disk(root, known))

    def _publisher(self, cfg: Config) -> MQTTPublisher | None:
        return MQTTPublisher(cfg, self.db_path, feed=self.feed) if cfg.mqtt.enabled else None

    def _fanout(
        self, cfg: Config, mqtt: MQTTPublisher | None, announcer: Announcer | None = None
    ) -> Fanout:
        """The sinks in order: the log first (its commits feed the MQTT outbox), the day's
        count, then MQTT's state; with MQTT on, the announcer stamps each change first."""
        if mqtt is None:
            return Fanout([self.sqlite, self.today])
        announcer = announcer or Announcer(self.confirm)
        return Fanout([self.sqlite, self.today, mqtt], announcer)

    def _make_source(self) -> Source:
        seconds = max(self.cfg.audio.ring_seconds, 3 * WINDOW_SAMPLES / SAMPLE_RATE)
        ring = RingBuffer(int(seconds * SAMPLE_RATE))
        if self.options.input_file is not None:
            return FileSource(
                self.options.input_file,
                ring,
                fast=self.options.fast,
                start_time=self.options.start_time,
                repeat=self.options.repeat,
            )
        audio = self.cfg.audio
        return MicrophoneSource(
            ring,
            device=audio.device,
            channel=audio.channel,
            samplerate=audio.samplerate,
            stall_seconds=audio.stall_seconds,
            # Blocks that end where windows end: long ones, cheap, at no cost in latency. (A
            # reload to another overlap keeps the blocks, which may then add up to a block.)
            block_seconds=aligned_block(WINDOW_SECONDS - self.overlap),
        )

    def _on_batch(self, scored: Sequence[ScoredWindow]) -> None:
        if self.options.scores_out is not None:
            self._scores += [(w.span.start, w.confidences.copy()) for w in scored]

    # -- signals --------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_hup)

    # The handlers only set flags: taking a lock (Event.set) inside a signal handler can
    # deadlock the main thread if the signal lands while it holds that lock.
    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stop_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self._stop_requested = True

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self._reload_requested = True

    # -- running --------------------------------------------------------------------------
    def run(self) -> int:
        """Run until stopped or the replayed file ends; returns the exit code."""
        failure: list[BaseException] = []

        def inference() -> None:
            try:
                self.listener.run(self.stop_event)
            except BaseException as exc:  # reported by the main thread
                failure.append(exc)
                self.stop_event.set()

        if self.mqtt is not None:
            self.mqtt.start()
        thread = threading.Thread(target=inference, name="inference", daemon=True)
        thread.start()
        try:
            self._supervise(thread)
        finally:
            self._shut_down(thread)
        self._write_scores()
        if not failure and isinstance(self.source, FileSource) and self.source.error:
            failure.append(self.source.error)  # after everything decoded was scored
        if failure:
            exc = failure[0]
            if isinstance(exc, BirdnetEdgeError):
                raise exc
            raise BirdnetEdgeError(f"the inference loop failed: {exc!r}") from exc
        stats = self.listener.stats
        _LOGGER.info(
            "stopped after %d windows and %d detection events", stats.windows, stats.events
        )
        return 0

    def _shut_down(self, thread: threading.Thread) -> None:
        """Finish the window in flight, then let the sinks write what is queued, in budget."""
        self.stop_event.set()
        self.notifier.stopping("stopping")
        deadline = time.monotonic() + STOP_BUDGET
        thread.join(max(0.1, deadline - SINK_SHARE - time.monotonic()))
        if thread.is_alive():
            _LOGGER.warning("the inference thread did not finish its window in time")
        if self.clip_writer is not None:  # the last events' clips, cut as they closed
            self.clip_writer.close(timeout=max(0.2, deadline - SINK_SHARE / 2 - time.monotonic()))
        self.sinks.close(timeout=max(0.2, deadline - time.monotonic()))
        self._report_unstored()

    def _report_unstored(self) -> None:
        """Say how many events neither the disk nor the broker took (a failing disk, then a
        stop before the broker acknowledged what was published from memory)."""
        unwritten = self.sqlite.unwritten
        if not unwritten:
            return
        reached = self.mqtt.delivered_from_memory if self.mqtt is not None else set()
        nowhere = unwritten - reached
        if not nowhere:
            _LOGGER.warning(
                "%d detection events reached only the MQTT broker: the disk at %s was not writable",
                len(unwritten),
                self.db_path,
            )
            return
        _LOGGER.error(
            "%d detection events could not be stored anywhere (%d more reached only the MQTT "
            "broker): the disk at %s was not writable%s",
            len(nowhere),
            len(unwritten) - len(nowhere),
            self.db_path,
            " and the broker did not acknowledge them in time" if self.mqtt is not None else "",
        )

    def _supervise(self, thread: threading.Thread) -> None:
        """The main thread's loop: readiness, watchdog, status lines, reloads."""
        started = time.monotonic()
        ready = False
        next_status = 0.0
        next_watchdog = 0.0
        interval = self.notifier.watchdog_interval()
        timeout = self.notifier.watchdog_timeout() or 10.0
        day_started = dataclasses.replace(self.listener.gate.stats)
        next_trim = started
        while thread.is_alive() and not self.stop_event.is_set():
            time.sleep(0.25)
            if self._stop_requested:
                break
            now = time.monotonic()
            if self._reload_requested:
                self._reload_requested = False
                self.notifier.reloading("reloading the config")
                self.reload()
                self.notifier.ready(self.status_line())
            ended = self.calendar.turned()
            if ended is not None:  # local midnight: the day's counts, the new week's species
                stats = self.listener.gate.stats
                line = day_line(ended, stats, day_started)
                if line is not None:
                    _LOGGER.info("%s", line)
                day_started = dataclasses.replace(stats)
                self._follow_the_week()
            if now >= next_trim:
                # Freed memory (a tensor arena outgrown by a larger batch, decoding and
                # database buffers) otherwise stays resident: about 7 MB with the FP32 model.
                next_trim = now + TRIM_EVERY
                trim_heap()
            # READY once audio flows; a microphone still missing after a grace period does not
            # hold the start job (and boot) hostage: the daemon is up and keeps retrying.
            if not ready and (self.source.running or now - started > MIC_GRACE):
                ready = True
                self.notifier.ready(self.status_line())
            # WATCHDOG=1 only while the inference loop turns: a hung invoke() or a wedged loop
            # stops the pings and systemd restarts the service.
            alive = now - self.listener.stats.heartbeat < max(5.0, timeout / 2)
            if interval is not None and alive and now >= next_watchdog:
                self.notifier.watchdog()
                next_watchdog = now + interval
            if now >= next_status:
                self.notifier.status(self.status_line())
                next_status = now + STATUS_EVERY

    def status_line(self) -> str:
        """One line for ``systemctl status``."""
        if not self.source.running:
            return "waiting for the microphone"
        parts = [f"listening; {self.today.count} detections today"]
        if self.mqtt is not None:
            parts.append(f"MQTT {self.mqtt.state}")
        if self.sqlite.pending:
            parts.append(f"{self.sqlite.pending} detections waiting for the database")
        gate = self.listener.gate.stats
        if gate.private_windows:
            parts.append(f"{gate.private_windows} windows with human sounds (no audio kept)")
        held = gate.dropped_private + gate.suppressed + gate.by_day
        if held:
            parts.append(f"{held} bird hits held back by privacy, noise or daylight rules")
        return "; ".join(parts)

    def _follow_the_week(self) -> None:
        """With ``filters.week: 0`` the range filter follows the calendar week by week."""
        today = self.calendar.today
        week = range_week(self.cfg, today)
        if week is None or week == self._range_week:
            return
        try:
            self.detector.thresholds = thresholds(self.cfg, self.detector.labels, today=today)
        except Exception as exc:  # keep the old species list rather than stop listening
            _LOGGER.error("cannot update the range filter for week %d: %s", week, exc)
            return
        self._range_week = week
        _LOGGER.info("range filter updated for week %d", week)

    def reload(self) -> None:
        """Apply a changed config file: thresholds, filters, location, overlap, events,
        retention, MQTT (the model, audio and database file need a restart)."""
        path = self.options.config_path
        if path is None:
            _LOGGER.warning("SIGHUP ignored: the daemon was started without --config")
            return
        try:
            file_cfg = load_config(path)
            new, waiting = reloaded(file_cfg, self._file_cfg, self.cfg)
            if waiting:
                _LOGGER.warning(
                    "%s settings change only on restart: systemctl restart birdnet-edge",
                    ", ".join(waiting),
                )
            new_thresholds = thresholds(new, self.detector.labels)
            confirm = confirmation_of(new, self.detector.labels)
            if mqtt_changed(new, self.cfg) or confirm != self.confirm:
                # Builds the new publisher (if its settings changed) before touching the old.
                self._swap_sinks(new, confirm, new_publisher=mqtt_changed(new, self.cfg))
        except Exception as exc:  # whatever is wrong with the new file, keep listening
            detail = (
                str(exc) if isinstance(exc, BirdnetEdgeError) else f"{type(exc).__name__}: {exc}"
            )
            _LOGGER.error("config reload rejected, keeping the running config: %s", detail)
            return
        self._file_cfg = file_cfg
        self.detector.thresholds = new_thresholds
        overlap = resolve_overlap(new.analysis, ModelPaths.at(new.model.dir).dir)
        self.tracker.set_context(detection_context(new, self.detector, overlap))
        self.tracker.gap = dt.timedelta(seconds=new.events.gap_seconds)
        self.tracker.max = dt.timedelta(seconds=new.events.max_seconds)
        self.tracker.confirm = self.confirm
        if self.tracker.history is not None:
            self.tracker.history.confirm = self.confirm
        if (overlap, new.analysis.refine) != (self.overlap, self.cfg.analysis.refine):
            self.listener.set_windows(overlap, refinement_of(new.analysis.refine))
            self.overlap = overlap
        if new.database != self.cfg.database:
            self.sqlite.set_retention(new.database.retention_days, new.database.max_size_mb)
        self.cfg = new
        self._range_week = range_week(new, self.calendar.today)
        _LOGGER.info("config reloaded from %s", path)

    def _swap_sinks(self, new: Config, confirm: Confirmation, *, new_publisher: bool) -> None:
        """Swap the sinks for ones built from ``new``: a new announcer (with the confirmation
        rule), and a new MQTT publisher when its settings changed; audio keeps flowing, and
        events already announced are not announced again."""
        publisher = self._publisher(new) if new_publisher else self.mqtt
        old, self.mqtt = self.mqtt, publisher
        self.confirm = confirm
        stamp = self.sinks.stamp
        announced = stamp.announced if isinstance(stamp, Announcer) else None
        announcer = Announcer(confirm, announced)
        if new_publisher and publisher is not None:
            publisher.start()
        self.sinks = self._fanout(new, publisher, announcer)
        self.listener.sink = self.sinks  # one assignment: the loop sees the old or the new one
        if new_publisher:
            if old is not None:
                old.hand_over()
            _LOGGER.info("MQTT %s", "reconfigured" if publisher else "disabled")

    def _write_scores(self) -> None:
        if self.options.scores_out is None:
            return
        starts = np.array([s for s, _ in self._scores], dtype=np.int64)
        conf = np.stack([c for _, c in self._scores]) if self._scores else np.zeros((0, 6522))
        np.savez(self.options.scores_out, starts=starts, confidences=conf)


class _DayCounter:
    """Counts the detection events opened today (local time), for STATUS lines."""

    def __init__(self) -> None:
        self.day = dt.date.today()
        self.count = 0

    def handle(self, change: EventChange) -> None:
        if change.kind != "opened" or change.detection.kind == "sound":
            return
        today = dt.date.today()
        if today != self.day:
            self.day, self.count = today, 0
        self.count += 1

    def close(self, timeout: float = 5.0) -> None:
        pass


def range_week(cfg: Config, today: dt.date) -> int | None:
    """The week the range filter follows on ``today``, or None when it does not follow one."""
    s, f = cfg.station, cfg.filters
    if f.week != 0 or not f.range_filter or s.latitude is None or s.longitude is None:
        return None
    return week_of_year(today)


def run_daemon(cfg: Config, options: RunOptions) -> int:
    """Build and run the daemon in the foreground."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a reload during start-up must not kill it
    started = time.monotonic()
    daemon = Daemon(cfg, options, Notifier.from_env())
    _LOGGER.info(
        "ready in %.1f s: %s, overlap %.1f s%s, min confidence %.2f",
        time.monotonic() - started,
        daemon.detector.classifier.model.path.name,
        daemon.overlap,
        " with refinement" if cfg.analysis.refine.enabled else "",
        cfg.analysis.min_confidence,
    )
    daemon.install_signal_handlers()
    return daemon.run()
