"""A real PortAudio capture stream: PulseAudio null sink -> ALSA pulse device -> the daemon."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.pulse import PulseServer

pytestmark = [pytest.mark.model, pytest.mark.slow]


class Daemon:
    """``birdnet-edge run`` as a subprocess, its stdout and stderr collected by threads."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "birdnet_edge", "run", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._collect, args=(stream, lines), daemon=True).start()

    @staticmethod
    def _collect(stream: object, lines: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.append(line)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.err + self.out):
                return
            assert self.proc.poll() is None, "".join(self.err)
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not seen in time:\n{''.join(self.err)}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=10)


#: Seconds of silence before each played excerpt. The null sink's monitor (the test's
#: "microphone") loses the head of every new playback: PulseAudio mixes a new stream in at once
#: by rewinding the sink, the monitor cannot take back the silence it already sent, so it drops
#: as much of the new audio: measured 55 ms with 0.1 s capture periods, 0.26 s with 0.5 s ones,
#: and a whole period when the playback starts as the capture stream opens. A microphone's
#: audio never restarts; a playback already running when the capture opens loses nothing
#: (test_the_capture_is_sample_exact_from_its_first_block).
LEAD = 1.0


def _excerpt(soundscape: Path, tmp_path: Path, start: float, end: float) -> Path:
    audio, rate = soundfile.read(soundscape, dtype="float32")
    path = tmp_path / f"excerpt_{start:g}_{end:g}.wav"
    lead = np.zeros(int(LEAD * rate), dtype=np.float32)
    soundfile.write(path, np.concatenate([lead, audio[int(start * rate) : int(end * rate)]]), rate)
    return path


def _config(tmp_path: Path, model_dir: Path, data_dir: Path, rate: int | None = None) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"model: {{dir: {model_dir}}}\n"
        f"audio: {{device: pulse, stall_seconds: 2, samplerate: {rate or 'null'}}}\n"
        "analysis: {min_confidence: 0.3}\n"
        f"filters: {{species_list: {data_dir}/bna-2.4-expected/species_list.txt}}\n"
    )
    return config


def _species(lines: list[str]) -> set[str]:
    return {line.split(" ", 2)[2].rsplit(" (", 1)[0] for line in lines if "(" in line}


@pytest.mark.parametrize("rate", [None, 44_100], ids=["48kHz", "44.1kHz-resampled"])
def test_live_microphone_stream_detects_the_played_birds(
    pulse: PulseServer,
    soundscape: Path,
    model_dir: Path,
    data_dir: Path,
    tmp_path: Path,
    rate: int | None,
) -> None:
    clip = _excerpt(soundscape, tmp_path, 0, 24)  # 24 s of real-time audio
    daemon = Daemon(["-c", str(_config(tmp_path, model_dir, data_dir, rate))], pulse.env)
    try:
        daemon.wait_for(f"listening on 'pulse' at {rate or 48000} Hz", timeout=60)
        pulse.play(clip).wait(timeout=60)
        time.sleep(4)  # the last window closes 3 s after the end of the audio
    finally:
        assert daemon.stop() == 0
    heard = _species(daemon.out)
    # BirdNET-Analyzer finds these three in the first 24 s at >= 0.4; live windows are not
    # aligned with the file, so only the clear calls are required.
    assert {"Black-capped Chickadee", "House Finch", "Blue Jay"} <= heard, daemon.out
    species_list = (data_dir / "bna-2.4-expected" / "species_list.txt").read_text()
    assert all(name in species_list for name in heard)


