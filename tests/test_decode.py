"""Decoding files to 48 kHz mono float32: exactly libsndfile's samples, whatever the blocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from birdnet_edge.audio.decode import iter_audio
from tests.conftest import run_cli


def _decoded(path: Path, block_seconds: float = 10.0) -> np.ndarray:
    return np.concatenate(list(iter_audio(path, block_seconds=block_seconds)))


def test_16_bit_flac_gives_libsndfiles_own_floats(soundscape: Path) -> None:
    reference, rate = soundfile.read(str(soundscape), dtype="float32")
    assert rate == 48_000
    assert soundfile.info(str(soundscape)).subtype == "PCM_16"  # the int16 path
    got = _decoded(soundscape, block_seconds=1.0)
    assert got.dtype == np.float32
    assert np.array_equal(got, reference)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_stereo_files_are_averaged_exactly_as_libsndfile_reads_them(
    subtype: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(7)
    stereo = rng.uniform(-0.9, 0.9, (48_000 * 4 + 123, 2)).astype(np.float32)
    path = tmp_path / f"stereo-{subtype}.wav"
    soundfile.write(str(path), stereo, 48_000, subtype=subtype)
    stored = soundfile.read(str(path), dtype="float32")[0]
    expected = stored.mean(axis=1, dtype=np.float32)
    assert np.array_equal(_decoded(path, block_seconds=1.0), expected)
    assert np.array_equal(_decoded(path, block_seconds=0.7), expected)  # blocks leave no trace


def test_other_rates_are_resampled_to_48_khz_the_same_in_any_blocks(tmp_path: Path) -> None:
    t = np.arange(44_100 * 3) / 44_100
    path = tmp_path / "tone-44k.wav"
    soundfile.write(str(path), (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), 44_100)
    whole = _decoded(path)
    assert abs(len(whole) - 3 * 48_000) <= 1
    np.testing.assert_allclose(_decoded(path, block_seconds=0.5), whole, atol=1e-6)


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("folder", "is a folder: give the audio files in it"),
        ("/dev/zero", "is a character device, not an audio file"),
        ("missing.wav", "does not exist: check the path"),
    ],
)
@pytest.mark.parametrize("command", ["run", "analyze"])
def test_an_input_that_is_not_an_audio_file_is_named_for_what_it_is(
    tmp_path: Path, path: str, says: str, command: str
) -> None:
    (tmp_path / "folder").mkdir()
    target = path if path.startswith("/") else str(tmp_path / path)
    args = ["run", "--input", target, "--fast"] if command == "run" else ["analyze", target]
    # The input is checked first, before the model is looked for.
    if command == "analyze":
        args += ["--model-dir", str(tmp_path / "no-model")]
    proc = run_cli(args, env={"XDG_DATA_HOME": str(tmp_path / "no-data")})
    assert proc.returncode != 0
    (line,) = proc.stderr.strip().splitlines()
    assert says in line
    assert "does not exist" not in line or path == "missing.wav"


@pytest.mark.model
def test_a_truncated_file_is_scored_up_to_the_damage_then_reported(
    soundscape: Path, model_dir: Path, tmp_path: Path
) -> None:
    data = soundscape.read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) * 6 // 10])  # about 71 s of the 120 s survive
    config = tmp_path / "config.yaml"
    config.write_text(
        f"model: {{dir: {model_dir}}}\ndatabase: {{path: {tmp_path / 'd.db'}}}\n"
        "analysis: {overlap: 0, refine: {enabled: false}}\n"
    )
    scores = tmp_path / "scores.npz"
    proc = run_cli(["run", "-c", str(config), "--input", str(cut), "--fast", "--quiet",
                    "--scores-out", str(scores)])  # fmt: skip
    assert proc.returncode != 0
    (line,) = [x for x in proc.stderr.splitlines() if "error" in x]
    assert "is damaged or truncated: decoding stopped at" in line
    assert "the audio before it was analysed" in line
    starts = np.load(scores)["starts"] / 48_000
    assert starts.max() >= 66.0  # every window up to the damage was scored
