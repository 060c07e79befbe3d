"""Run birdnet-edge on emulated 64-bit Raspberry Pi OS userlands and compare with x86-64 (issue 7).

For each variant, a Debian arm64 userland (bookworm = Raspberry Pi OS 12, trixie = 13) is made
with ``debootstrap --foreign`` and ``dpkg -x``, the project and its dependencies are installed
into it as aarch64 wheels by the host's pip, and the real commands run under
``qemu-aarch64-static`` (no binfmt needed), once per Raspberry Pi CPU (Cortex-A53, A72, A76):

    python -m birdnet_edge model info --model-dir M
    python -m birdnet_edge analyze EXCERPT --model-dir M --min-conf 0.1 --runtime R --variant V

with ``--variant original`` and, when ``model install`` derived and accepted it here, again with
``--variant optimized`` (the daemon's default). EXCERPT is the first 9 s of the shared
soundscape. Each CSV must equal the x86-64 one from the same command with the same requirements
on this machine: identical rows, confidences equal to 4 decimals. Claimed variants must pass
(exit 1 otherwise); informational ones show known failures and never fail the run.

Userlands and wheels are cached in ``$BIRDNET_EDGE_CI_CACHE`` (default
``~/.cache/birdnet-edge-ci``); from nothing, the script installs qemu-user-static and debootstrap
with apt-get and builds everything. Run it with a Python 3.11+ that has pip, numpy and soundfile
(the project's own environment): ``python .ci/aarch64.py``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ROOTFS_FORMAT = 1  # bump to rebuild every cached userland
INCLUDE = "python3,libportaudio2,libsndfile1"
EXCERPT_SECONDS = 9
COMMAND_TIMEOUT = 900  # seconds for one emulated command (about 20 s are needed)
AUDIO_MODEL = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
#: qemu CPU model -> the Raspberry Pi boards built on it (64-bit capable ones).
PI_CPUS: dict[str, str] = {
    "cortex-a53": "Pi 3, Zero 2 W",
    "cortex-a72": "Pi 4, 400, CM4",
    "cortex-a76": "Pi 5",
}
START = time.monotonic()


@dataclass(frozen=True)
class Variant:
    """One userland + runtime combination."""

    name: str
    suite: str  # Debian release of the userland
    runtime: str  # --runtime given to analyze
    requirements: tuple[str, ...]  # runtime requirements on top of the project's other deps
    claimed: bool = True
    note: str = ""


def project_requirements() -> tuple[list[str], str, list[str]]:
    """(dependencies without the runtime, the LiteRT pin, the tflite extra) from pyproject.toml."""
    import tomllib  # Python 3.11+

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"])
    litert = [d for d in deps if d.replace("_", "-").startswith("ai-edge-litert")]
    if len(litert) != 1:
        sys.exit(f"aarch64: expected one ai-edge-litert requirement in pyproject.toml: {litert}")
    base = [d for d in deps if d not in litert]
    tflite = list(project.get("optional-dependencies", {}).get("tflite", []))
    return base, litert[0], tflite or ["tflite-runtime==2.14.0", "numpy<2"]


def variants() -> list[Variant]:
    _, litert, tflite = project_requirements()
    return [
        Variant("bookworm-py3.11-litert", "bookworm", "litert", (litert,)),
        Variant("bookworm-py3.11-tflite", "bookworm", "tflite-runtime", tuple(tflite)),
        Variant("trixie-py3.13-litert", "trixie", "litert", (litert,)),
        Variant(
            "bookworm-py3.11-litert2.3.0",
            "bookworm",
            "litert",
            ("ai-edge-litert==2.3.0", *tflite),
            claimed=False,
            note="known: LiteRT 2.2.0/2.3.0 segfault loading BirdNET on aarch64",
        ),
        Variant(
            "bookworm-py3.11-litert2.3.0-auto",
            "bookworm",
            "auto",
            ("ai-edge-litert==2.3.0", *tflite),
            note="runtime auto with LiteRT 2.3.0 and tflite-runtime: the probe falls back",
        ),
    ]


def say(message: str) -> None:
    print(f"[aarch64 {time.monotonic() - START:5.0f}s] {message}", flush=True)


def run(cmd: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a host command; raise RuntimeError with the end of its output if it fails."""
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False, **kwargs)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise RuntimeError(f"{' '.join(cmd[:6])} ... exited {proc.returncode}:\n{tail}")
    return proc


