"""Which audio model a config selects: ``model.file``, or the optimised variant only when its
equivalence report accepts it, was made from the pinned original and still matches the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from birdnet_edge.config import ModelConfig
from birdnet_edge.errors import ModelError
from birdnet_edge.model import variants
from birdnet_edge.model.files import AUDIO_MODEL, PINNED_SHA256
from birdnet_edge.model.install import sha256_of
from birdnet_edge.model.variants import OPTIMIZED_MODEL, OPTIMIZED_REPORT, active_model


def _derived(directory: Path, **report: object) -> Path:
    """A stand-in variant file with an accepted report (fields overridable)."""
    variant = directory / OPTIMIZED_MODEL
    variant.write_bytes(b"stand-in for the rewritten model")
    stored = {
        "accepted": True,
        "reason": "equivalent",
        "generated": {"max_delta_p": 7.9e-5},
        "sha256": sha256_of(variant),
        "original_sha256": PINNED_SHA256[AUDIO_MODEL],
        **report,
    }
    (directory / OPTIMIZED_REPORT).write_text(json.dumps(stored), encoding="utf-8")
    return variant


def test_auto_takes_the_accepted_variant(tmp_path: Path) -> None:
    variant = _derived(tmp_path)
    active = active_model(ModelConfig(dir=tmp_path))
    assert active.paths.audio == variant
    assert active.optimized
    assert "accepted" in active.why
    assert "7.9e-05" in active.why


def test_auto_without_a_variant_takes_the_original_and_says_how_to_get_one(tmp_path: Path) -> None:
    active = active_model(ModelConfig(dir=tmp_path))
    assert active.paths.audio == tmp_path / AUDIO_MODEL
    assert not active.optimized
    assert "no optimised variant" in active.why
    assert "birdnet-edge model optimize" in active.why


@pytest.mark.parametrize(
    ("report", "why"),
    [
        ({"accepted": False}, "no accepted equivalence report"),
        ({"original_sha256": "0" * 64}, "not derived from the pinned V2.4 model"),
        ({"sha256": "0" * 64}, "changed since it was checked"),
    ],
)
def test_a_variant_that_cannot_be_trusted_is_not_used(
    tmp_path: Path, report: dict[str, object], why: str
) -> None:
    _derived(tmp_path, **report)
    active = active_model(ModelConfig(dir=tmp_path))
    assert active.paths.audio == tmp_path / AUDIO_MODEL
    assert why in active.why


def test_a_variant_file_changed_after_its_check_is_not_used(tmp_path: Path) -> None:
    variant = _derived(tmp_path)
    variant.write_bytes(variant.read_bytes()[:-1] + b"!")
    active = active_model(ModelConfig(dir=tmp_path))
    assert not active.optimized
    assert "changed since it was checked" in active.why


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '"accepted"', ""])
def test_an_unreadable_report_is_not_trusted(tmp_path: Path, text: str) -> None:
    _derived(tmp_path)
    (tmp_path / OPTIMIZED_REPORT).write_text(text, encoding="utf-8")
    active = active_model(ModelConfig(dir=tmp_path))
    assert not active.optimized
    assert "no accepted equivalence report" in active.why


def test_accepted_must_be_true_not_just_truthy(tmp_path: Path) -> None:
    _derived(tmp_path, accepted="false")
    assert not active_model(ModelConfig(dir=tmp_path)).optimized


@pytest.mark.parametrize("check", [[1], "x", None, {"max_delta_p": None}, {"max_delta_p": "n/a"}])
def test_an_odd_figure_in_the_report_reads_as_unknown(check: object) -> None:
    assert variants.check_figure(check, "max_delta_p") is None
    assert variants.check_figure({"max_delta_p": 3e-6}, "max_delta_p") == 3e-6


@pytest.mark.parametrize("generated", [[1], "x", {"max_delta_p": None}, {"max_delta_p": "n/a"}])
def test_odd_figures_in_an_accepted_report_do_not_break_start_up(
    tmp_path: Path, generated: object
) -> None:
    _derived(tmp_path, generated=generated)
    active = active_model(ModelConfig(dir=tmp_path))
    assert active.optimized
    assert active.why == "optimised variant, accepted by its equivalence check"


def test_a_variant_that_cannot_be_read_falls_back_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _derived(tmp_path)

    def denied(path: Path) -> str:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(variants, "sha256_of", denied)
    active = active_model(ModelConfig(dir=tmp_path))
    assert not active.optimized
    assert "cannot read" in active.why
    assert "Permission denied" in active.why


def test_naming_the_variant_file_still_needs_its_accepted_check(tmp_path: Path) -> None:
    (tmp_path / OPTIMIZED_MODEL).write_bytes(b"a variant nobody checked")
    with pytest.raises(ModelError, match=r"no accepted equivalence report"):
        active_model(ModelConfig(dir=tmp_path, file=OPTIMIZED_MODEL))
    _derived(tmp_path)
    assert active_model(ModelConfig(dir=tmp_path, file=OPTIMIZED_MODEL)).optimized


def test_file_and_variant_together_are_an_error_naming_both(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"model.file .* and model.variant .* remove one"):
        active_model(ModelConfig(dir=tmp_path, file="int8.tflite", variant="original"))


def test_variant_original_and_model_file_win_over_an_accepted_variant(tmp_path: Path) -> None:
    _derived(tmp_path)
    original = active_model(ModelConfig(dir=tmp_path, variant="original"))
    assert original.paths.audio == tmp_path / AUDIO_MODEL
    assert original.why == "model.variant is original"
    chosen = active_model(ModelConfig(dir=tmp_path, file="int8.tflite"))
    assert chosen.paths.audio == tmp_path / "int8.tflite"
    assert chosen.why == "model.file is set"


def test_variant_optimized_without_one_is_an_error_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"optimised model is asked for, but .*model optimize"):
        active_model(ModelConfig(dir=tmp_path, variant="optimized"))
