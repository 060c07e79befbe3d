"""The clips' disk budget: size, free-space floor and age; the best clip of a species stays."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import soundfile

from birdnet_edge.clips.budget import Budget, ClipBudget, Kept, free_bytes, on_disk
from birdnet_edge.clips.cutter import Clip, clip_name
from birdnet_edge.clips.writer import ClipWriter, encode
from birdnet_edge.model.labels import Label
from tests.test_sqlite_sink import make_event

T0 = dt.datetime(2026, 5, 1, 5, 0, tzinfo=dt.timezone.utc)
ROBIN = Label(0, "Erithacus rubecula", "European Robin")
WREN = Label(1, "Troglodytes troglodytes", "Eurasian Wren")


def _clip(label: Label, minute: int, confidence: float, seconds: float = 2.0) -> Clip:
    d = make_event(label, T0 + dt.timedelta(minutes=minute), confidence=confidence)
    noise = np.random.default_rng(minute).integers(-3000, 3000, round(seconds * 48_000))
    return Clip(clip_name(d), noise.astype(np.int16), d)


def _kept(name: str, size: int, species: str, confidence: float, minute: int) -> Kept:
    return Kept(name, size, species, confidence, T0 + dt.timedelta(minutes=minute))


def test_over_the_size_the_oldest_goes_but_each_species_best_stays(tmp_path: Path) -> None:
    budget = ClipBudget(tmp_path, Budget(max_size=300))
    for name, minute, species, conf in [
        ("a", 0, "robin", 0.9),  # the robin's best: stays
        ("b", 1, "robin", 0.5),
        ("c", 2, "wren", 0.6),  # the only wren: its best
        ("d", 3, "robin", 0.7),
    ]:
        assert budget.make_room(100, T0 + dt.timedelta(minutes=minute))
        budget.added(_kept(name, 100, species, conf, minute))
        assert budget.total <= 300  # never over, not even between a delete and a write
    assert sorted(budget.kept) == ["a", "c", "d"]  # b (old, not a best) went
    assert budget.make_room(150, T0)  # two must go: d, then the oldest best, a
    assert sorted(budget.kept) == ["c"]
    assert not budget.make_room(400, T0)  # larger than the whole budget: not written


def test_old_clips_expire_and_the_free_space_floor_holds(tmp_path: Path) -> None:
    free = {"bytes": 1000}
    budget = ClipBudget(
        tmp_path, Budget(min_free=600, retention_days=30),
        [_kept("old", 100, "robin", 0.9, -60 * 24 * 40), _kept("new", 100, "wren", 0.5, 0)],
        free=lambda _path: free["bytes"],
    )  # fmt: skip
    assert budget.make_room(300, T0)  # the 40-day-old clip goes, even being the robin's best
    assert sorted(budget.kept) == ["new"]
    free["bytes"] = 700
    assert not budget.make_room(200, T0)  # only the wren's best is left: it goes, still short
    assert budget.kept == {}


def test_a_small_disk_filling_up_never_goes_below_the_floor(tiny_fs: Path) -> None:
    root = tiny_fs / "clips"
    floor = 1 << 20  # of the 2 MiB
    writer = ClipWriter(root, ClipBudget(root, Budget(min_free=floor)))
    sizes = []
    for minute in range(12):  # about 150 kB each: far more than fits above the floor
        clip = _clip(ROBIN if minute % 3 else WREN, minute, 0.5 + minute / 100)
        sizes.append(len(encode(clip)))
        writer.put(clip)
    writer.close(timeout=30)
    assert free_bytes(root) >= floor
    assert writer.written == 12 - writer.over_budget
    assert writer.budget is not None
    assert writer.budget.deleted > 0  # room was made by deleting older clips
    kept = on_disk(root, {})
    assert {k.name for k in kept} == set(writer.budget.kept)
    species = {k.species for k in writer.budget.kept.values()}
    assert species == {ROBIN.scientific, WREN.scientific}  # each species' best survives
    assert max(sizes) < floor


def test_check_config_warns_when_an_event_closes_before_a_voice_could_be_heard(
    tmp_path: Path,
) -> None:
    from tests.conftest import run_cli

    config = tmp_path / "c.yaml"
    config.write_text(
        f"model: {{dir: {tmp_path / 'none'}}}\nclips: {{enabled: true, post: 2}}\n"
        "events: {gap_seconds: 3}\n"
    )
    proc = run_cli(["check-config", str(config)])
    assert proc.returncode == 0
    assert "events.gap_seconds (3) is shorter than clips.post + filters.privacy.seconds (5)" in (
        proc.stderr
    )
    config.write_text(f"model: {{dir: {tmp_path / 'none'}}}\nclips: {{enabled: true}}\n")
    assert "gap_seconds" not in run_cli(["check-config", str(config)]).stderr


def test_opus_clips_are_smaller_decode_whole_and_count_in_the_budget(tmp_path: Path) -> None:
    root = tmp_path / "clips"
    flac = _clip(ROBIN, 0, 0.8, seconds=5.0)
    d = make_event(WREN, T0 + dt.timedelta(minutes=1))
    opus = Clip(clip_name(d, ".opus"), flac.samples, d)
    assert opus.name.endswith(f"_{d.id[:8]}.opus")
    writer = ClipWriter(root, ClipBudget(root, Budget(max_size=10 << 20)))
    writer.put(flac)
    writer.put(opus)
    writer.close(timeout=30)
    assert writer.written == 2
    flac_size, opus_size = (len(encode(c)) for c in (flac, opus))
    assert opus_size < flac_size / 2
    audio, rate = soundfile.read(root / opus.name, dtype="int16")
    assert (rate, len(audio)) == (48_000, len(opus.samples))  # lossy, but all of it
    assert (root / opus.name).with_suffix(".png").is_file()
    kept = {k.name: k for k in on_disk(root, {})}  # found again after a restart
    assert set(kept) == {flac.name, opus.name}
    assert kept[opus.name].size == opus_size + (root / opus.name).with_suffix(".png").stat().st_size
