"""A small board's budget on a big machine: the whole daemon inside a cgroup's CPU and memory cap.

The daemon replays a recording in real time (as a microphone delivers it) inside a cgroup
limited to a share of one core and a memory cap, and its windows and scores are compared with
an unconstrained full-speed replay of the same audio: equal starts and confidences mean it lost
no audio, refined every window it should, and so kept every detection. The cgroup's peak memory
includes start-up. cgroup v1 (``cpu.cfs_quota_us``, ``memory.limit_in_bytes``) and v2
(``cpu.max``, ``memory.max``) are both supported; creating a cgroup needs root::

    sudo python -m birdnet_edge.bench.small_board --overlap 1.5 2.5 --shares 0.05 0.1 0.2

prints, per overlap, whether each share kept up, the smallest that did, and the peak memory.
BirdNET's stock window takes ~540 ms on a Pi 3 / Zero 2 W core and ~25 ms on one core here, so
the Zero's four cores are worth about 4 x 25/540 = 19 % of one core here. This emulates the
budget, not the board.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from birdnet_edge.audio.decode import iter_audio
from birdnet_edge.audio.format import SAMPLE_RATE

CGROUP_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


class CgroupUnavailableError(RuntimeError):
    """No writable cgroup CPU and memory controllers here (not root, or none mounted)."""


@dataclass
class Cgroup:
    """One cgroup with a CPU quota and a memory cap, on v1 or v2."""

    name: str
    cpu_share: float  # of one core
    memory_bytes: int

    @property
    def v2(self) -> bool:
        return (CGROUP_ROOT / "cgroup.controllers").is_file()

    def dirs(self) -> list[Path]:
        if self.v2:
            return [CGROUP_ROOT / self.name]
        return [CGROUP_ROOT / "cpu" / self.name, CGROUP_ROOT / "memory" / self.name]

    def create(self) -> None:
        try:
            for d in self.dirs():
                d.mkdir(exist_ok=True)
            quota = max(1000, round(self.cpu_share * PERIOD_US))
            if self.v2:
                root = CGROUP_ROOT / "cgroup.subtree_control"
                root.write_text("+cpu +memory")
                (CGROUP_ROOT / self.name / "cpu.max").write_text(f"{quota} {PERIOD_US}")
                (CGROUP_ROOT / self.name / "memory.max").write_text(str(self.memory_bytes))
                (CGROUP_ROOT / self.name / "memory.swap.max").write_text("0")
            else:
                cpu, memory = self.dirs()
                (cpu / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (cpu / "cpu.cfs_quota_us").write_text(str(quota))
                (memory / "memory.limit_in_bytes").write_text(str(self.memory_bytes))
                swap = memory / "memory.memsw.limit_in_bytes"
                if swap.exists():
                    swap.write_text(str(self.memory_bytes))
        except OSError as exc:
            self.remove()
            raise CgroupUnavailableError(
                f"cannot create cgroup {self.name} ({exc.strerror}): run as root on a machine "
                "with the cpu and memory controllers"
            ) from None

    def join(self) -> None:
        """Move the calling process into the cgroup (in a child, before exec)."""
        for d in self.dirs():
            (d / "cgroup.procs").write_text(str(os.getpid()))

    def peak_memory(self) -> int:
        if self.v2:
            peak = CGROUP_ROOT / self.name / "memory.peak"
            return int(peak.read_text()) if peak.exists() else -1
        return int((self.dirs()[1] / "memory.max_usage_in_bytes").read_text())

    def oom_kills(self) -> int:
        if self.v2:
            events = (CGROUP_ROOT / self.name / "memory.events").read_text().split()
            return int(dict(zip(events[::2], events[1::2], strict=True)).get("oom_kill", "0"))
        oom = (self.dirs()[1] / "memory.oom_control").read_text().split()
        return int(dict(zip(oom[::2], oom[1::2], strict=True)).get("oom_kill", "0"))

    def remove(self) -> None:
        for d in self.dirs():
            for _ in range(50):  # the last process may take a moment to leave
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)


@contextmanager
def cgroup(cpu_share: float, memory_mb: int) -> Iterator[Cgroup]:
    group = Cgroup(f"birdnet-edge-bench-{os.getpid()}-{time.monotonic_ns()}", cpu_share,
                   memory_mb * 1024 * 1024)  # fmt: skip
    group.create()
    try:
        yield group
    finally:
        group.remove()


@dataclass(frozen=True)
class BoardRun:
    """One replay inside (or without) a budget."""

    returncode: int
    starts: list[int]
    confidences: np.ndarray
    peak_memory_mb: float
    oom_kills: int
    stderr: str
    wall_s: float

    def same_windows_as(self, other: BoardRun) -> bool:
        """Every window scored, with the same scores: no audio lost, nothing left unrefined."""
        return (
            self.returncode == 0
            and self.starts == other.starts
            and np.array_equal(self.confidences, other.confidences)
        )


def write_config(
    path: Path, model_dir: Path | None, overlap: float, db: Path, candidate: float | None = None
) -> Path:
    refine = "" if candidate is None else f", refine: {{candidate: {candidate}}}"
    lines = [f"analysis: {{overlap: {overlap}{refine}}}", f"database: {{path: {db}}}"]
    if model_dir is not None:
        lines.append(f"model: {{dir: {model_dir}}}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def replay(
    audio: Path,
    config: Path,
    scores: Path,
    *,
    fast: bool,
    group: Cgroup | None = None,
    timeout: float = 900,
) -> BoardRun:
    """Run ``birdnet-edge run --input`` in a child process (inside ``group`` from its start)."""
    command = [sys.executable, "-m", "birdnet_edge", "run", "-c", str(config), "--input",
               str(audio), "--quiet", "--scores-out", str(scores)]  # fmt: skip
    if fast:
        command.append("--fast")
    t0 = time.monotonic()
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=group.join if group is not None else None,
    )
    wall = time.monotonic() - t0
    if proc.returncode == 0 and scores.exists():
        data = np.load(scores)
        starts, confidences = data["starts"].tolist(), data["confidences"]
    else:
        starts, confidences = [], np.zeros((0, 0), dtype=np.float32)
    return BoardRun(
        proc.returncode,
        starts,
        confidences,
        group.peak_memory() / 2**20 if group is not None else float("nan"),
        group.oom_kills() if group is not None else 0,
        proc.stderr,
        wall,
    )


def excerpt(source: Path, seconds: float, out: Path) -> Path:
    """The first ``seconds`` of ``source`` as a float WAV (exact samples)."""
    import soundfile

    audio = np.concatenate(list(iter_audio(source)))[: round(seconds * SAMPLE_RATE)]
    soundfile.write(out, audio, SAMPLE_RATE, subtype="FLOAT")
    return out


@dataclass(frozen=True)
class ShareResult:
    overlap: float
    share: float
    kept_up: bool
    peak_memory_mb: float
    wall_s: float


def sweep(
    audio: Path,
    model_dir: Path | None,
    overlaps: Sequence[float],
    shares: Sequence[float],
    *,
    memory_mb: int,
    work: Path,
) -> list[ShareResult]:
    """For each overlap and share: did the real-time replay inside the budget keep up?"""
    results = []
    for overlap in overlaps:
        reference = replay(
            audio,
            write_config(work / f"ref-{overlap}.yaml", model_dir, overlap, work / "ref.db"),
            work / f"ref-{overlap}.npz",
            fast=True,
        )
        if reference.returncode != 0:
            raise RuntimeError(f"the unconstrained replay failed: {reference.stderr[-500:]}")
        for share in sorted(shares, reverse=True):
            tag = f"{overlap}-{share}"
            with cgroup(share, memory_mb) as group:
                run = replay(
                    audio,
                    write_config(work / f"{tag}.yaml", model_dir, overlap, work / f"{tag}.db"),
                    work / f"{tag}.npz",
                    fast=False,
                    group=group,
                )
            results.append(
                ShareResult(
                    overlap, share, run.same_windows_as(reference), run.peak_memory_mb, run.wall_s
                )
            )
            print(
                f"overlap {overlap:g}, {share:.0%} of a core, {memory_mb} MB: "
                f"{'kept up' if results[-1].kept_up else 'fell behind'}, peak "
                f"{run.peak_memory_mb:.0f} MB",
                flush=True,
            )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m birdnet_edge.bench.small_board",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--audio", type=Path, required=True, help="recording to replay")
    parser.add_argument("--seconds", type=float, default=60.0, help="replay its first N s")
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--overlap", type=float, nargs="+", default=[1.5, 2.5])
    parser.add_argument("--shares", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    parser.add_argument("--memory-mb", type=int, default=256)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="birdnet-edge-board-") as tmp:
        work = Path(tmp)
        audio = excerpt(args.audio, args.seconds, work / "excerpt.wav")
        try:
            results = sweep(
                audio,
                args.model_dir,
                args.overlap,
                args.shares,
                memory_mb=args.memory_mb,
                work=work,
            )
        except CgroupUnavailableError as exc:
            print(f"small_board: {exc}", file=sys.stderr)
            return 2
    print()
    print(f"| overlap | smallest CPU share that kept up ({args.memory_mb} MB cap) | peak memory |")
    print("| --- | --- | --- |")
    for overlap in args.overlap:
        ok = [r for r in results if r.overlap == overlap and r.kept_up]
        best = min(ok, key=lambda r: r.share) if ok else None
        share = f"{best.share:.0%} of one core" if best else "none of those tried"
        peak = max(r.peak_memory_mb for r in results if r.overlap == overlap)
        print(f"| {overlap:g} s (+ refinement) | {share} | {peak:.0f} MB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
