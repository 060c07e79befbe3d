"""Check that a TFLite runtime can load a model, in a short-lived child process.

A runtime that dies in native code (LiteRT 2.2.0 and 2.3.0 segfault while constructing the
``Interpreter`` for BirdNET on aarch64, issue 7) cannot be caught in-process: the daemon would
just vanish at start. So before a runtime is trusted, a child Python loads the model with it
and runs one inference on zeros; ``runtime: auto`` falls back to the next installed runtime if
the child dies, and says so in one line.

A successful probe is remembered in ``runtime-probe.json`` beside the model, keyed by runtime,
runtime version, model file (size and mtime), Python version, machine and CPU features, so the
probe is paid once per change, not on every start. Failures are not remembered: they are tried
again.

Run as ``python -m birdnet_edge.model.probe RUNTIME MODULE MODEL THREADS`` it is that child.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from birdnet_edge.errors import BirdnetEdgeError, ModelError
from birdnet_edge.model import runtime as rt
from birdnet_edge.model.files import missing_model

_LOGGER = logging.getLogger(__name__)

#: Seconds a probe may take before the child is killed (a Pi Zero 2 needs well under a minute).
DEFAULT_TIMEOUT = 180.0
#: File beside the model that remembers successful probes.
CACHE_FILE = "runtime-probe.json"
_CACHE_FORMAT = 1
#: Runtime name -> distribution whose version keys the cache.
DISTRIBUTIONS: dict[str, str] = {
    "litert": "ai-edge-litert",
    "tflite-runtime": "tflite-runtime",
}
_OK = "birdnet-edge-probe: OK"


@dataclass(frozen=True)
class ProbeResult:
    """What happened when ``runtime`` loaded ``model`` in a child process."""

    runtime: str
    model: Path
    ok: bool
    #: Why it failed, e.g. ``SIGSEGV``, ``exit 1: ValueError: ...``, ``no answer within 180 s``.
    detail: str = ""
    #: Version of the runtime's distribution, ``unknown`` without package metadata.
    version: str = "unknown"
    seconds: float = 0.0
    #: True when the answer came from ``runtime-probe.json``, not from a new child.
    cached: bool = False

    @property
    def crashed(self) -> bool:
        """The child was ended by a signal (a native crash, e.g. SIGSEGV or SIGABRT)."""
        return self.detail.startswith("SIG")

    def describe(self) -> str:
        """``runtime litert crashed loading MODEL (SIGSEGV)`` and the like."""
        if self.ok:
            return f"runtime {self.runtime} loads {self.model.name}"
        verb = "crashed" if self.crashed else "failed"
        if self.detail.startswith("no answer"):
            verb = "hung"
        return f"runtime {self.runtime} {verb} loading {self.model.name} ({self.detail})"


def runtime_version(name: str) -> str:
    """Installed version of runtime ``name`` from package metadata (no import)."""
    try:
        return metadata.version(DISTRIBUTIONS.get(name, name))
    except metadata.PackageNotFoundError:
        return "unknown"


def probe_runtime(
    name: str,
    model_path: Path,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    threads: int = 0,
    use_cache: bool = True,
) -> ProbeResult:
    """Load ``model_path`` with runtime ``name`` and run it once, in a child process.

    The child is the same interpreter (``sys.executable``) with the same environment; it is
    killed after ``timeout`` seconds. A runtime unknown to :data:`runtime.RUNTIME_MODULES`
    raises :class:`BirdnetEdgeError`; every other problem is a failed :class:`ProbeResult`.
    """
    if name not in rt.RUNTIME_MODULES:
        raise BirdnetEdgeError(
            f"unknown runtime {name!r}: use auto, {' or '.join(rt.RUNTIME_MODULES)}"
        )
    model_path = Path(model_path)
    version = runtime_version(name)
    key = _cache_key(name, version, model_path) if use_cache else None
    if key is not None and key in _read_cache(model_path):
        _LOGGER.debug("runtime %s %s was verified for %s before", name, version, model_path.name)
        return ProbeResult(name, model_path, ok=True, version=version, cached=True)
    command = [
        sys.executable,
        "-m",
        __name__,
        name,
        rt.RUNTIME_MODULES[name],
        str(model_path),
        str(threads),
    ]
    start = time.monotonic()
    detail = _run_child(command, timeout)
    seconds = time.monotonic() - start
    result = ProbeResult(name, model_path, not detail, detail, version, seconds)
    if result.ok:
        _LOGGER.debug(
            "runtime %s %s verified for %s in %.1f s", name, version, model_path.name, seconds
        )
        if key is not None:
            _remember(model_path, key, result)
    return result


def choose_runtime(
    preference: str,
    model_path: Path,
    *,
    threads: int = 0,
    timeout: float = DEFAULT_TIMEOUT,
    use_cache: bool = True,
) -> str:
    """The runtime to use for ``model_path``: ``preference``, or for ``auto`` the first that works.

    Every candidate is verified with :func:`probe_runtime` first. When ``auto`` has to skip a
    runtime, one warning says which and why; when nothing works, :class:`ModelError` says what
    each runtime did and what to install.
    """
    if preference == "auto":
        candidates = rt.available_runtimes()
        if not candidates:
            rt.resolve_runtime("auto")  # raises the "no runtime installed" error
    else:
        rt.resolve_runtime(preference)  # raises "unknown" or "not installed"
        candidates = [preference]
    if not Path(model_path).is_file():
        raise ModelError(missing_model(Path(model_path)))
    failed: list[ProbeResult] = []
    for name in candidates:
        result = probe_runtime(name, model_path, timeout, threads=threads, use_cache=use_cache)
        if result.ok:
            if failed:
                _LOGGER.warning("%s; using %s", "; ".join(f.describe() for f in failed), name)
            return name
        failed.append(result)
    raise ModelError(_no_runtime_message(preference, failed))


def _no_runtime_message(preference: str, failed: Sequence[ProbeResult]) -> str:
    what = "; ".join(f.describe() for f in failed)
    if any(f.detail.startswith("exit ") for f in failed):
        # A Python-level failure (e.g. a corrupt file) is the model's fault, not the runtime's.
        return f"{what}: check the model file, or reinstall it with `birdnet-edge model install`"
    others = [n for n in rt.available_runtimes() if n not in {f.runtime for f in failed}]
    fix = 'pip install "ai-edge-litert==2.1.6"'
    if preference != "auto":
        choices = "".join(f" or {n}" for n in others)
        fix = f"set model.runtime (or --runtime) to auto{choices}, or {fix}"
    else:
        fix = f'{fix} (or "tflite-runtime==2.14.0" "numpy<2" on Python 3.11 or older)'
    return f"{what}: {fix}"


def _run_child(command: Sequence[str], timeout: float) -> str:
    """Run the probe child; ``""`` when it printed OK, otherwise why not."""
    try:
        proc = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return f"cannot start {command[0]}: {exc.strerror or exc}"
    if proc.returncode < 0:
        try:
            return signal.Signals(-proc.returncode).name
        except ValueError:
            return f"SIG{-proc.returncode}"
    if proc.returncode == 0 and _OK in proc.stdout:
        return ""
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else "no message"
    return f"exit {proc.returncode}: {last[:200]}"


def _cache_key(name: str, version: str, model_path: Path) -> str | None:
    try:
        st = model_path.stat()
    except OSError:
        return None
    python = ".".join(str(n) for n in sys.version_info[:3])
    return "|".join(
        (
            name,
            version,
            f"{model_path.name}:{st.st_size}:{st.st_mtime_ns}",
            f"{sys.implementation.name}{python}",
            platform.machine(),
            _cpu_features(),
        )
    )


def _cpu_features() -> str:
    """The CPU's feature bits (Linux ``AT_HWCAP``, ``AT_HWCAP2``).

    Runtimes pick their kernels by these, so an SD card moved from a Pi 4 to a Pi 5 probes again.
    """
    if not sys.platform.startswith("linux"):
        return platform.processor()
    import ctypes

    try:
        getauxval = ctypes.CDLL(None).getauxval
    except (OSError, AttributeError):
        return ""
    getauxval.restype = ctypes.c_ulong
    getauxval.argtypes = [ctypes.c_ulong]
    return f"hwcap={getauxval(16):x}.{getauxval(26):x}"


def _read_cache(model_path: Path) -> dict[str, Any]:
    path = model_path.parent / CACHE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        _LOGGER.debug("ignoring unreadable %s (%s)", path, exc)
        return {}
    if not isinstance(data, dict) or data.get("format") != _CACHE_FORMAT:
        return {}
    entries = data.get("verified")
    return entries if isinstance(entries, dict) else {}


def _remember(model_path: Path, key: str, result: ProbeResult) -> None:
    """Add ``key`` to the cache file, atomically; a read-only model directory is not an error."""
    path = model_path.parent / CACHE_FILE
    entries = _read_cache(model_path)
    entries[key] = {
        "runtime": result.runtime,
        "version": result.version,
        "model": model_path.name,
        "seconds": round(result.seconds, 2),
        "checked": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    body = json.dumps({"format": _CACHE_FORMAT, "verified": entries}, indent=1, sort_keys=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{CACHE_FILE}.", dir=path.parent)
    except OSError as exc:  # e.g. a model directory owned by another user
        _LOGGER.debug("cannot remember the probe in %s (%s); it will run again", path, exc)
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        _LOGGER.debug("cannot remember the probe in %s (%s); it will run again", path, exc)


def _child_main(argv: Sequence[str]) -> int:
    """The child: load the model with the runtime, invoke it once on zeros, print OK."""
    name, module, model, threads = argv
    if sys.platform != "win32":
        import resource

        # A crash here is expected and reported by the parent: leave no core file behind.
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    import numpy as np

    # The parent says which module implements ``name`` (its registry is the one that counts).
    rt.RUNTIME_MODULES[name] = module
    try:
        loaded = rt.TFLiteModel(Path(model), name, int(threads))
        out = loaded.predict(np.zeros((1, loaded.input_size), dtype=np.float32))
    except BirdnetEdgeError as exc:
        print(exc, file=sys.stderr)
        return 1
    if not np.all(np.isfinite(out)):
        print(f"{name} gave non-finite outputs on silence", file=sys.stderr)
        return 1
    print(f"{_OK} {name} {out.shape[-1]} outputs")
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
