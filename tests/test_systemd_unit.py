"""The systemd unit: it verifies, scores <= 2.5 for exposure, and its sandbox runs the model.

``systemd-analyze`` works without systemd as PID 1. ``verify`` insists that ExecStart's binary
exists, so it checks a copy of the unit whose ExecStart points at a stub executable in a temp
directory; every other line is the shipped one. The sandbox test rebuilds the unit's seccomp
filters (SystemCallFilter=, MemoryDenyWriteExecute=, RestrictAddressFamilies=) with libseccomp,
the library systemd itself uses, and runs the model under them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import importlib.util
import mmap
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from birdnet_edge import paths
from birdnet_edge.model.runtime import RUNTIME_MODULES

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "birdnet-edge.service"
MAX_EXPOSURE = 2.5
VENV_BIN = "/opt/birdnet-edge/venv/bin/birdnet-edge"

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def unit_settings(text: str) -> list[tuple[str, str, str]]:
    """``(section, key, value)`` for every assignment, in order (keys may repeat)."""
    found: list[tuple[str, str, str]] = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.append((section, key.strip(), value.strip()))
    return found


def values(key: str, section: str = "Service") -> list[str]:
    return [v for s, k, v in unit_settings(UNIT.read_text()) if s == section and k == key]


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args], capture_output=True, text=True, timeout=60, check=False
    )


@needs_analyze
def test_unit_passes_verify(tmp_path: Path) -> None:
    stub = tmp_path / "birdnet-edge"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text = UNIT.read_text()
    assert f"ExecStart={VENV_BIN} " in text
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(f"ExecStart={VENV_BIN} ", f"ExecStart={stub} "))
    proc = analyze("verify", str(copy))
    # verify exits 0 even for settings it ignores (say, a Type= this systemd does not know);
    # it prints a line for each, so a clean unit prints nothing at all.
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout + proc.stderr == ""


@needs_analyze
def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt setting is reported."""
    copy = tmp_path / UNIT.name
    copy.write_text(
        UNIT.read_text()
        .replace(f"ExecStart={VENV_BIN} ", "ExecStart=/bin/true ")
        .replace("Type=notify\n", "Type=notfy\n")
    )
    proc = analyze("verify", str(copy))
    assert "notfy" in proc.stdout + proc.stderr


