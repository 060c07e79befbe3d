"""Shared fixtures: the reference data, the installed model, and a CLI runner.

``BIRDNET_EDGE_TEST_DATA`` points at the shared data folder (default ``../shared/data`` from the
repository root); ``BIRDNET_EDGE_MODEL_DIR`` at an installed model (default: the user's data
directory). Tests that need either skip with the reason when it is absent.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from birdnet_edge.model.files import ModelPaths
from birdnet_edge.model.install import verified

REPO = Path(__file__).resolve().parent.parent

pytest_plugins = (
    "tests.mixing",  # `speech`: espeak-ng's voice, to mix into recordings
    "tests.pulse",  # the `pulse` fixture: a real PulseAudio null sink
    "tests.storage",  # `tiny_fs`: a small real file system to fill or remount read-only
    "tests.broker",  # `broker`, `broker_factory`: a real Mosquitto broker
)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = Path(os.environ.get("BIRDNET_EDGE_TEST_DATA", REPO.parent / "shared" / "data"))
    if not (path / "soundscape.flac").is_file():
        pytest.skip(f"reference data not found in {path} (set BIRDNET_EDGE_TEST_DATA)")
    return path


@pytest.fixture(scope="session")
def soundscape(data_dir: Path) -> Path:
    return data_dir / "soundscape.flac"


@pytest.fixture(scope="session")
def model_dir() -> Path:
    path = ModelPaths.at(
        Path(os.environ["BIRDNET_EDGE_MODEL_DIR"])
        if "BIRDNET_EDGE_MODEL_DIR" in os.environ
        else None
    ).dir
    if not all(verified(path).values()):
        pytest.skip(
            f"BirdNET model not installed in {path}: run `birdnet-edge model install` "
            "(or set BIRDNET_EDGE_MODEL_DIR)"
        )
    return path


@contextlib.contextmanager
def local_time_zone(zone: str) -> Iterator[None]:
    """Make ``zone`` this process's local time zone (``TZ``) for the duration."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


def run_cli(
    args: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m birdnet_edge ARGS`` as a user would; returns the finished process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "birdnet_edge", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        check=False,
    )
