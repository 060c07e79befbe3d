"""Audio made for the tests: excerpts of the soundscape with speech or a siren mixed in."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from birdnet_edge.audio.decode import iter_audio
from birdnet_edge.audio.format import SAMPLE_RATE

SPEECH_AT = 15.0  # seconds into the excerpt


def excerpt(soundscape: Path, seconds: float) -> np.ndarray:
    return np.concatenate(list(iter_audio(soundscape)))[: round(seconds * SAMPLE_RATE)]


def mix(base: np.ndarray, sound: np.ndarray, at: float, gain: float) -> np.ndarray:
    out: np.ndarray = base.copy()
    start = round(at * SAMPLE_RATE)
    part = sound[: len(out) - start]
    out[start : start + len(part)] += gain * part / np.abs(part).max()
    return out


def write_wav(path: Path, audio: np.ndarray) -> Path:
    soundfile.write(path, audio, SAMPLE_RATE, subtype="FLOAT")
    return path


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt install espeak-ng)")
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    text = "Good morning. I think the blackbird is singing in the garden again, can you hear it?"
    subprocess.run(["espeak-ng", "-v", "en+f3", "-s", "130", "-w", str(path), text], check=True)
    audio: np.ndarray = np.concatenate(list(iter_audio(path)))
    return audio