@needs_analyze
def test_security_exposure_is_ok() -> None:
    proc = analyze("security", "--offline=true", "--no-pager", str(UNIT))
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?) (\w+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    score = float(match.group(1))
    failing = [line for line in proc.stdout.splitlines() if line.startswith("✗")]
    assert score <= MAX_EXPOSURE, f"exposure {score} > {MAX_EXPOSURE}:\n" + "\n".join(failing)
    assert match.group(2) in ("OK", "SAFE", "PERFECT")
    # --threshold (tenths) makes systemd-analyze itself fail above the limit, as CI can use it.
    assert analyze("security", "--offline=true", "--threshold=25", str(UNIT)).returncode == 0


def test_unit_matches_the_daemons_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The directories systemd hands over are where the daemon looks by default."""
    exec_start = values("ExecStart")[0].split()
    assert exec_start[:2] == [VENV_BIN, "run"]
    config = Path(exec_start[exec_start.index("--config") + 1])
    (conf_dir,) = values("ConfigurationDirectory")
    (state_dir,) = values("StateDirectory")
    monkeypatch.setenv("CONFIGURATION_DIRECTORY", f"/etc/{conf_dir}")
    monkeypatch.setenv("STATE_DIRECTORY", f"/var/lib/{state_dir}")
    # `birdnet-edge log` run by hand looks where the service keeps them
    assert Path(f"/etc/{conf_dir}") == paths.SERVICE_CONFIG_DIR
    assert Path(f"/var/lib/{state_dir}") == paths.SERVICE_STATE_DIR
    assert paths.default_config_path() == config
    assert paths.default_model_dir() == Path("/var/lib/birdnet-edge/models")
    assert paths.default_state_dir() == Path("/var/lib/birdnet-edge")
    (credential,) = values("LoadCredential")
    assert credential == f"mqtt-password:{config.parent}/mqtt-password"
    assert values("Type") == ["notify"]
    assert values("WatchdogSec")
    assert values("Restart") == ["on-failure"]
    assert values("ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert values("SetCredential") == ["mqtt-password:\\n"]  # starts without a password file
    assert values("SupplementaryGroups") == ["audio"]
    assert values("DeviceAllow") == ["char-alsa rw"]


# ---- the unit's seccomp filters, rebuilt with libseccomp -------------------------------------

_ACT_ALLOW = 0x7FFF0000
_CMP_EQ = 4
_CMP_GE = 5
_CMP_MASKED_EQ = 7
_AF_MAX = 46  # one past the highest address family Linux defines
_SHM_EXEC = 0o100000


def _act_errno(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)


class _ArgCmp(ctypes.Structure):
    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


class Seccomp:
    """Just enough of libseccomp to rebuild the filters systemd installs for the unit."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("seccomp")
        if name is None:
            pytest.skip("libseccomp is not installed")
        self.lib = ctypes.CDLL(name, use_errno=True)
        self.lib.seccomp_init.restype = ctypes.c_void_p
        self.lib.seccomp_init.argtypes = (ctypes.c_uint32,)
        self.lib.seccomp_rule_add_array.argtypes = (
            ctypes.c_void_p,
            ctypes.c_uint32,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.POINTER(_ArgCmp),
        )
        self.lib.seccomp_load.argtypes = (ctypes.c_void_p,)
        self.lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
        self.filters: list[int] = []

    def new(self, default: int) -> int:
        ctx = self.lib.seccomp_init(default)
        assert ctx
        self.filters.append(ctx)
        return int(ctx)

    def rule(self, ctx: int, action: int, syscall: str, *cmps: tuple[int, int, int]) -> None:
        nr = self.lib.seccomp_syscall_resolve_name(syscall.encode())
        if nr < 0:
            return  # not a system call on this architecture
        array = (_ArgCmp * max(1, len(cmps)))(*(_ArgCmp(a, op, d, d) for a, op, d in cmps))
        if cmps and cmps[0][1] == _CMP_MASKED_EQ:
            array[0].datum_b = cmps[0][2]
        self.lib.seccomp_rule_add_array(ctx, action, nr, len(cmps), array)

    def load_all(self) -> None:
        """Install every filter in this (forked) process; they survive execve.

        The first filter made (the system call allow list) goes in last, as systemd does it:
        once it is in place, seccomp() itself is refused.
        """
        for ctx in reversed(self.filters):
            if self.lib.seccomp_load(ctx) != 0:
                os._exit(97)


def _filter_set(names: Iterable[str], cache: dict[str, set[str]]) -> set[str]:
    """System call names for ``@group``s and plain names, groups expanded by systemd-analyze."""
    result: set[str] = set()
    for name in names:
        if not name.startswith("@"):
            result.add(name)
            continue
        if name not in cache:
            proc = analyze("syscall-filter", name)
            assert proc.returncode == 0, proc.stderr
            members = [
                line.strip()
                for line in proc.stdout.splitlines()
                if line.startswith("    ") and not line.strip().startswith("#")
            ]
            cache[name] = _filter_set(members, cache)
        result |= cache[name]
    return result


def unit_seccomp() -> Seccomp:
    """The unit's SystemCallFilter=, MemoryDenyWriteExecute= and RestrictAddressFamilies=."""
    sc = Seccomp()
    cache: dict[str, set[str]] = {}
    allowed: set[str] = set()
    for value in values("SystemCallFilter"):
        if value.startswith("~"):
            allowed -= _filter_set(value[1:].split(), cache)
        else:
            allowed |= _filter_set(value.split(), cache)
    assert "mmap" in allowed
    assert "reboot" not in allowed
    (errno_name,) = values("SystemCallErrorNumber")
    ctx = sc.new(_act_errno(getattr(errno, errno_name)))
    for name in sorted(allowed):
        sc.rule(ctx, _ACT_ALLOW, name)

    if values("MemoryDenyWriteExecute") == ["yes"]:  # as systemd's seccomp-util.c does it
        ctx = sc.new(_ACT_ALLOW)
        wx = mmap.PROT_WRITE | mmap.PROT_EXEC
        sc.rule(ctx, _act_errno(errno.EPERM), "mmap", (2, _CMP_MASKED_EQ, wx))
        for name in ("mprotect", "pkey_mprotect"):
            sc.rule(ctx, _act_errno(errno.EPERM), name, (2, _CMP_MASKED_EQ, mmap.PROT_EXEC))
        sc.rule(ctx, _act_errno(errno.EPERM), "shmat", (2, _CMP_MASKED_EQ, _SHM_EXEC))

    (families,) = values("RestrictAddressFamilies")
    keep = {int(getattr(socket, f)) for f in families.split()}
    ctx = sc.new(_ACT_ALLOW)
    refuse = _act_errno(errno.EAFNOSUPPORT)
    for family in range(_AF_MAX):
        if family not in keep:
            sc.rule(ctx, refuse, "socket", (0, _CMP_EQ, family))
    sc.rule(ctx, refuse, "socket", (0, _CMP_GE, _AF_MAX))
    return sc


def run_sandboxed(
    args: list[str], loader: Callable[[], None], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
        preexec_fn=loader,  # runs in the child between fork and exec
    )


@pytest.fixture(scope="module")
def sandbox() -> Seccomp:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    sc = unit_seccomp()
    probe = run_sandboxed([sys.executable, "-c", "pass"], sc.load_all, timeout=60)
    if probe.returncode == 97:
        pytest.skip("this kernel or container does not allow loading seccomp filters")
    return sc


_CONTROL = """
import errno, mmap, os, socket
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    print("wx-mapped")
except PermissionError:
    print("wx-refused")
try:
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    print("packet-opened")
except OSError as exc:
    print("packet-refused" if exc.errno == errno.EAFNOSUPPORT else exc)
try:
    os.setpriority(os.PRIO_PROCESS, 0, 1)  # @resources
    print("renice-done")
except PermissionError:
    print("renice-refused")
socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).close()
print("sockets-ok")
"""


def test_sandbox_refuses_what_the_unit_forbids(sandbox: Seccomp) -> None:
    """The rebuilt filters bite, so the test below proves something."""
    proc = run_sandboxed([sys.executable, "-c", _CONTROL], sandbox.load_all, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["wx-refused", "packet-refused", "renice-refused", "sockets-ok"]


_NATIVE = """
import sqlite3, sys
import numpy, soundfile, soxr, sounddevice, paho.mqtt.client
sounddevice.query_devices()
db = sqlite3.connect(sys.argv[1])
db.execute("pragma journal_mode=wal")
db.execute("create table t (x)")
db.commit()
print("native-ok")
"""


def test_native_libraries_load_in_the_sandbox(sandbox: Seccomp, tmp_path: Path) -> None:
    proc = run_sandboxed(
        [sys.executable, "-c", _NATIVE, str(tmp_path / "t.db")], sandbox.load_all, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("native-ok")


@pytest.mark.model
@pytest.mark.parametrize("runtime", list(RUNTIME_MODULES))
def test_model_scores_the_same_in_the_sandbox(
    sandbox: Seccomp, model_dir: Path, soundscape: Path, tmp_path: Path, runtime: str
) -> None:
    """LiteRT / tflite-runtime tolerate MemoryDenyWriteExecute and the system call filter."""
    import soundfile as sf

    if importlib.util.find_spec(RUNTIME_MODULES[runtime].split(".")[0]) is None:
        pytest.skip(f"{runtime} is not installed")

    clip = tmp_path / "clip.wav"
    audio, rate = sf.read(soundscape, frames=12 * 48000, dtype="float32")
    sf.write(clip, audio, rate)
    args = [
        sys.executable, "-m", "birdnet_edge", "analyze", str(clip), "--model-dir", str(model_dir),
        "--lat", "42.5", "--lon", "-76.45", "--week", "4", "--min-conf", "0.1",
        "--runtime", runtime,
    ]  # fmt: skip
    plain = run_sandboxed(args, lambda: None)
    boxed = run_sandboxed(args, sandbox.load_all)
    assert plain.returncode == 0, plain.stderr
    assert boxed.returncode == 0, boxed.stderr
    assert len(plain.stdout.splitlines()) >= 5  # header + the four reference detections
    assert boxed.stdout == plain.stdout
