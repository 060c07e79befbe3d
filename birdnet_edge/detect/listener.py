"""The inference loop: ring buffer -> windows -> model -> events -> sinks, on one thread.

When the model falls behind, every window that is ready runs in one batch instead of being
dropped; audio is lost only when the ring buffer itself overflows, and then the loss is counted
and logged at most once a minute with what to do about it.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from birdnet_edge.audio.format import SAMPLE_RATE, WINDOW_SAMPLES
from birdnet_edge.audio.source import Source
from birdnet_edge.audio.windows import Windower, WindowSpan, make_batch
from birdnet_edge.clips.cutter import ClipCutter
from birdnet_edge.detect.board import max_grid_overlap
from birdnet_edge.detect.detector import Detector, ScoredWindow
from birdnet_edge.detect.events import EventChange, EventTracker
from birdnet_edge.detect.explain import explain
from birdnet_edge.detect.refine import Refinement, Refiner
from birdnet_edge.detect.sinks import Sink
from birdnet_edge.detect.sounds import SoundGate

_LOGGER = logging.getLogger(__name__)

#: How long the loop sleeps between looks at the ring: until the block that completes the next
#: window is due (the last block's arrival plus whole blocks, and ARRIVAL_MARGIN for jitter),
#: then in POLL_SECONDS steps until it is in; a file replayed at full speed is looked at every
#: POLL_SECONDS. Waking on a fixed 20 ms tick instead cost as much CPU as the optimised model
#: itself in real time (150 turns a window); MAX_WAIT keeps the source's housekeeping
#: (reopening a lost microphone, resampling, stall checks) and the watchdog heartbeat going.
POLL_SECONDS = 0.02
ARRIVAL_MARGIN = 0.01
MAX_WAIT = 1.0
#: Windows run together when the model is behind. Measured (LiteRT 2.1.6, FP32, 2 threads,
#: ms per window at batch 1/2/4/8/16: 41.6/35.2/33.7/34.4/33.3) while each extra window in a
#: batch keeps about 22 MB more of tensor arena resident for good: 2 takes most of the gain
#: and keeps the daemon within the model file + 120 MB.
MAX_BATCH = 2
REPORT_EVERY = 60.0


@dataclass
class ListenerStats:
    """What the loop has done, for STATUS lines, logs and the benchmark."""

    windows: int = 0
    batches: int = 0
    events: int = 0
    dropped_seconds: float = 0.0
    unrefined: int = 0  # grid windows left unrefined because the model was behind
    model_seconds: float = 0.0  # wall time spent scoring (and refining) windows
    last_batch: float = 0.0  # time.monotonic() of the last batch scored
    heartbeat: float = 0.0  # time.monotonic() of the loop's last turn (for the watchdog)
    #: Seconds from the end of a window's audio to its events leaving the pipeline.
    latencies: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=10_000)
    )


class Listener:
    """Cuts windows from a source's ring, scores them, and hands event changes to a sink."""

    def __init__(
        self,
        source: Source,
        detector: Detector,
        tracker: EventTracker,
        sink: Sink,
        *,
        overlap: float = 0.0,
        refinement: Refinement | None = None,
        max_batch: int = MAX_BATCH,
        on_batch: Callable[[Sequence[ScoredWindow]], None] | None = None,
        explain: bool = False,
    ) -> None:
        self.source = source
        self.detector = detector
        self.tracker = tracker
        #: Where changes go (a :class:`~birdnet_edge.detect.sinks.Fanout` in the daemon); replaced
        #: whole on a config reload.
        self.sink = sink
        self.windower = Windower(source.ring, overlap)
        self.batch = make_batch(max_batch)
        self.refiner: Refiner | None = None
        self._refine(refinement)
        self.on_batch = on_batch
        #: Log every window's labels and what became of them (``run --explain``).
        self.explain = explain
        #: Cuts each event's clip out of the ring (``clips.enabled``); see :meth:`keep_clips`.
        self.clips: ClipCutter | None = None
        self.stats = ListenerStats()
        #: Privacy and noise rules' state over the stream (see :mod:`birdnet_edge.detect.sounds`).
        self.gate = SoundGate()
        self._new_windows: tuple[float, Refinement | None] | None = None
        self._reported_drop = 0
        self._reported_overflows = 0
        self._reported_unrefined = 0
        self._next_report = 0.0

    def keep_clips(self, cutter: ClipCutter) -> None:
        """Cut clips with ``cutter`` (before :meth:`run`): the ring then keeps its pre-roll."""
        self.clips = cutter
        # An event may open at any window of the batch being scored (up to a batch of hops
        # before the next window to cut): its clip starts ``pre`` before that.
        self.windower.keep_before = cutter.settings.pre + len(self.batch) * WINDOW_SAMPLES

    def set_windows(self, overlap: float, refinement: Refinement | None) -> None:
        """Change the overlap and refinement from the next window on (applied on the loop's
        thread)."""
        self._new_windows = (overlap, refinement)

    def _refine(self, refinement: Refinement | None) -> None:
        self.windower.keep_hops = 0
        self.refiner = (
            None
            if refinement is None
            else Refiner(self.detector, self.windower, self.batch, refinement)
        )

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set or a finite source has ended and been fully scored."""
        self.source.start()
        try:
            while not stop.is_set():
                self.stats.heartbeat = time.monotonic()
                ended = self.source.poll()
                gap = self.source.gap()
                if gap is not None and gap != self.windower.next_start:
                    self._resume_after(gap)
                if self._new_windows is not None:
                    overlap, refinement = self._new_windows
                    self.windower.set_overlap(overlap)
                    self._refine(refinement)
                    self._new_windows = None
                if self.clips is not None:
                    self.windower.hold = self.clips.oldest_needed()
                spans = self.windower.take(self.batch)
                if spans:
                    self._process(spans)
                elif ended:
                    while spans := self.windower.take(self.batch, final=True):
                        self._process(spans)
                    break
                else:
                    stop.wait(self._wait_seconds())
                self._report_losses()
            if stop.is_set():
                # Stopping: score the complete windows already captured (one batch at most,
                # so the stop stays quick) before the events close.
                self.source.stop()
                if spans := self.windower.take(self.batch):
                    self._process(spans)
            self._report_losses(final=True)  # what the last minute lost, before exiting
        finally:
            self.source.stop()
            self._emit(self._clipped(self.tracker.close_all(), self.source.ring.written))

    def _resume_after(self, gap: int) -> None:
        """Audio restarted at sample ``gap``: score the complete windows still waiting before
        it (the model may be behind), then go on from the gap. A partial window before the
        gap has no audio to complete it and is not scored."""
        while spans := self.windower.take(self.batch, until=gap):
            self._process(spans)
        self.windower.restart_at(gap)

    def _wait_seconds(self) -> float:
        """How long to sleep before looking at the ring again (see POLL_SECONDS)."""
        return wait_seconds(
            self.windower.samples_until_ready(),
            self.source.block_seconds,
            self.source.last_block,
            time.monotonic(),
        )

    def _process(self, spans: list[WindowSpan]) -> None:
        began = time.monotonic()
        scored = self.detector.score(self.batch, spans)
        windows = len(scored)
        if self.refiner is not None:
            if self._behind():
                # Refinement is extra work: when the model already lags a live source it is
                # left out rather than let the ring overflow, and counted.
                self.stats.unrefined += len(scored)
            else:
                extras = self.refiner.scored
                scored = self.refiner.apply(scored)
                windows += self.refiner.scored - extras
        labels = self.detector.labels
        rules = self.detector.thresholds.sounds
        clock = self.source.clock
        audio_end = 0.0
        for window in scored:
            span = window.span
            start = clock.time_of(span.start)
            end = start + span.audio / SAMPLE_RATE  # a padded last window: the file's end
            audio_end = clock.time_of(span.start + span.audio)
            hits = window.hits
            dropped: list[tuple[int, str]] = []
            if rules is not None:
                verdict = self.gate.window(
                    rules, span.start, span.start + span.audio, window.confidences, hits,
                    at=_utc(start),
                )  # fmt: skip
                hits, dropped = verdict.hits, verdict.dropped
            level = logging.INFO if self.explain else logging.DEBUG
            if _LOGGER.isEnabledFor(level):
                thresholds = self.detector.thresholds
                words = explain(window.confidences, thresholds, list(labels), hits, dropped)
                _LOGGER.log(level, "%s: %s", _utc(start).astimezone().strftime("%H:%M:%S"), words)
            changes = self.tracker.window(_utc(start), _utc(end), hits, labels)
            self._emit(self._clipped(changes, span.start + span.audio))
        now = time.time()
        self.stats.latencies.append(now - audio_end)
        self.stats.windows += windows  # every window scored, grid and refinement
        self.stats.model_seconds += time.monotonic() - began
        self.stats.batches += 1
        self.stats.last_batch = time.monotonic()
        if self.on_batch is not None:
            self.on_batch(scored)

    def _clipped(self, changes: list[EventChange], window_end: int) -> list[EventChange]:
        """The changes, each closed event naming its clip where one is kept."""
        if self.clips is None or not changes:
            return changes
        return self.clips.follow(changes, window_end, self.gate.is_private)

    def _emit(self, changes: list[EventChange]) -> None:
        for change in changes:
            if change.kind == "opened":
                self.stats.events += 1
            self.sink.handle(change)

    def _behind(self) -> bool:
        """A live source has another grid window complete already (a file replayed at full
        speed is never behind: it waits for the model)."""
        return self.source.block_seconds is not None and self.windower.pending() > 0

    def _report_losses(self, *, final: bool = False) -> None:
        now = time.monotonic()
        if now < self._next_report and not final:
            return
        dropped = self.windower.dropped_samples
        overflows = self.source.stats.overflows
        if dropped > self._reported_drop:
            seconds = (dropped - self._reported_drop) / SAMPLE_RATE
            self.stats.dropped_seconds += seconds
            _LOGGER.warning(
                "the model fell behind and %.1f s of audio were dropped: %s",
                seconds,
                self._what_fits(),
            )
        if overflows > self._reported_overflows:
            _LOGGER.warning(
                "the sound card reported %d input overflows (audio lost before the ring "
                "buffer): the system is overloaded",
                overflows - self._reported_overflows,
            )
        unrefined = self.stats.unrefined - self._reported_unrefined
        if unrefined:
            _LOGGER.warning(
                "the model was behind: %d grid windows went unrefined (fewer birds found): %s",
                unrefined,
                self._what_fits(),
            )
        self._reported_drop, self._reported_overflows = dropped, overflows
        self._reported_unrefined = self.stats.unrefined
        self._next_report = now + REPORT_EVERY

    def _what_fits(self) -> str:
        """Advice with the overlap this board's measured time per window keeps up with."""
        if self.stats.windows == 0:
            return "lower analysis.overlap, or use a faster model"
        per_window = self.stats.model_seconds / self.stats.windows
        return (
            f"at {1000 * per_window:.0f} ms per window, analysis.overlap "
            f"{max_grid_overlap(per_window):g} or less keeps up (or raise "
            "analysis.refine.candidate, use a faster model, or set analysis.overlap: auto)"
        )


def wait_seconds(need: int, block: float | None, last_block: float, now: float) -> float:
    """How long the loop sleeps when ``need`` more samples complete the next window, audio
    arrives in blocks of ``block`` seconds (None: as fast as it can be read) and the latest
    block arrived at ``last_block`` (``time.monotonic()``; 0.0 before the first). See
    :data:`POLL_SECONDS`."""
    if block is None:
        return POLL_SECONDS
    if need == 0 or last_block <= 0.0:  # complete, or no audio yet: the ring trails by a block
        due = need / SAMPLE_RATE - block
    else:
        blocks = -(-need // max(1, round(block * SAMPLE_RATE)))  # ceil
        due = last_block + blocks * block + ARRIVAL_MARGIN - now
    return min(MAX_WAIT, max(POLL_SECONDS, due))


def _utc(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc)
