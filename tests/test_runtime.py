"""The runtime layer: model file pages can be released after packing, with identical scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from birdnet_edge.bench import rss_mb
from birdnet_edge.config import Config, DatabaseConfig, ModelConfig, MQTTConfig
from birdnet_edge.daemon.memory import mapped_mb
from birdnet_edge.daemon.service import Daemon, RunOptions
from birdnet_edge.model.birdnet import Classifier
from birdnet_edge.model.files import AUDIO_MODEL


@pytest.mark.model
def test_releasing_model_pages_keeps_the_scores(model_dir: Path) -> None:
    classifier = Classifier(model_dir / AUDIO_MODEL, threads=1)
    x = np.random.default_rng(3).normal(0, 0.1, (2, 144_000)).astype(np.float32)
    before = classifier.logits(x)
    rss = rss_mb()
    released = classifier.model.release_file_pages()
    assert released >= (model_dir / AUDIO_MODEL).stat().st_size * 0.9  # the whole mapping
    assert rss_mb() < rss - 20  # most of the 52 MB file was resident and is no longer
    np.testing.assert_array_equal(classifier.logits(x), before)


@pytest.mark.model
def test_the_started_daemon_keeps_the_model_file_released(
    model_dir: Path, soundscape: Path, tmp_path: Path
) -> None:
    # Everything the daemon does after releasing the pages (its detection context reads the
    # model's precision, for one) must not read the file's tensors back in: with the original
    # FP32 model that was 20 MB of RSS, over the issue-8 budget.
    cfg = Config(
        model=ModelConfig(dir=model_dir, file=AUDIO_MODEL, threads=1),
        database=DatabaseConfig(path=tmp_path / "detections.db"),
        mqtt=MQTTConfig(enabled=False),
    )
    daemon = Daemon(cfg, RunOptions(input_file=soundscape, console=False))
    try:
        model = daemon.detector.classifier.model
        assert model.precision == "FP32"
        maps = Path("/proc/self/maps").read_text()
        assert str(model.path.resolve()) in maps  # the file is mapped: its pages could count
        assert mapped_mb(model.path) < 4, "the model file's pages were read back after release"
    finally:
        daemon.sqlite.close()