# --- host tools ------------------------------------------------------------------------------


def tool(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin")


def ensure_tools() -> tuple[str, str]:
    """Paths of qemu-aarch64-static and debootstrap, installed with apt-get when missing."""
    if not (tool("qemu-aarch64-static") and tool("debootstrap")):
        if os.geteuid() != 0:
            sys.exit("aarch64: run as root, or apt-get install qemu-user-static debootstrap")
        say("installing qemu-user-static and debootstrap with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        lock = ["-o", "DPkg::Lock::Timeout=600"]
        run(["apt-get", *lock, "update", "-qq"], env=env)
        run(["apt-get", *lock, "install", "-y", "-qq", "qemu-user-static", "debootstrap"], env=env)
    qemu, boot = tool("qemu-aarch64-static"), tool("debootstrap")
    if not (qemu and boot):
        sys.exit("aarch64: qemu-aarch64-static or debootstrap still missing after apt-get")
    return qemu, boot


def debian_mirror() -> str:
    """The Debian archive this machine's apt uses (never a hard-coded host)."""
    if os.environ.get("BIRDNET_EDGE_DEBIAN_MIRROR"):
        return os.environ["BIRDNET_EDGE_DEBIAN_MIRROR"]
    apt = Path("/etc/apt")
    sources = [*sorted(apt.glob("sources.list.d/*.sources")), apt / "sources.list"]
    sources += sorted(apt.glob("sources.list.d/*.list"))
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        uris = re.findall(r"^URIs:\s*(\S+)", text, re.MULTILINE)
        uris += re.findall(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.MULTILINE)
        for uri in uris:
            if uri.rstrip("/").endswith("/debian"):
                return str(uri).rstrip("/")
    sys.exit("aarch64: no Debian archive in /etc/apt sources; set BIRDNET_EDGE_DEBIAN_MIRROR")


# --- userland and wheels ---------------------------------------------------------------------


@dataclass(frozen=True)
class Userland:
    suite: str
    root: Path
    python: str  # e.g. python3.11
    python_version: str  # e.g. 3.11.2
    glibc: tuple[int, int]

    @property
    def python_tag(self) -> str:
        return self.python.removeprefix("python")


def build_userland(suite: str, cache: Path, qemu: str, debootstrap: str, mirror: str) -> Userland:
    """A cached Debian ``suite`` arm64 userland with Python, PortAudio and libsndfile."""
    root = cache / f"rootfs-{suite}-arm64"
    marker = root / ".birdnet-edge-ci.json"
    if marker.is_file():
        info = json.loads(marker.read_text())
        if info.get("format") == ROOTFS_FORMAT and info.get("include") == INCLUDE:
            say(f"{suite}: cached userland {root}")
            os.utime(root)  # in use: see prune()
            glibc = info["glibc"]
            return Userland(suite, root, info["python"], info["python_version"], (*glibc,))
    tmp = cache / f"rootfs-{suite}-arm64.partial"
    for attempt in (1, 2):
        shutil.rmtree(tmp, ignore_errors=True)
        say(f"{suite}: debootstrap --foreign --arch=arm64 --variant=minbase (attempt {attempt})")
        cmd = [debootstrap, "--foreign", "--arch=arm64", "--variant=minbase"]
        try:
            run([*cmd, f"--include={INCLUDE}", suite, str(tmp), mirror])
            break
        except RuntimeError as exc:
            if attempt == 2:
                raise
            say(f"{suite}: debootstrap failed, retrying: {str(exc).splitlines()[-1]}")
    debs = sorted((tmp / "var/cache/apt/archives").glob("*.deb"))
    libc = next((m for d in debs if (m := re.match(r"libc6_(\d+)\.(\d+)", d.name))), None)
    if not libc:
        raise RuntimeError(f"{suite}: no libc6 package among the downloaded .debs")
    say(f"{suite}: unpacking {len(debs)} packages with dpkg -x")
    for deb in debs:
        run(["dpkg", "-x", str(deb), str(tmp)])
        deb.unlink()
    for junk in ("usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info"):
        shutil.rmtree(tmp / junk, ignore_errors=True)
    python = os.readlink(tmp / "usr/bin/python3")
    check = "import platform; print(platform.machine(), platform.python_version())"
    machine, version = run(
        [qemu, "-L", str(tmp), str(tmp / "usr/bin" / python), "-c", check]
    ).stdout.split()
    if machine != "aarch64":
        raise RuntimeError(f"{suite}: the emulated Python reports machine {machine}")
    glibc = (int(libc[1]), int(libc[2]))
    info = {
        "format": ROOTFS_FORMAT,
        "include": INCLUDE,
        "python": python,
        "python_version": version,
        "glibc": list(glibc),
    }
    (tmp / marker.name).write_text(json.dumps(info))
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    say(f"{suite}: userland ready: Python {version}, glibc {glibc[0]}.{glibc[1]}")
    return Userland(suite, root, python, version, glibc)


def wrapper(land: Userland, bindir: Path, qemu: str) -> Path:
    """A host script that runs the emulated Python; it is also the guest's ``sys.executable``.

    Without binfmt the guest cannot exec an aarch64 binary, so a child it starts with
    ``sys.executable`` (the runtime probe) must be this host script, which emulates again.
    ``QEMU_CPU`` in the environment chooses the emulated CPU for both.
    """
    path = bindir / f"{land.python}-{land.suite}-aarch64"
    root = land.root
    path.write_text(
        "#!/bin/sh\n"
        "ulimit -c 0  # crashes are expected in informational variants: no core files\n"
        f'exec {qemu} -L {root} -0 "$0" {root}/usr/bin/{land.python} "$@"\n'
    )
    path.chmod(0o755)
    return path


def site(cache: Path, requirements: Sequence[str], land: Userland | None) -> Path:
    """A cached folder of wheels for ``land``'s aarch64 Python (None: this x86-64 Python)."""
    if land is None:
        tag = f"{sys.version_info[0]}{sys.version_info[1]}"
        target_opts: list[str] = []
        arch = "x86_64"
    else:
        tag = land.python_tag.replace(".", "")
        platforms = [f"manylinux_2_{m}_aarch64" for m in range(17, land.glibc[1] + 1)]
        target_opts = [
            "--implementation=cp",
            f"--python-version={land.python_tag}",
            f"--abi=cp{tag}",
            *(f"--platform={p}" for p in [*platforms, "manylinux2014_aarch64"]),
        ]
        arch = "aarch64"
    key = json.dumps([arch, tag, target_opts, sorted(requirements)])
    target = cache / f"site-{arch}-cp{tag}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if (target / ".complete").is_file():
        os.utime(target)  # in use: see prune()
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    say(f"pip: {arch} cp{tag} wheels for {' '.join(requirements)}")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    run(
        [
            *pip,
            "--no-warn-conflicts",
            "--target",
            str(partial),
            "--only-binary=:all:",
            *target_opts,
            *requirements,
        ]
    )
    (partial / ".complete").write_text(key)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def installed_version(site_dir: Path, distribution: str) -> str:
    prefix = distribution.replace("-", "_") + "-"
    for dist in site_dir.glob("*.dist-info"):
        if dist.name.lower().startswith(prefix):
            return dist.name[len(prefix) : -len(".dist-info")]
    return ""


def install_project(work: Path) -> Path:
    """The project as pip installs it (built from a copy, so the checkout stays clean)."""
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "setup.py"):
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, src / name)
    shutil.copytree(
        REPO / "birdnet_edge", src / "birdnet_edge", ignore=shutil.ignore_patterns("__pycache__")
    )
    target = work / "project"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    run([*pip, "--no-deps", "--no-warn-conflicts", "--target", str(target), str(src)])
    return target


