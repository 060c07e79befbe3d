"""The runtime probe: a runtime that dies in native code is skipped with one line, not trusted.

The crashing and hanging runtimes are real importable packages written to a temporary folder,
registered in ``RUNTIME_MODULES`` as a third runtime: the probe child imports them exactly as it
imports LiteRT, and their ``Interpreter`` really segfaults (reads address 0) or really hangs.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
from importlib import metadata
from pathlib import Path

import pytest

from birdnet_edge.errors import BirdnetEdgeError, ModelError
from birdnet_edge.model import runtime as rt
from birdnet_edge.model.files import AUDIO_MODEL
from birdnet_edge.model.probe import CACHE_FILE, ProbeResult, choose_runtime, probe_runtime

FAKE_INTERPRETERS = {
    # Like LiteRT 2.3.0 on aarch64: a segmentation fault while constructing the Interpreter.
    "segv": "import ctypes\n\n\nclass Interpreter:\n"
    "    def __init__(self, **kwargs):\n        ctypes.string_at(0)\n",
    "hang": "import time\n\n\nclass Interpreter:\n"
    "    def __init__(self, **kwargs):\n        time.sleep(120)\n",
}


@pytest.fixture
def fake_runtimes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Register runtimes ``segv`` and ``hang`` ahead of the real ones (parent and child)."""
    root = tmp_path / "fake_site"
    modules = {}
    for name, code in FAKE_INTERPRETERS.items():
        package = root / f"birdnet_edge_test_{name}_rt"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "interpreter.py").write_text(code)
        modules[name] = f"{package.name}.interpreter"
    monkeypatch.syspath_prepend(str(root))
    child_path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)
    monkeypatch.setenv("PYTHONPATH", child_path)
    monkeypatch.setattr(rt, "RUNTIME_MODULES", {**modules, **rt.RUNTIME_MODULES})
    return modules


@pytest.fixture
def model(model_dir: Path, tmp_path: Path) -> Path:
    """The installed FP32 model, linked into a folder of its own (the probe cache goes there)."""
    folder = tmp_path / "models"
    folder.mkdir()
    target = folder / AUDIO_MODEL
    try:
        os.link(model_dir / AUDIO_MODEL, target)
    except OSError:  # another file system
        target.write_bytes((model_dir / AUDIO_MODEL).read_bytes())
    return target


#: The smallest file that passes the structural check: root offset 16, identifier, a vtable
#: with no fields at 8, and the root table at 16 pointing back to it.
EMPTY_TFLITE = struct.pack("<I4sHHIi", 16, b"TFL3", 4, 4, 0, 8)


@pytest.fixture
def dummy(tmp_path: Path) -> Path:
    """A well-formed but empty model for the fake runtimes, which never read it."""
    path = tmp_path / "dummy" / "model.tflite"
    path.parent.mkdir()
    path.write_bytes(EMPTY_TFLITE)
    return path


@pytest.fixture
def litert() -> None:
    pytest.importorskip("ai_edge_litert")


@pytest.mark.model
@pytest.mark.usefixtures("litert")
def test_auto_skips_a_crashing_runtime_with_one_line(
    fake_runtimes: dict[str, str], model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rt.RUNTIME_MODULES.pop("hang")
    assert rt.available_runtimes()[:2] == ["segv", "litert"]

    with caplog.at_level(logging.DEBUG, logger="birdnet_edge"):
        chosen = choose_runtime("auto", model, timeout=120)

    assert chosen == "litert"
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        f"runtime segv crashed loading {AUDIO_MODEL} (SIGSEGV); using litert"
    ]


def test_crash_is_reported_with_the_signal_and_not_cached(
    fake_runtimes: dict[str, str], dummy: Path
) -> None:
    first = probe_runtime("segv", dummy, timeout=120)
    second = probe_runtime("segv", dummy, timeout=120)

    assert (first.ok, first.detail, first.crashed) == (False, "SIGSEGV", True)
    assert first.describe() == "runtime segv crashed loading model.tflite (SIGSEGV)"
    assert (second.ok, second.cached) == (False, False)
    assert not (dummy.parent / CACHE_FILE).exists()
    assert not list(Path.cwd().glob("*.core"))


