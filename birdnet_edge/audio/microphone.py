"""The microphone: a PortAudio input stream whose callback only copies into the ring, and the
state machine around it (opening, streaming, lost, missing) that runs on the pipeline thread.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from typing import Any

import numpy as np

from birdnet_edge.audio.clock import SampleClock
from birdnet_edge.audio.devices import find_input_device, one_line, portaudio, sound_devices
from birdnet_edge.audio.format import SAMPLE_RATE, WINDOW_SAMPLES
from birdnet_edge.audio.ring import RingBuffer
from birdnet_edge.audio.source import SourceStats
from birdnet_edge.errors import AudioError

_LOGGER = logging.getLogger(__name__)


#: The longest PortAudio block, in seconds. Every block costs a wake-up of the capture thread,
#: a period through PortAudio's ALSA host API (and PulseAudio's plugin) and a call into Python:
#: per 3 s window, 0.1 s blocks cost 4.6-4.8 ms of CPU in PortAudio's thread plus 2.0-2.2 ms in
#: PulseAudio's client thread, 0.5 s blocks 1.5 ms plus 0.8 ms (arecord on the same stream:
#: 0.8-1.0 ms plus 1.4-1.7 ms). Blocks end where windows end (see :func:`aligned_block`), so
#: longer blocks add no latency. (Long blocks once seemed to lose the first bird and to stamp
#: audio 0.5 s early: both were the tests' microphone, a PulseAudio null sink, which renders as
#: far ahead as its slowest client asks; a player asking for low latency cured both.)
BLOCK_SECONDS = 0.5
SHORTEST_BLOCK = 0.1  # seconds: when no longer block ends on the windows' ends


def aligned_block(hop_seconds: float, longest: float = BLOCK_SECONDS) -> float:
    """The capture block's length in seconds so that every window's end is a block's end: the
    longest block up to ``longest`` that divides both the 3 s window and the hop (windows end at
    3 s + k x hop after the stream starts): 0.5 s at the default 1.5 s hop. A hop with no such
    divisor of at least 0.1 s (e.g. 2.37 s) gets 0.1 s blocks, as before blocks were aligned."""
    step = math.gcd(WINDOW_SAMPLES, round(hop_seconds * SAMPLE_RATE)) or WINDOW_SAMPLES
    parts = math.ceil(step / (longest * SAMPLE_RATE))
    while step % parts:
        parts += 1
    block = step // parts
    return block / SAMPLE_RATE if block >= SHORTEST_BLOCK * SAMPLE_RATE else SHORTEST_BLOCK


class MicState(enum.Enum):
    """Where a microphone source stands; :meth:`MicrophoneSource.poll` switches on it."""

    STOPPED = "stopped"  # never opened, or stopped
    WAITING = "waiting"  # a stream is open; its first block has not come yet
    LISTENING = "listening"  # audio flows
    MISSING = "missing"  # no stream: the device is missing or stopped delivering; retrying


class MicrophoneSource:
    """A PortAudio input stream whose callback only copies into a preallocated ring buffer.

    The device is chosen by name substring or index. When the device refuses 48 kHz it is
    opened at its native rate: the callback fills a capture ring at that rate and :meth:`poll`
    moves new samples through soxr's streaming resampler into the 48 kHz ring, so windows stay
    continuous across blocks. A missing device, or a stream that delivers nothing for
    ``stall_seconds``, is (re)opened with backoff while the daemon keeps running.
    """

    MAX_BACKOFF = 30.0
    FAST_RETRY = 0.5  # seconds between open attempts in the first minute of an outage
    FAST_RETRY_FOR = 60.0
    CLOCK_CHECK = 60.0  # seconds between drift checks of the sample clock
    CLOCK_TOLERANCE = 0.5  # seconds of drift (more than block jitter) before re-anchoring

    def __init__(
        self,
        ring: RingBuffer,
        *,
        device: str | None = None,
        channel: int | None = None,
        samplerate: int | None = None,
        stall_seconds: float = 5.0,
        block_seconds: float = BLOCK_SECONDS,
    ) -> None:
        """``block_seconds``: a capture block's length (see :func:`aligned_block`)."""
        self.ring = ring
        self.device = device
        self.channel = channel
        self.samplerate = samplerate
        self.stall_seconds = stall_seconds
        self.block_seconds = block_seconds
        self.clock = SampleClock()
        self.stats = SourceStats()
        self._stream: Any = None
        self._capture: RingBuffer | None = None  # at the device rate, when resampling
        self._capture_rate = SAMPLE_RATE
        self._resampler: Any = None
        self._moved = 0  # capture-ring samples already resampled
        self._scratch = np.zeros(0, dtype=np.float32)
        self._last_callback = 0.0
        self._opened_at = 0.0
        self._next_try = 0.0
        self._backoff = 1.0
        self._gap_at: int | None = None
        self.state = MicState.STOPPED
        self._anchored_overflows = 0
        self._next_clock_check = 0.0
        # Written by the callback (plain float stores, no allocation of our own): when the
        # first block of this stream was captured, and when the latest block arrived.
        self._first_capture = 0.0  # wall time of the first sample; 0.0 until it arrives
        self._last_capture_end = 0.0  # wall time the latest block's last sample was captured
        self._use_adc = False  # this stream's capture times are believable
        self._max_age = 0.0
        self._stream_start = 0  # ring sample number of the stream's first sample
        self._announced_rate = SAMPLE_RATE  # the capture rate last announced in the log
        self._outage_since = 0.0  # when this outage began (monotonic); 0.0 when there is none
        self._devices_seen = ""  # a fingerprint of the sound devices, to notice a replug
        self._next_device_look = 0.0

    @property
    def running(self) -> bool:
        """Audio flows (a stream is open and has delivered)."""
        return self.state is MicState.LISTENING or (
            self.state is MicState.WAITING and self._last_callback > 0.0
        )

    @property
    def last_block(self) -> float:
        return self._last_callback

    def start(self) -> None:
        self._try_open()

    # -- the audio callback: copies only -------------------------------------------------
    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        # When this block was captured: PortAudio's capture time where the host API gives a
        # plausible one (stream time, turned into wall time), else its arrival less its own
        # length. Through PulseAudio's ALSA plugin the capture time claims blocks 0.6 s old
        # that arrive every 0.1 s with 0.2 s of latency: checked on the first block, kept.
        now = time.time()
        length = frames / self._capture_rate
        age = time_info.currentTime - time_info.inputBufferAdcTime
        if self._first_capture == 0.0:
            self._use_adc = time_info.inputBufferAdcTime > 0.0 and 0.0 <= age <= self._max_age
        start = now - age if self._use_adc else now - length
        if self._first_capture == 0.0:
            self._first_capture = start
        self._last_capture_end = start + length
        if status.input_overflow or status.input_underflow:
            self.stats.overflows += 1
        target = self._capture or self.ring
        if self.channel is not None:
            target.write(indata[:, self.channel])
        elif indata.shape[1] == 1:
            target.write(indata[:, 0])
        else:
            mono = self._scratch[:frames]
            np.mean(indata, axis=1, out=mono)
            target.write(mono)
        self._last_callback = time.monotonic()

    # -- housekeeping, on the pipeline thread ----------------------------------------------
    def poll(self) -> bool:
        now = time.monotonic()
        if self.state is MicState.STOPPED:
            return False
        if self.state is MicState.MISSING:
            if now >= self._next_try or self._devices_changed():
                self._try_open()
            return False
        if self.state is MicState.WAITING and self._first_capture > 0.0:
            # Audio arrives a second or two after the stream opens: sample numbers are stamped
            # from the first block's capture time, not from the opening.
            self.clock.anchor(self._stream_start, self._first_capture)
            self._next_clock_check = now + self.CLOCK_CHECK
            if self._outage_since:
                # Only now is the device back (a stream can open and stay mute).
                _LOGGER.info("microphone %s is back: listening again", self._describe())
            self._backoff, self._outage_since = 1.0, 0.0
            self.state = MicState.LISTENING
        if self.state is MicState.LISTENING:
            if self._resampler is not None:
                self._resample(now)
            self._keep_clock(now)
        last = self._last_callback or self._opened_at
        if now - last > self.stall_seconds or not self._stream.active:
            # One error per outage; a device that opens but stays mute is retried with the
            # same backoff as a missing one, not every stall_seconds with a new error.
            log = _LOGGER.debug if self._outage_since else _LOGGER.error
            log(
                "microphone %s stopped delivering audio: reopening it (check the USB "
                "connection if this repeats)",
                self._describe(),
            )
            self._close()
            self._missing()
        return False

    def gap(self) -> int | None:
        gap, self._gap_at = self._gap_at, None
        return gap

    def _keep_clock(self, now: float) -> None:
        """Re-anchor the sample clock after lost audio, and against sound-card clock drift.

        Samples lost in an overflow would otherwise shift every later timestamp, and a USB
        microphone's clock differs from the system's by tens of ppm (seconds a day).
        """
        overflowed = self.stats.overflows != self._anchored_overflows
        if self.state is not MicState.LISTENING or (
            not overflowed and now < self._next_clock_check
        ):
            return
        self._next_clock_check = now + self.CLOCK_CHECK
        self._anchored_overflows = self.stats.overflows
        # The sample written last came with the latest block: compare the clock with when that
        # block was captured (not with now, up to a block and a poll later). A correction moves
        # stamps by exactly the drift measured, far less than a hop, so they never go back.
        sample = self.ring.written
        actual = self._last_capture_end
        if overflowed or abs(self.clock.time_of(sample) - actual) > self.CLOCK_TOLERANCE:
            self.clock.anchor(sample, actual)

    def _resample(self, now: float) -> None:
        capture = self._capture
        assert capture is not None
        new = capture.written - self._moved
        if new <= 0:
            return
        buf = np.empty(new, dtype=np.float32)
        if not capture.read(self._moved, buf):
            # The pipeline thread fell behind the capture ring: go on from the oldest sample
            # still there, as after a gap, stamped with the time it was captured.
            self.stats.overflows += 1
            self._anchored_overflows = self.stats.overflows
            self._moved = capture.oldest()
            behind = (capture.written - self._moved) / self._capture_rate
            self.clock.anchor(self.ring.written, self._last_capture_end - behind)
            self._next_clock_check = now + self.CLOCK_CHECK
            self._gap_at = self.ring.written
            return
        self._moved += new
        self.ring.write(np.asarray(self._resampler.resample_chunk(buf), dtype=np.float32))

    def _try_open(self) -> None:
        sd = portaudio()
        stream = None
        try:
            if self.stats.reopens or self._outage_since:
                # PortAudio lists devices once per initialisation: refresh it to see a device
                # that was plugged in (or came back) since.
                sd._terminate()
                sd._initialize()
            index = find_input_device(self.device)
            info = sd.query_devices(index, "input")
            available = int(info["max_input_channels"])
            _check_channel(self.channel, available, str(info["name"]))
            channels = open_channels(available, self.channel)
            rate = self._pick_rate(sd, index, channels)
            if self.samplerate:
                _check_rate(sd, index, channels, self.samplerate, str(info["name"]))
            block = round(rate * self.block_seconds)
            self._prepare(rate, block)
            stream = sd.InputStream(
                device=index,
                channels=channels,
                samplerate=rate,
                dtype="float32",
                blocksize=block,
                callback=self._callback,
            )
            self._last_callback = 0.0
            self._max_age = float(stream.latency) + block / rate  # a capture time to believe
            self._first_capture = 0.0
            self._stream_start = self.ring.written
            stream.start()
        except (AudioError, sd.PortAudioError, ValueError) as exc:
            if stream is not None:
                stream.close(ignore_errors=True)
            if not self._outage_since:
                hint = (
                    ""  # the message names the setting and its fix
                    if isinstance(exc, AudioSettingError)
                    else " (plug in the microphone or set audio.device; `birdnet-edge devices` "
                    "lists them)"
                )
                _LOGGER.error("%s; retrying in the background%s", one_line(exc), hint)
            self._missing()
            return
        self._stream = stream
        self.state = MicState.WAITING
        self._opened_at = time.monotonic()
        # Sample numbers continue across reopenings; the clock and the windows restart here
        # (the clock provisionally, until the first block says when it was captured).
        self.clock.anchor(self._stream_start, time.time())
        self._next_clock_check = time.monotonic() + self.CLOCK_CHECK
        self._gap_at = self._stream_start
        self.stats.reopens += 1
        if self._outage_since or self.stats.reopens > 1:
            _LOGGER.debug("microphone %s reopened: waiting for audio", self._describe())
        else:
            _LOGGER.info("listening on %s at %d Hz", self._describe(), rate)

    def _pick_rate(self, sd: Any, index: int, channels: int) -> int:
        if self.samplerate:
            return self.samplerate
        try:
            sd.check_input_settings(
                device=index, channels=channels, samplerate=SAMPLE_RATE, dtype="float32"
            )
        except (sd.PortAudioError, ValueError) as refused:
            native = int(sd.query_devices(index, "input")["default_samplerate"])
            try:
                sd.check_input_settings(
                    device=index, channels=channels, samplerate=native, dtype="float32"
                )
            except (sd.PortAudioError, ValueError):
                # It takes neither rate: it is not there (a sound server or USB device gone),
                # not a device that refuses 48 kHz.
                raise AudioError(
                    f"microphone {self._describe()} is missing or not ready ({one_line(refused)})"
                ) from None
            if native != self._announced_rate:
                self._announced_rate = native
                _LOGGER.info(
                    "device refuses %d Hz: capturing at %d Hz and resampling",
                    SAMPLE_RATE,
                    native,
                )
            return native
        self._announced_rate = SAMPLE_RATE
        return SAMPLE_RATE

    def _missing(self) -> None:
        """No stream now: retry opening twice a second for the first minute of the outage (a
        replug is usually quick), then with a backoff to 30 s; between those attempts a change
        of the sound devices (a USB device plugged in) tries at once."""
        self.state = MicState.MISSING
        now = time.monotonic()
        if not self._outage_since:
            self._outage_since = now
            self._devices_seen = sound_devices()
        if now - self._outage_since < self.FAST_RETRY_FOR:
            self._next_try = now + self.FAST_RETRY
            return
        self._next_try = now + self._backoff
        self._backoff = min(self._backoff * 2, self.MAX_BACKOFF)

    def _devices_changed(self) -> bool:
        """Whether the system's sound devices changed since the last look (cheap: one small
        file and one folder listing, at most every FAST_RETRY seconds)."""
        now = time.monotonic()
        if now < self._next_device_look:
            return False
        self._next_device_look = now + self.FAST_RETRY
        seen = sound_devices()
        changed = seen != self._devices_seen
        self._devices_seen = seen
        return changed

    def _prepare(self, rate: int, block: int) -> None:
        import soxr

        self._scratch = np.zeros(block * 4, dtype=np.float32)  # PortAudio may send more
        self._capture_rate = rate
        if rate == SAMPLE_RATE:
            self._capture, self._resampler = None, None
        else:
            self._capture = RingBuffer(rate * 10)
            self._moved = 0
            self._resampler = soxr.ResampleStream(
                rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ"
            )

    def _describe(self) -> str:
        return repr(self.device) if self.device is not None else "the default input device"

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort(ignore_errors=True)
                stream.close(ignore_errors=True)
            except Exception:  # a vanished device may fail any call
                _LOGGER.debug("closing the lost stream failed", exc_info=True)

    def stop(self) -> None:
        self._close()
        self.state = MicState.STOPPED


def open_channels(available: int, channel: int | None) -> int:
    """How many channels to open: enough for ``channel``, else all of a real device's.

    Sound-server devices (ALSA ``pulse``/``default``) claim 32 or more channels; opening one
    lets the server downmix instead of averaging dozens of copied or silent channels.
    """
    if channel is not None:
        return channel + 1
    return available if available <= 8 else 1


class AudioSettingError(AudioError):
    """The device is there but refuses a configured ``audio.*`` setting."""


def _check_channel(channel: int | None, channels: int, name: str) -> None:
    if channel is not None and channel >= channels:
        raise AudioSettingError(
            f"audio.channel {channel} does not exist on {name!r}, which has {channels} input "
            f"channels: use 0..{channels - 1}"
        )


def _check_rate(sd: Any, index: int, channels: int, rate: int, name: str) -> None:
    try:
        sd.check_input_settings(device=index, channels=channels, samplerate=rate, dtype="float32")
    except (sd.PortAudioError, ValueError) as exc:
        raise AudioSettingError(
            f"audio.samplerate {rate} is refused by {name!r} ({one_line(exc)}): remove "
            "audio.samplerate to capture at 48 kHz or the device's own rate"
        ) from None
