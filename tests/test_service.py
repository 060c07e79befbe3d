"""The daemon under a stand-in for systemd: readiness, watchdog, and SIGHUP reloads."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from birdnet_edge.config import AnalysisConfig, Config, DatabaseConfig, ModelConfig
from birdnet_edge.daemon.sd_notify import Notifier
from birdnet_edge.daemon.service import Daemon, RunOptions
from birdnet_edge.detect.detector import WindowClassifier
from birdnet_edge.detect.stack import load_detector
from birdnet_edge.model.runtime import FloatArray, TFLiteModel
from tests.broker import Broker, subscriber
from tests.test_notify import NotifyListener
from tests.waiting import wait_until

pytestmark = [pytest.mark.model, pytest.mark.slow]


def _messages(listener: NotifyListener, seconds: float) -> list[tuple[float, str]]:
    """Every datagram received during ``seconds``, with its arrival time."""
    got: list[tuple[float, str]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            got.append((time.monotonic(), listener.receive(timeout=left)))
        except TimeoutError:
            break
    return got


class _Hanging:
    """The model, whose invoke() hangs while ``hang`` is set, until ``release`` is."""

    def __init__(
        self, inner: WindowClassifier, hang: threading.Event, release: threading.Event
    ) -> None:
        self.inner, self.hang, self.release = inner, hang, release

    @property
    def model(self) -> TFLiteModel:
        return self.inner.model

    def logits(self, windows: FloatArray) -> FloatArray:
        if self.hang.is_set():
            self.release.wait(30)  # a hung invoke()
        return self.inner.logits(windows)


def test_ready_then_watchdog_and_silence_when_the_loop_hangs(
    soundscape: Path, model_dir: Path, tmp_path: Path
) -> None:
    listener = NotifyListener(str(tmp_path / "notify"))
    notifier = Notifier(listener.address, watchdog_usec=2_000_000)  # ping every 1 s
    cfg = Config(
        model=ModelConfig(dir=model_dir),
        analysis=AnalysisConfig(min_confidence=0.5),
        database=DatabaseConfig(path=tmp_path / "detections.db"),
    )
    hang = threading.Event()
    release = threading.Event()
    detector = load_detector(cfg)
    detector.classifier = _Hanging(detector.classifier, hang, release)
    daemon = Daemon(cfg, RunOptions(input_file=soundscape, console=False), notifier, detector)
    thread = threading.Thread(target=daemon.run)
    thread.start()
    try:
        first = _messages(listener, 8.0)
        texts = [m for _, m in first]
        ready = [i for i, m in enumerate(texts) if "READY=1" in m.splitlines()]
        assert ready, texts
        assert any("STATUS=listening" in m for m in texts)
        pings = [i for i, m in enumerate(texts) if m == "WATCHDOG=1"]
        assert len(pings) >= 4  # about one a second while windows are scored
        assert daemon.listener.stats.windows >= 1
        hang.set()  # the next invoke() hangs
        # The next window is due within 3 s; its invoke() hangs, and 5 s later (the shortest
        # staleness the daemon accepts) the heartbeat counts as stale.
        time.sleep(9.0)
        listener.pending()
        stuck = _messages(listener, 6.0)
        assert "WATCHDOG=1" not in [m for _, m in stuck]
    finally:
        release.set()
        daemon.stop_event.set()
        thread.join(15)
        listener.close()
    assert not thread.is_alive()


def _config(path: Path, model_dir: Path, min_conf: float | str) -> None:
    path.write_text(
        f"model: {{dir: {model_dir}}}\n"
        f"analysis: {{min_confidence: {min_conf}}}\n"
        f"database: {{path: {path.parent / 'detections.db'}}}\n"
    )


def test_sighup_applies_a_new_threshold_and_rejects_a_broken_config(
    soundscape: Path, model_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    _config(config, model_dir, 0.99)  # nothing in the recording scores this high
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "birdnet_edge",
            "run",
            "-c",
            str(config),
            "--input",
            str(soundscape),
            "--explain",  # a line a window: the proof that a window was scored
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out: list[str] = []
    err: list[str] = []
    for stream, lines in ((proc.stdout, out), (proc.stderr, err)):
        threading.Thread(target=lambda s=stream, ln=lines: ln.extend(s), daemon=True).start()

    def wait_for(lines: list[str], text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in lines):
            assert time.monotonic() < deadline, f"{text!r} not seen:\n{''.join(err)}"
            assert proc.poll() is None, "".join(err)
            time.sleep(0.1)

    try:
        wait_for(err, "ready in", 60)
        # The first window (Black-capped Chickadee 0.81) was scored, below 0.99: no detection.
        wait_for(err, "Black-capped Chickadee 0.81 below 0.99", 15)
        assert out == []
        _config(config, model_dir, 0.3)
        proc.send_signal(signal.SIGHUP)
        wait_for(err, "config reloaded", 10)
        wait_for(out, "House Finch", 15)  # 9-12 s scores 0.64: reported under the new value
        config.write_text("analysis: {min_confidence: lots}\n")
        proc.send_signal(signal.SIGHUP)
        wait_for(err, "config reload rejected, keeping the running config", 10)
        assert any("analysis.min_confidence: must be a number" in line for line in err)
        wait_for(out, "Blue Jay", 20)  # 18-21 s scores 0.43: the old config (0.3) still runs
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_reload_survives_any_broken_file_and_keeps_command_line_overrides(
    soundscape: Path, model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from birdnet_edge.cli.main import build_parser
    from birdnet_edge.cli.options import config_with

    caplog.set_level(logging.INFO)
    config = tmp_path / "config.yaml"
    config.write_text(f"database: {{path: {tmp_path / 'd.db'}}}\n")
    # The model directory comes from the command line only, as `run --model-dir` gives it.
    args = build_parser().parse_args(
        ["run", "-c", str(config), "--model-dir", str(model_dir), "--input", str(soundscape)]
    )
    cfg = config_with(args)
    daemon = Daemon(cfg, RunOptions(config_path=config, input_file=soundscape, console=False))
    try:
        before = daemon.detector.thresholds
        species = tmp_path / "species.txt"
        species.write_bytes(
            "Parus major_Kohlmeise\nSitta europaea_Kleiber \xe4\n".encode("latin-1")
        )
        config.write_text(
            f"database: {{path: {tmp_path / 'd.db'}}}\nfilters: {{species_list: {species}}}\n"
        )
        daemon.reload()  # not UTF-8: rejected, not a crash
        assert daemon.detector.thresholds is before
        assert "config reload rejected, keeping the running config" in caplog.text
        assert "is not UTF-8 text: save it as UTF-8" in caplog.text
        # A valid change with a location needs the range model: found through --model-dir.
        config.write_text(
            f"database: {{path: {tmp_path / 'd.db'}}}\n"
            "station: {latitude: 42.5, longitude: -76.45}\nanalysis: {min_confidence: 0.4}\n"
        )
        caplog.clear()
        daemon.reload()
        assert "config reloaded" in caplog.text, caplog.text
        assert "change only on restart" not in caplog.text
        assert daemon.detector.thresholds.min_confidence == 0.4
        assert daemon.detector.thresholds.allowed is not None  # the range filter is on
        assert daemon.cfg.model.dir == model_dir
        # Retention applies at once; another database file needs a restart.
        config.write_text(
            f"database: {{path: {tmp_path / 'other.db'}, retention_days: 30, max_size_mb: 9}}\n"
        )
        caplog.clear()
        daemon.reload()
        assert "config reloaded" in caplog.text, caplog.text
        assert "database.path settings change only on restart" in caplog.text
        assert (daemon.sqlite.retention_days, daemon.sqlite.max_size_mb) == (30, 9)
        assert daemon.cfg.database.path == tmp_path / "d.db"
    finally:
        daemon.sqlite.close()


@pytest.mark.model
def test_events_stored_nowhere_are_counted_when_the_daemon_stops(
    soundscape: Path, model_dir: Path, tiny_fs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from birdnet_edge.config import MQTTConfig
    from tests.broker import free_port
    from tests.storage import fill

    caplog.set_level(logging.INFO)
    cfg = Config(
        model=ModelConfig(dir=model_dir),
        analysis=AnalysisConfig(min_confidence=0.5, overlap=0.0),
        database=DatabaseConfig(path=tiny_fs / "detections.db"),
        mqtt=MQTTConfig(enabled=True, host="127.0.0.1", port=free_port()),  # no broker there
    )
    daemon = Daemon(cfg, RunOptions(input_file=soundscape, fast=True, console=False))
    fill(tiny_fs)  # the disk fills up once the daemon has started
    assert daemon.run() == 0
    lost = [
        r.getMessage() for r in caplog.records if "could not be stored anywhere" in r.getMessage()
    ]
    assert len(lost) == 1
    count = int(lost[0].split()[0])
    assert count == daemon.listener.stats.events > 0
    assert f"the disk at {tiny_fs / 'detections.db'} was not writable" in lost[0]


def test_reloading_mqtt_settings_swaps_the_publisher(
    soundscape: Path, model_dir: Path, tmp_path: Path, broker: Broker
) -> None:
    """A reload builds a new publisher and announcer and swaps the sinks in one step: what
    follows goes out under the new settings, an event in progress is not announced twice, and
    the old publisher stops following the log."""
    import dataclasses
    import json

    from birdnet_edge.config import load_config
    from birdnet_edge.detect.events import EventChange
    from tests.test_mqtt import event_id, make_event

    config = tmp_path / "config.yaml"

    def settings(prefix: str) -> None:
        config.write_text(
            f"database: {{path: {tmp_path / 'd.db'}}}\n"
            f"mqtt: {{enabled: true, host: {broker.host}, port: {broker.port}, "
            f"topic_prefix: {prefix}, discovery: {{enabled: false}}}}\n"
        )

    settings("before")
    cfg = dataclasses.replace(load_config(config), model=ModelConfig(dir=model_dir))
    daemon = Daemon(cfg, RunOptions(config_path=config, input_file=soundscape, console=False))
    assert daemon.mqtt is not None
    old = daemon.mqtt
    old.start()
    sink = daemon.listener.sink
    try:
        with subscriber(broker, ["before/detection", "after/detection"]) as sub:
            e = make_event(1)
            sink.handle(EventChange("opened", e))
            sub.wait_for(lambda ms: len(ms) >= 1)
            settings("after")
            daemon.reload()
            assert daemon.mqtt is not None
            assert daemon.mqtt is not old
            assert daemon.listener.sink is daemon.sinks is not sink
            grown = dataclasses.replace(e, windows=2)
            daemon.listener.sink.handle(EventChange("updated", grown))
            daemon.listener.sink.handle(
                EventChange("closed", dataclasses.replace(grown, closed=True))
            )
            daemon.listener.sink.handle(EventChange("opened", make_event(2)))
            sub.wait_for(lambda ms: any(event_id(2) in m.payload.decode() for m in ms))
            got = [(m.topic, json.loads(m.payload)) for m in sub.messages]
            assert [(t, m["id"], m["status"]) for t, m in got] == [
                ("before/detection", event_id(1), "open"),
                ("after/detection", event_id(1), "final"),  # not announced a second time
                ("after/detection", event_id(2), "open"),
            ]
            wait_until(lambda: old.state == "stopped", what="the old publisher stopped")
    finally:
        daemon.sinks.close()


def test_a_reload_applies_the_trust_filters(
    soundscape: Path, model_dir: Path, tmp_path: Path
) -> None:
    import dataclasses

    from birdnet_edge.config import load_config

    config = tmp_path / "config.yaml"
    config.write_text(f"database: {{path: {tmp_path / 'd.db'}}}\n")
    cfg = dataclasses.replace(load_config(config), model=ModelConfig(dir=model_dir))
    daemon = Daemon(cfg, RunOptions(config_path=config, input_file=soundscape, console=False))
    try:
        rules = daemon.detector.thresholds.sounds
        assert rules is not None
        assert not rules.drop_in_private
        assert daemon.confirm.windows("Turdus merula") == 1
        config.write_text(
            f"database: {{path: {tmp_path / 'd.db'}}}\n"
            "filters:\n  privacy: {drop_detections: true}\n"
            "  min_windows: {Eurasian Blackbird: 3}\n  thresholds: {House Sparrow: 0.9}\n"
            "  classes: [birds, frogs]\n"
        )
        daemon.reload()
        t = daemon.detector.thresholds
        assert t.sounds is not None
        assert t.sounds.drop_in_private
        assert t.per_label is not None
        sparrow = next(x.index for x in daemon.detector.labels if x.common == "House Sparrow")
        assert float(t.per_label[sparrow]) == pytest.approx(0.9)
        assert daemon.confirm.windows("Turdus merula") == 3
        assert daemon.tracker.confirm is daemon.confirm
        bullfrog = next(x.index for x in daemon.detector.labels if x.common == "American Bullfrog")
        assert t.allowed is not None
        assert t.allowed[bullfrog]
    finally:
        daemon.sinks.close()