def test_an_explicit_runtime_that_crashes_is_a_one_line_error(
    fake_runtimes: dict[str, str], dummy: Path
) -> None:
    rt.RUNTIME_MODULES.pop("hang")
    with pytest.raises(ModelError) as err:
        choose_runtime("segv", dummy, timeout=120)

    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("runtime segv crashed loading model.tflite (SIGSEGV): ")
    others = "".join(f" or {n}" for n in rt.available_runtimes() if n != "segv")
    assert f"set model.runtime (or --runtime) to auto{others}, or " in message
    assert 'pip install "ai-edge-litert==2.1.6"' in message


def test_a_runtime_that_hangs_is_killed(fake_runtimes: dict[str, str], dummy: Path) -> None:
    result = probe_runtime("hang", dummy, timeout=3)

    assert (result.ok, result.crashed) == (False, False)
    assert result.detail == "no answer within 3 s"
    assert result.describe() == "runtime hang hung loading model.tflite (no answer within 3 s)"


def test_when_every_runtime_crashes_auto_says_what_to_install(
    fake_runtimes: dict[str, str], dummy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rt, "RUNTIME_MODULES", {"segv": fake_runtimes["segv"]})

    with pytest.raises(ModelError, match=r"^runtime segv crashed .*\(SIGSEGV\): pip install"):
        choose_runtime("auto", dummy, timeout=120)


@pytest.mark.model
@pytest.mark.usefixtures("litert")
def test_real_litert_probe_passes_and_is_remembered(model: Path) -> None:
    first = probe_runtime("litert", model, timeout=120)
    assert first.ok, first.detail
    assert (first.detail, first.cached) == ("", False)
    assert first.version == metadata.version("ai-edge-litert")
    assert (model.parent / CACHE_FILE).is_file()

    second = probe_runtime("litert", model, timeout=120)
    assert (second.ok, second.cached) == (True, True)

    replacement = model.with_name("new.tflite")  # as `model install` replaces a file
    shutil.copyfile(model, replacement)
    replacement.replace(model)
    third = probe_runtime("litert", model, timeout=120)
    assert (third.ok, third.cached) == (True, False)

    assert choose_runtime("litert", model) == "litert"


@pytest.mark.usefixtures("litert")
def test_a_corrupt_model_fails_as_a_model_problem(tmp_path: Path) -> None:
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"this is not a flatbuffer" * 100)

    result = probe_runtime("litert", bad, timeout=120)
    assert (result.ok, result.crashed) == (False, False)
    assert result.detail.startswith("exit 1: model file ")
    assert "cannot be loaded" in result.detail
    with pytest.raises(ModelError, match="check the model file"):
        choose_runtime("auto", bad, timeout=120)


def test_unknown_and_missing_are_refused_before_any_child(tmp_path: Path) -> None:
    with pytest.raises(BirdnetEdgeError, match="unknown runtime 'onnx'"):
        probe_runtime("onnx", tmp_path / "m.tflite")
    with pytest.raises(BirdnetEdgeError, match="unknown runtime 'onnx'"):
        choose_runtime("onnx", tmp_path / "m.tflite")
    if rt.available_runtimes():
        with pytest.raises(ModelError, match="missing: run `birdnet-edge model install`"):
            choose_runtime("auto", tmp_path / AUDIO_MODEL)
        with pytest.raises(ModelError, match=r"missing: install it with .* --from FILE"):
            choose_runtime("auto", tmp_path / "m.tflite")


def test_describe_names_runtime_model_and_reason() -> None:
    ok = ProbeResult("litert", Path("/m/a.tflite"), ok=True)
    failed = ProbeResult("litert", Path("/m/a.tflite"), ok=False, detail="exit 1: boom")
    assert ok.describe() == "runtime litert loads a.tflite"
    assert failed.describe() == "runtime litert failed loading a.tflite (exit 1: boom)"
    assert not failed.crashed