def excerpt(data_dir: Path, work: Path) -> Path:
    """The first seconds of the soundscape as a 16-bit WAV file."""
    import soundfile as sf

    source = data_dir / "soundscape.flac"
    if not source.is_file():
        sys.exit(f"aarch64: {source} is missing (set BIRDNET_EDGE_TEST_DATA)")
    rate = sf.info(str(source)).samplerate
    audio, rate = sf.read(str(source), frames=EXCERPT_SECONDS * rate, dtype="int16")
    out = work / "excerpt.wav"
    sf.write(str(out), audio, rate, subtype="PCM_16")
    return out


def prune(cache: Path, days: float = 30) -> None:
    """Remove cached userlands and wheel folders no run has used for ``days``."""
    limit = time.time() - days * 86400
    for path in [*cache.glob("rootfs-*"), *cache.glob("site-*")]:
        if path.is_dir() and path.stat().st_mtime < limit:
            say(f"removing {path.name}: unused for {days:g} days")
            shutil.rmtree(path, ignore_errors=True)


# --- results ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    variant: Variant
    cpu: str
    python: str = "-"
    runtime: str = "-"
    info: str = "-"
    models: int = 0  # how many models `analyze` must run with
    results: list[tuple[str, str]] = field(default_factory=list)  # per model: analyze, compare
    rows: list[int] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def analyze(self) -> str:
        if len(self.results) < self.models:
            return f"{len(self.results)} of {self.models} models ran"
        return next((a for a, _ in self.results if a != "ok"), "ok" if self.results else "-")

    @property
    def compare(self) -> str:
        if not self.results:
            return "-"
        return next((c for _, c in self.results if c != "identical"), "identical")

    @property
    def passed(self) -> bool:
        # `analyze` is "ok" only when every model ran and none failed.
        return self.info == "ok" and self.analyze == "ok" and self.compare == "identical"


