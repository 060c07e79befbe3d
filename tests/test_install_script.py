"""``systemd/install.sh --root DIR``: files land where the unit expects them, a second run changes
nothing, ``--uninstall`` keeps the config and the data.

The script runs from a copy of the checkout in a temp directory (so nothing is written into the
repository) and installs into another temp directory; ``--root`` keeps it away from the machine's
users, packages and services, which one test checks.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from birdnet_edge import paths
from birdnet_edge.model.files import PINNED_SHA256
from birdnet_edge.model.variants import OPTIMIZED_MODEL
from tests.test_systemd_unit import VENV_BIN, unit_settings

REPO = Path(__file__).resolve().parent.parent
SERVICE = "birdnet-edge.service"
UNIT = Path("/etc/systemd/system") / SERVICE
WANTS = Path("/etc/systemd/system/multi-user.target.wants") / SERVICE
PLACEHOLDER_CONFIG = "station:\n  name: garden\n"
MACHINE_PATHS = ("/etc/birdnet-edge", "/opt/birdnet-edge", "/var/lib/birdnet-edge", str(UNIT))

Snapshot = dict[str, tuple[str, int, str]]


def make_checkout(base: Path, *, package: bool = False) -> Path:
    """The parts of a clone install.sh uses; with ``package``, enough to pip install it too."""
    src = base / "src"
    (src / "systemd").mkdir(parents=True)
    for name in ("install.sh", SERVICE):
        shutil.copy2(REPO / "systemd" / name, src / "systemd" / name)
    example = REPO / "config.example.yaml"
    if example.is_file():
        shutil.copy2(example, src / "config.example.yaml")
    else:  # the lead's example is not written yet: a minimal valid stand-in, in the temp dir only
        (src / "config.example.yaml").write_text(PLACEHOLDER_CONFIG)
    if package:
        shutil.copy2(REPO / "pyproject.toml", src / "pyproject.toml")
        if (REPO / "README.md").is_file():
            shutil.copy2(REPO / "README.md", src / "README.md")
        shutil.copytree(
            REPO / "birdnet_edge",
            src / "birdnet_edge",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    return src


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    return make_checkout(tmp_path)


def install(src: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["/bin/sh", str(src / "systemd" / "install.sh"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def at(root: Path, path: Path | str) -> Path:
    return root / str(path).lstrip("/")


def snapshot(root: Path, skip: str | None = None) -> Snapshot:
    """Every path under ``root``: its type, permission bits and content (hash or link target)."""
    found: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if skip and str(rel_dir).startswith(skip):
            dirnames[:] = []
            continue
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                content = "-> " + os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                content = ""
            found[str(rel_dir / name)] = (
                "l" if stat.S_ISLNK(st.st_mode) else "d" if stat.S_ISDIR(st.st_mode) else "f",
                stat.S_IMODE(st.st_mode),
                content,
            )
    return found


def service_user_exists() -> bool:
    try:
        pwd.getpwnam("birdnet-edge")
    except KeyError:
        return False
    return True


def unit_value(unit: Path, key: str) -> str:
    (value,) = [v for s, k, v in unit_settings(unit.read_text()) if s == "Service" and k == key]
    return value


def test_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    proc = subprocess.run(
        ["shellcheck", "--shell=sh", str(REPO / "systemd" / "install.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout


def test_files_land_where_the_unit_expects_them(
    checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {p: os.path.lexists(p) for p in MACHINE_PATHS}
    user_before = service_user_exists()
    root = tmp_path / "root"
    out = install(checkout, "--root", str(root), "--no-venv").stdout

    unit = at(root, UNIT)
    assert unit.read_bytes() == (checkout / "systemd" / SERVICE).read_bytes()
    exec_start = unit_value(unit, "ExecStart").split()
    config = Path(exec_start[exec_start.index("--config") + 1])
    assert at(root, config).read_bytes() == (checkout / "config.example.yaml").read_bytes()
    assert stat.S_IMODE(at(root, config).stat().st_mode) == 0o640
    conf_dir = Path("/etc") / unit_value(unit, "ConfigurationDirectory")
    assert config.parent == conf_dir
    credential = Path(unit_value(unit, "LoadCredential").split(":", 1)[1])
    assert credential.parent == conf_dir  # the password file the user adds goes next to it
    assert not at(root, credential).exists()  # install.sh never invents a password
    state_dir = Path("/var/lib") / unit_value(unit, "StateDirectory")
    assert at(root, state_dir).is_dir()
    monkeypatch.setenv("STATE_DIRECTORY", str(state_dir))
    assert at(root, paths.default_model_dir()).is_dir()  # where the daemon looks for the model
    assert at(root, "/opt/birdnet-edge/config.example.yaml").is_file()
    if shutil.which("systemctl"):
        link = at(root, WANTS)
        assert link.is_symlink()
        assert os.readlink(link) == str(UNIT)

    # --root left the machine alone and said what it would have run.
    assert "would run: useradd --system --user-group --groups audio" in out
    assert f"would run: systemctl restart {SERVICE}" in out
    assert {p: os.path.lexists(p) for p in MACHINE_PATHS} == before
    assert service_user_exists() == user_before


def test_second_run_changes_nothing(checkout: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    install(checkout, "--root", str(root), "--no-venv")
    first = snapshot(root)
    assert f"etc/systemd/system/{SERVICE}" in first
    out = install(checkout, "--root", str(root), "--no-venv").stdout
    assert snapshot(root) == first
    assert f"unchanged {at(root, UNIT)}" in out
    assert "keeping your config" in out


def test_upgrade_replaces_the_unit_but_never_the_config(checkout: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    install(checkout, "--root", str(root), "--no-venv")
    config = at(root, "/etc/birdnet-edge/config.yaml")
    config.write_text("station:\n  name: meadow\n")
    config.chmod(0o600)
    unit = at(root, UNIT)
    unit.write_text(unit.read_text() + "# an old version\n")
    out = install(checkout, "--root", str(root), "--no-venv").stdout
    assert config.read_text() == "station:\n  name: meadow\n"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert unit.read_bytes() == (checkout / "systemd" / SERVICE).read_bytes()
    assert f"installed {unit}" in out


def test_uninstall_keeps_config_and_data_unless_purged(checkout: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    install(checkout, "--root", str(root), "--no-venv")
    config = at(root, "/etc/birdnet-edge/config.yaml")
    config.write_text("station:\n  name: meadow\n")
    db = at(root, "/var/lib/birdnet-edge/detections.db")
    db.write_bytes(b"SQLite format 3\x00 detections")
    model = at(root, "/var/lib/birdnet-edge/models/BirdNET_GLOBAL_6K_V2.4_Labels.txt")
    model.write_text("Poecile atricapillus_Black-capped Chickadee\n")
    kept = snapshot(root / "etc" / "birdnet-edge") | snapshot(root / "var")

    out = install(checkout, "--root", str(root), "--uninstall").stdout
    assert not at(root, UNIT).exists()
    assert not os.path.lexists(at(root, WANTS))
    assert not at(root, "/opt/birdnet-edge").exists()
    assert snapshot(root / "etc" / "birdnet-edge") | snapshot(root / "var") == kept
    assert "--purge removes them" in out

    install(checkout, "--root", str(root), "--no-venv")  # reinstalling picks them up again
    assert config.read_text() == "station:\n  name: meadow\n"
    assert db.is_file()

    out = install(checkout, "--root", str(root), "--uninstall", "--purge").stdout
    assert not at(root, "/etc/birdnet-edge").exists()
    assert not at(root, "/var/lib/birdnet-edge").exists()
    assert not at(root, UNIT).exists()
    assert "would run: userdel birdnet-edge" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--purge"], "--purge goes with --uninstall"),
        (["--frobnicate"], "unknown option --frobnicate"),
        (["--root", "/"], "leave --root out"),
        (["--root"], "--root needs a directory"),
    ],
)
def test_bad_options_are_refused(checkout: Path, args: list[str], message: str) -> None:
    proc = install(checkout, *args, ok=False)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_missing_example_config_is_a_clear_error(checkout: Path, tmp_path: Path) -> None:
    (checkout / "config.example.yaml").unlink()
    proc = install(checkout, "--root", str(tmp_path / "root"), "--no-venv", ok=False)
    assert proc.returncode != 0
    assert "config.example.yaml is missing" in proc.stderr


@pytest.mark.slow
@pytest.mark.model
def test_full_install_with_venv_and_model(tmp_path: Path, model_dir: Path) -> None:
    """pip installs this checkout into a real venv; the model is found already installed."""
    src = make_checkout(tmp_path, package=True)
    root = tmp_path / "root"
    models = at(root, "/var/lib/birdnet-edge/models")
    models.mkdir(parents=True)
    for name in PINNED_SHA256:  # pre-seeded so `model install` verifies instead of downloading
        shutil.copy2(model_dir / name, models / name)
    args = ["--root", str(root), "--python", sys.executable]
    out = install(src, *args).stdout
    assert "already installed and verified" in out
    assert "does not accept" not in out  # the installed version accepts the example config
    assert f"accepted: {models / OPTIMIZED_MODEL}" in out  # the faster variant, made on the Pi

    binary = at(root, VENV_BIN)
    version = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert version.stdout.startswith("birdnet-edge ")
    assert not (src / "build").exists()  # pip built from a copy, not in the checkout

    if shutil.which("systemd-analyze"):  # the installed unit, pointing at the installed binary
        unit = tmp_path / SERVICE
        unit.write_text(at(root, UNIT).read_text().replace(f"{VENV_BIN} ", f"{binary} "))
        proc = subprocess.run(
            ["systemd-analyze", "verify", str(unit)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")

    venv = "opt/birdnet-edge/venv"
    first = snapshot(root, skip=venv)
    pyvenv = at(root, f"/{venv}/pyvenv.cfg").stat().st_mtime_ns
    out = install(src, *args).stdout  # an upgrade in place: pip reinstalls, nothing else moves
    assert "exists" in out
    assert at(root, f"/{venv}/pyvenv.cfg").stat().st_mtime_ns == pyvenv
    assert snapshot(root, skip=venv) == first