def test_device_loss_and_return(
    pulse: PulseServer, soundscape: Path, model_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    clip = _excerpt(soundscape, tmp_path, 0, 6)
    daemon = Daemon(["-c", str(_config(tmp_path, model_dir, data_dir))], pulse.env)
    try:
        daemon.wait_for("listening on 'pulse'", timeout=60)
        pulse.play(clip).wait(timeout=30)
        daemon.wait_for("Black-capped Chickadee", timeout=15)
        pulse.stop()  # the sound server (the "microphone") disappears
        daemon.wait_for("stopped delivering audio", timeout=30)
        time.sleep(2)
        assert daemon.proc.poll() is None  # still running
        pulse.start()
        daemon.wait_for("is back: listening again", timeout=60)
        before = len(daemon.out)
        pulse.play(clip).wait(timeout=30)
        deadline = time.monotonic() + 15
        while len(daemon.out) == before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any("Black-capped Chickadee" in line for line in daemon.out[before:]), daemon.out
    finally:
        assert daemon.stop() == 0


def test_a_setting_the_device_refuses_is_named_without_the_plug_in_hint(
    pulse: PulseServer, model_dir: Path, tmp_path: Path
) -> None:
    # (PulseAudio accepts every sample rate the config allows, so only the channel is tried.)
    message = "audio.channel 99 does not exist on 'pulse'"
    config = tmp_path / "config.yaml"
    config.write_text(f"model: {{dir: {model_dir}}}\naudio: {{device: pulse, channel: 99}}\n")
    daemon = Daemon(["-c", str(config)], pulse.env)
    try:
        daemon.wait_for(message, timeout=60)
        line = next(line for line in daemon.err if message in line)
        assert "plug in the microphone" not in line, line
        assert "retrying in the background" in line
    finally:
        assert daemon.stop() == 0


def test_missing_device_at_start_keeps_the_daemon_up(model_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"model: {{dir: {model_dir}}}\naudio: {{device: no-such-microphone}}\n")
    daemon = Daemon(["-c", str(config)], dict(os.environ))
    try:
        daemon.wait_for("no input device matches audio.device 'no-such-microphone'", timeout=60)
        time.sleep(3)
        assert daemon.proc.poll() is None
        errors = [line for line in daemon.err if "no-such-microphone" in line]
        assert len(errors) == 1  # one clear line, not one per retry
    finally:
        assert daemon.stop() == 0


def test_devices_lists_inputs_and_marks_the_configured_one(
    pulse: PulseServer, tmp_path: Path
) -> None:
    from tests.conftest import run_cli

    config = tmp_path / "config.yaml"
    config.write_text("audio: {device: puls}\n")  # a name substring
    proc = run_cli(["devices", "-c", str(config)], env=pulse.env)
    assert proc.returncode == 0, proc.stderr
    marked = [line for line in proc.stdout.splitlines() if line.startswith("*")]
    assert len(marked) == 1
    assert " pulse " in marked[0]
    assert "ch, " in marked[0]
    assert " Hz)" in marked[0]
    config.write_text("audio: {device: no-such-device}\n")
    none = run_cli(["devices", "-c", str(config)], env=pulse.env)
    assert none.returncode == 0
    assert not [line for line in none.stdout.splitlines() if line.startswith("*")]


# -- the sample clock of a live stream, and a replug ---------------------------------------------


def _tone_clip(tmp_path: Path, lead: float) -> Path:
    """``lead`` s of silence, then a loud 1 kHz tone for 0.5 s: an onset to find in the ring."""
    rate = 48_000
    t = np.arange(int(0.5 * rate)) / rate
    clip = np.concatenate(
        [np.zeros(int(lead * rate)), 0.5 * np.sin(2 * np.pi * 1000 * t), np.zeros(rate // 2)]
    ).astype(np.float32)
    path = tmp_path / f"tone_{lead:g}.wav"
    soundfile.write(path, clip, rate)
    return path


class _Capture:
    """A real MicrophoneSource on the test's PulseAudio device, polled like the pipeline does."""

    def __init__(self, pulse: PulseServer, monkeypatch: pytest.MonkeyPatch) -> None:
        from birdnet_edge.audio.microphone import MicrophoneSource
        from birdnet_edge.audio.ring import RingBuffer

        for key in ("XDG_RUNTIME_DIR", "PULSE_SOURCE", "HOME"):
            monkeypatch.setenv(key, pulse.env[key])
        self.ring = RingBuffer(48_000 * 60)
        self.source = MicrophoneSource(self.ring, device="pulse", stall_seconds=2.0)
        self.source.start()

    def poll_until(self, condition: Callable[[], object], timeout: float) -> float:
        """Poll every 20 ms until ``condition()``; returns the seconds it took."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            self.source.poll()
            if condition():
                return time.monotonic() - t0
            time.sleep(0.02)
        raise AssertionError(f"not within {timeout} s")

    def stamp_error(self, pulse: PulseServer, clip: Path, lead: float, after: int) -> float:
        """Play ``clip`` and return how far the clock's stamp of the tone's first sample is
        from when it was played (the clip's start plus ``lead``)."""
        played = time.time()
        player = pulse.play(clip)
        self.poll_until(lambda: player.poll() is not None, timeout=30)
        self.poll_until(lambda: self.ring.written > after, timeout=5)
        audio = np.zeros(self.ring.written - after, dtype=np.float32)
        assert self.ring.read(after, audio)
        loud = np.flatnonzero(np.abs(audio) > 0.1)
        assert len(loud), "the tone did not arrive"
        onset = after + int(loud[0])
        return self.source.clock.time_of(onset) - (played + lead)

    def stop(self) -> None:
        self.source.stop()


def test_live_timestamps_are_right_from_the_first_window(
    pulse: PulseServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    capture = _Capture(pulse, monkeypatch)
    try:
        capture.poll_until(lambda: capture.source.running, timeout=30)  # audio flows
        # Within the first seconds after opening (the stamps were 1.3-2 s early for a minute).
        error = capture.stamp_error(pulse, _tone_clip(tmp_path, 1.0), 1.0, capture.ring.written)
    finally:
        capture.stop()
    # PulseAudio starts a playback with some 50 ms of zeros; blocks are 0.1 s.
    assert abs(error) < 0.25, f"the tone is stamped {error:+.2f} s off"


def test_a_replugged_microphone_is_back_within_a_second_and_said_missing_once(
    pulse: PulseServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from birdnet_edge.audio.microphone import MicState

    caplog.set_level(logging.DEBUG, logger="birdnet_edge.audio")
    capture = _Capture(pulse, monkeypatch)
    source = capture.source

    def state() -> MicState:  # a call each time: the state changes under the test
        return source.state

    try:
        capture.poll_until(lambda: source.running, timeout=30)
        pulse.unload_sink()  # the "microphone" is unplugged
        capture.poll_until(lambda: not source.running, timeout=30)
        with contextlib.suppress(AssertionError):  # an outage long enough for a backoff to 8 s
            capture.poll_until(lambda: False, timeout=12)
        assert state() is MicState.MISSING
        outage = [r for r in caplog.records if r.levelno >= logging.INFO]
        reopens = source.stats.reopens
        pulse.load_sink()  # plugged in again
        reopened = capture.poll_until(lambda: source.stats.reopens > reopens, timeout=30)
        capture.poll_until(lambda: source.running, timeout=30)
        assert state() is MicState.LISTENING
        error = capture.stamp_error(pulse, _tone_clip(tmp_path, 1.0), 1.0, capture.ring.written)
    finally:
        capture.stop()
    assert state() is MicState.STOPPED
    # Reopened within a second (it was up to 8 s); PulseAudio then takes about a second to
    # send the first block, which is stamped with its capture time (checked below).
    assert reopened < 1.0, f"reopened {reopened:.1f} s after the device returned"
    said = [r.getMessage() for r in outage]
    assert not [m for m in said if "refuses 48000 Hz" in m], said
    errors = [r for r in outage if r.levelno >= logging.ERROR]
    assert len(errors) == 1, said  # one line: it stopped delivering audio; no line per retry
    assert abs(error) < 0.25, f"after the replug the tone is stamped {error:+.2f} s off"


def test_the_capture_is_sample_exact_from_its_first_block(
    pulse: PulseServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Audio already flowing when the stream opens, as from a microphone: every sample in the
    # ring, from the first block on, is the played one, in order, with nothing lost or doubled.
    rate = 48_000
    played = np.random.default_rng(7).integers(-8000, 8000, size=6 * rate, dtype=np.int16)
    played[played == 0] = 1  # zeros are the sink's own silence
    clip = tmp_path / "noise.wav"
    soundfile.write(clip, played, rate, subtype="PCM_16")
    player = pulse.play(clip)
    time.sleep(0.5)  # playing before the capture opens
    capture = _Capture(pulse, monkeypatch)
    try:
        capture.poll_until(lambda: player.poll() is not None, timeout=30)
        capture.poll_until(lambda: capture.ring.written > 4 * rate, timeout=5)
        got_f = np.zeros(capture.ring.written, dtype=np.float32)
        assert capture.ring.read(0, got_f)
    finally:
        capture.stop()
    got = np.round(got_f * 32768).astype(np.int16)
    sound = np.flatnonzero(got)
    assert len(sound), "nothing of the playback arrived"
    first = int(sound[0])
    # Only the sink's silence before the playback began may precede it, not a lost block.
    assert first < rate, f"the playback arrives {first / rate:.2f} s into the stream"
    key = got[first : first + 8]
    starts = np.flatnonzero(
        np.all(np.lib.stride_tricks.sliding_window_view(played, 8) == key, axis=1)
    )
    assert len(starts) == 1, "the stream's first sound is not a stretch of the played audio"
    at = int(starts[0])
    n = min(len(played) - at, len(got) - first)
    assert n > 4 * rate, f"only {n / rate:.2f} s of the playback arrived"
    bad = np.flatnonzero(got[first : first + n] != played[at : at + n])
    assert not len(bad), f"{len(bad)} samples differ, the first {bad[0] / rate:.3f} s in"
