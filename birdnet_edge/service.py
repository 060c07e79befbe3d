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

from birdnet_edge.audio.ring import RingBuffer
from birdnet_edge.audio.sources import FileSource, MicrophoneSource, Source
from birdnet_edge.build import load_detector, model_paths, thresholds
from birdnet_edge.config import Config, load_config
from birdnet_edge.detector import Detector, ScoredWindow
from birdnet_edge.errors import BirdnetEdgeError
from birdnet_edge.events import DetectionContext, EventTracker
from birdnet_edge.listener import Listener
from birdnet_edge.model.files import SAMPLE_RATE, WINDOW_SAMPLES
from birdnet_edge.model.inspect import precision_of
from birdnet_edge.sinks import Sink
from birdnet_edge.sinks.console import ConsoleSink

_LOGGER = logging.getLogger(__name__)

STOP_TIMEOUT = 4.0  # seconds for the inference thread to finish its window


@dataclass(frozen=True)
class RunOptions:
    """How ``birdnet-edge run`` was asked to run."""

    config_path: Path | None = None
    input_file: Path | None = None
    fast: bool = False
    start_time: float | None = None  # wall-clock time of the replayed file's first sample
    scores_out: Path | None = None
    console: bool = True


def detection_context(cfg: Config, detector: Detector) -> DetectionContext:
    model = detector.classifier.model
    return DetectionContext(
        station=cfg.station.name,
        latitude=cfg.station.latitude,
        longitude=cfg.station.longitude,
        model=model.path.name,
        precision=precision_of(model.interpreter.get_tensor_details()),
        sensitivity=cfg.analysis.sensitivity,
        overlap=cfg.analysis.overlap,
        min_confidence=cfg.analysis.min_confidence,
    )


class Daemon:
    """One running listener."""

    def __init__(self, cfg: Config, options: RunOptions) -> None:
        self.cfg = cfg
        self.options = options
        self.stop_event = threading.Event()
        self._reload = threading.Event()
        self._scores: list[tuple[int, np.ndarray]] = []
        self.detector = load_detector(cfg)
        self.sinks: list[Sink] = [ConsoleSink()] if options.console else []
        self.source = self._make_source()
        self.tracker = EventTracker(
            detection_context(cfg, self.detector), cfg.events.gap_seconds, cfg.events.max_seconds
        )
        self.listener = Listener(
            self.source,
            self.detector,
            self.tracker,
            self.sinks,
            overlap=cfg.analysis.overlap,
            on_batch=self._on_batch,
        )

    def _make_source(self) -> Source:
        seconds = max(self.cfg.audio.ring_seconds, 3 * WINDOW_SAMPLES / SAMPLE_RATE)
        ring = RingBuffer(int(seconds * SAMPLE_RATE))
        if self.options.input_file is not None:
            return FileSource(
                self.options.input_file,
                ring,
                fast=self.options.fast,
                start_time=self.options.start_time,
            )
        audio = self.cfg.audio
        return MicrophoneSource(
            ring,
            device=audio.device,
            channel=audio.channel,
            samplerate=audio.samplerate,
            stall_seconds=audio.stall_seconds,
        )

    def _on_batch(self, scored: Sequence[ScoredWindow]) -> None:
        if self.options.scores_out is not None:
            self._scores += [(w.span.start, w.confidences.copy()) for w in scored]

    # -- signals --------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.stop_event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.stop_event.set()

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self._reload.set()

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

        thread = threading.Thread(target=inference, name="inference", daemon=True)
        thread.start()
        while thread.is_alive():
            if self.stop_event.wait(0.25):
                break
            if self._reload.is_set():
                self._reload.clear()
                self.reload()
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            _LOGGER.warning("the inference thread did not stop within %.0f s", STOP_TIMEOUT)
        for sink in self.sinks:
            sink.close(timeout=2.0)
        self._write_scores()
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

    def reload(self) -> None:
        """Apply a changed config file: thresholds, filters, location, overlap, events."""
        path = self.options.config_path
        if path is None:
            _LOGGER.warning("SIGHUP ignored: the daemon was started without --config")
            return
        try:
            new = load_config(path)
            if new.model != self.cfg.model or new.audio != self.cfg.audio:
                _LOGGER.warning(
                    "model and audio settings change only on restart: systemctl restart "
                    "birdnet-edge"
                )
            new_thresholds = thresholds(new, self.detector.labels)
        except BirdnetEdgeError as exc:
            _LOGGER.error("config reload rejected, keeping the running config: %s", exc)
            return
        self.detector.thresholds = new_thresholds
        self.tracker.set_context(detection_context(new, self.detector))
        self.tracker.gap = dt.timedelta(seconds=new.events.gap_seconds)
        self.tracker.max = dt.timedelta(seconds=new.events.max_seconds)
        if new.analysis.overlap != self.cfg.analysis.overlap:
            self.listener.set_overlap(new.analysis.overlap)
        self.cfg = dataclasses.replace(new, model=self.cfg.model, audio=self.cfg.audio)
        _LOGGER.info("config reloaded from %s", path)

    def _write_scores(self) -> None:
        if self.options.scores_out is None:
            return
        starts = np.array([s for s, _ in self._scores], dtype=np.int64)
        conf = np.stack([c for _, c in self._scores]) if self._scores else np.zeros((0, 6522))
        np.savez(self.options.scores_out, starts=starts, confidences=conf)


def run_daemon(cfg: Config, options: RunOptions) -> int:
    """Build and run the daemon in the foreground."""
    started = time.monotonic()
    daemon = Daemon(cfg, options)
    _LOGGER.info(
        "ready in %.1f s: %s, overlap %.1f s, min confidence %.2f",
        time.monotonic() - started,
        model_paths(cfg).audio.name,
        cfg.analysis.overlap,
        cfg.analysis.min_confidence,
    )
    daemon.install_signal_handlers()
    return daemon.run()
