"""The runtime layer: model file pages can be released after packing, with identical scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from birdnet_edge.bench import rss_mb
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