def describe_exit(returncode: int) -> str:
    number = -returncode if returncode < 0 else returncode - 128  # the shell's 128 + N
    if returncode < 0 or returncode > 128:
        try:
            return f"crashed {signal.Signals(number).name}"
        except ValueError:
            pass
    return f"exit {returncode}"


def last_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if "error" in line.lower() or "crash" in line or "signal" in line:
            return line[:240]
    return lines[-1][:240] if lines else ""


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def compare(got: list[list[str]], want: list[list[str]]) -> str:
    """``identical``, or the first difference (confidences compared to 4 decimals)."""
    if not want or not got or got[0] != want[0]:
        return "header differs"
    conf = want[0].index("Confidence") if "Confidence" in want[0] else -1
    if len(got) != len(want):
        return f"{len(got) - 1} rows, x86-64 has {len(want) - 1}"
    for i, (a, b) in enumerate(zip(got[1:], want[1:], strict=True), start=1):
        same = len(a) == len(b) and all(
            round(float(x), 4) == round(float(y), 4) if j == conf else x == y
            for j, (x, y) in enumerate(zip(a, b, strict=True))
        )
        if not same:
            return f"row {i} differs: {','.join(a)} vs {','.join(b)}"
    return "identical"


def print_table(outcomes: Sequence[Outcome]) -> None:
    header = (
        "variant",
        "claim",
        "cpu (boards)",
        "python",
        "installed",
        "model info",
        "analyze",
        "rows (per model)",
        "vs x86-64",
        "time",
        "result",
    )
    rows = [
        (
            o.variant.name,
            "claimed" if o.variant.claimed else "info",
            f"{o.cpu} ({PI_CPUS.get(o.cpu, '-')})",
            o.python,
            o.runtime,
            o.info,
            o.analyze,
            "+".join(map(str, o.rows)) or "0",
            o.compare if len(o.compare) < 40 else o.compare[:37] + "...",
            f"{o.seconds:.0f} s",
            ("PASS" if o.passed else "FAIL")
            if o.variant.claimed
            else ("matches" if o.passed else "does not run"),
        )
        for o in outcomes
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    print("\nBirdNET on emulated aarch64 (64-bit Raspberry Pi OS userlands) vs x86-64:")
    for r in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    for o in outcomes:
        for note in dict.fromkeys(o.notes):
            if note:
                print(f"  {o.variant.name} on {o.cpu}: {note}")


# --- the check -------------------------------------------------------------------------------


class Check:
    """Everything one run shares: cache, work folder, excerpt, project, references."""

    def __init__(self, cache: Path, work: Path, model_dir: Path, data_dir: Path) -> None:
        self.cache, self.work, self.model_dir = cache, work, model_dir
        self.qemu, self.debootstrap = ensure_tools()
        self.mirror = debian_mirror()
        self.base, _, _ = project_requirements()
        (work / "bin").mkdir()
        self.clip = excerpt(data_dir, work)
        self.project = install_project(work)
        drop = {"PYTHONPATH", "PYTHONHOME", "STATE_DIRECTORY", "CONFIGURATION_DIRECTORY"}
        self.env = {k: v for k, v in os.environ.items() if k not in drop}
        self.env.update(
            PYTHONDONTWRITEBYTECODE="1",
            PYTHONNOUSERSITE="1",
            XDG_CONFIG_HOME=str(work / "config"),
            XDG_DATA_HOME=str(work / "data"),
            XDG_STATE_HOME=str(work / "state"),
        )
        # The FP32 models `analyze` runs: the original, and the optimised variant (what the
        # daemon uses by default) when `model install` derived and accepted it on this machine.
        from birdnet_edge.model.variants import optimized_problem

        problem = optimized_problem(model_dir)
        if problem and os.environ.get("BIRDNET_EDGE_REQUIRE_OPTIMIZED") == "1":
            sys.exit(f"aarch64: the optimised variant is required but {problem}")
        self.models = ["original"] + ([] if problem else ["optimized"])
        say(f"models checked: {', '.join(self.models)}")
        self.lands: dict[str, Userland] = {}
        self.references: dict[tuple[str, ...], list[list[str]]] = {}

    def analyze_args(self, runtime: str, model: str) -> list[str]:
        where = ["--model-dir", str(self.model_dir), "--variant", model]
        return ["analyze", str(self.clip), *where, "--min-conf", "0.1", "--runtime", runtime]

    def reference(self, v: Variant, model: str) -> list[list[str]]:
        """The x86-64 CSV: same command, same requirements, this machine's Python."""
        key = (model, v.runtime, *v.requirements)
        if key not in self.references:
            deps = site(self.cache, [*self.base, *v.requirements], None)
            out = self.work / f"x86_64-{len(self.references)}.csv"
            env = {**self.env, "PYTHONPATH": f"{self.project}{os.pathsep}{deps}"}
            cmd = [sys.executable, "-m", "birdnet_edge", *self.analyze_args(v.runtime, model)]
            run([*cmd, "-o", str(out)], env=env, cwd=self.work)
            self.references[key] = read_csv(out)
            rows = self.references[key]
            say(f"x86-64 reference for {v.name}, {model} model: {len(rows) - 1} rows")
            for row in rows:
                print(f"    {','.join(row)}", flush=True)
        return self.references[key]

    def emulated(self, python: Path, args: Sequence[str], env: dict[str, str]) -> Any:
        return subprocess.run(
            [str(python), "-m", "birdnet_edge", *args],
            env=env,
            cwd=self.work,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )

    def run_variant(self, v: Variant, cpu: str) -> Outcome:
        outcome = Outcome(v, cpu)
        began = time.monotonic()
        try:
            self._run(v, cpu, outcome)
        except subprocess.TimeoutExpired as exc:
            outcome.notes.append(f"timed out after {exc.timeout:g} s")
        except RuntimeError as exc:
            outcome.notes.append(str(exc).splitlines()[0])
            print(exc, file=sys.stderr, flush=True)
        outcome.seconds = time.monotonic() - began
        verdict = "PASS" if outcome.passed else "FAIL"
        if not v.claimed:
            verdict = "matches x86-64" if outcome.passed else "does not run (informational)"
        say(f"{v.name} on {cpu}: {verdict} ({outcome.seconds:.0f} s)")
        return outcome

    def _run(self, v: Variant, cpu: str, outcome: Outcome) -> None:
        if v.suite not in self.lands:
            self.lands[v.suite] = build_userland(
                v.suite, self.cache, self.qemu, self.debootstrap, self.mirror
            )
        land = self.lands[v.suite]
        deps = site(self.cache, [*self.base, *v.requirements], land)
        python = wrapper(land, self.work / "bin", self.qemu)
        outcome.python = land.python_version
        versions = {
            short: installed_version(deps, dist)
            for short, dist in (("litert", "ai-edge-litert"), ("tflite", "tflite-runtime"))
        }
        versions["numpy"] = installed_version(deps, "numpy")
        outcome.runtime = ", ".join(f"{k} {v}" for k, v in versions.items() if v)
        env = {**self.env, "PYTHONPATH": f"{self.project}{os.pathsep}{deps}", "QEMU_CPU": cpu}

        say(f"{v.name} on {cpu}: model info")
        info = self.emulated(python, ["model", "info", "--model-dir", str(self.model_dir)], env)
        if info.returncode == 0 and re.search(r"\b6522\b", info.stdout):
            outcome.info = "ok"
        else:
            outcome.info = describe_exit(info.returncode) if info.returncode else "bad output"
            outcome.notes.append(last_error(info.stderr or info.stdout))

        # Informational variants show a known failure; the original model is enough for that.
        models = self.models if v.claimed else self.models[:1]
        outcome.models = len(models)
        for model in models:
            want = self.reference(v, model)
            say(f"{v.name} on {cpu}: analyze --runtime {v.runtime} --variant {model}")
            out = self.work / f"{v.name}-{cpu}-{model}.csv"
            args = [*self.analyze_args(v.runtime, model), "-o", str(out)]
            proc = self.emulated(python, args, env)
            outcome.notes += [  # the runtime probe's one-line fallback message, if any
                line.split("birdnet_edge.model.probe:", 1)[1].strip()
                for line in proc.stderr.splitlines()
                if "birdnet_edge.model.probe:" in line
            ]
            if proc.returncode == 0 and out.is_file():
                got = read_csv(out)
                outcome.rows.append(len(got) - 1)
                outcome.results.append(("ok", compare(got, want)))
            else:
                outcome.results.append((describe_exit(proc.returncode), "-"))
                outcome.notes.append(f"{model} model: {last_error(proc.stderr)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--only", action="append", default=[], metavar="VARIANT")
    parser.add_argument("--cpu", action="append", choices=sorted(PI_CPUS), help="default: all")
    parser.add_argument("--no-informational", action="store_true", help="claimed variants only")
    parser.add_argument("--list", action="store_true", help="list the variants and exit")
    args = parser.parse_args(argv)
    chosen = [
        v
        for v in variants()
        if (not args.only or v.name in args.only) and (v.claimed or not args.no_informational)
    ]
    if args.list or not chosen:
        for v in variants():
            print(f"{v.name:34} {'claimed' if v.claimed else 'informational':13} {v.note}")
        return 0 if args.list else 2
    cpus = args.cpu or list(PI_CPUS)

    cache = Path(os.environ.get("BIRDNET_EDGE_CI_CACHE") or Path.home() / ".cache/birdnet-edge-ci")
    cache.mkdir(parents=True, exist_ok=True)
    data_dir = Path(os.environ.get("BIRDNET_EDGE_TEST_DATA") or REPO.parent / "shared" / "data")
    if not (data_dir / "soundscape.flac").is_file():
        print(
            f"aarch64: SKIPPED: the shared test recording {data_dir / 'soundscape.flac'} is "
            "missing (set BIRDNET_EDGE_TEST_DATA to the folder holding it)"
        )
        return 0
    default_models = Path.home() / ".local/share/birdnet-edge/models"
    model_dir = Path(os.environ.get("BIRDNET_EDGE_MODEL_DIR") or default_models)
    if not (model_dir / AUDIO_MODEL).is_file():
        sys.exit(f"aarch64: no BirdNET model in {model_dir} (set BIRDNET_EDGE_MODEL_DIR)")

    with tempfile.TemporaryDirectory(prefix="birdnet-edge-aarch64-") as tmp:
        check = Check(cache, Path(tmp), model_dir, data_dir)
        outcomes = [check.run_variant(v, cpu) for v in chosen for cpu in cpus]

    prune(cache)
    print_table(outcomes)
    claimed = [o for o in outcomes if o.variant.claimed]
    bad = [o for o in claimed if not o.passed]
    print(
        f"\naarch64 check: {len(claimed) - len(bad)} of {len(claimed)} claimed variant runs "
        f"reproduce the x86-64 analysis ({time.monotonic() - START:.0f} s)",
        flush=True,
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
