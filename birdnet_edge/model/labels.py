"""BirdNET label files (``Scientific name_Common name`` per line) and species lists."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from birdnet_edge.errors import BirdnetEdgeError, ModelError


@dataclass(frozen=True)
class Label:
    """One model output: its index, scientific and common name."""

    index: int
    scientific: str
    common: str


def parse_label(line: str, index: int) -> Label:
    """Split ``Scientific name_Common name`` (labels without ``_`` keep the text as both)."""
    text = line.strip()
    sci, sep, common = text.partition("_")
    return Label(index, sci, common if sep else sci)


def read_labels(path: Path) -> list[Label]:
    """Read a label file; every non-empty line is one model output, in order."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ModelError(
            f"label file {path} is missing: run `birdnet-edge model install`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read label file {path}: {exc}") from None
    return [parse_label(line, i) for i, line in enumerate(line for line in lines if line.strip())]


def translate(labels: Sequence[Label], translated: Sequence[Label]) -> list[Label]:
    """Labels with common names taken from a translated label file of the same model."""
    if len(translated) != len(labels):
        raise ModelError(
            f"translated label file has {len(translated)} labels, the model has {len(labels)}: "
            "reinstall it with `birdnet-edge model install --locale LANG`"
        )
    return [Label(a.index, a.scientific, b.common) for a, b in zip(labels, translated, strict=True)]


def read_species_list(path: Path, labels: Sequence[Label]) -> frozenset[int]:
    """Label indices named in a species list file.

    Each line is a label (``Scientific_Common``) or a scientific name; ``#`` starts a comment.
    An unknown name is an error naming the line, so a typo does not silently hide a species.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BirdnetEdgeError(
            f"cannot read species list {path}: {exc.strerror or exc}: check the path"
        ) from None
    except UnicodeDecodeError:
        raise BirdnetEdgeError(f"species list {path} is not UTF-8 text: save it as UTF-8") from None
    return species_indices(labels, lines, source=str(path))


def species_indices(
    labels: Sequence[Label], names: Iterable[str], *, source: str = "species list"
) -> frozenset[int]:
    """Indices of the labels named (full label, scientific or common name; case-insensitive)."""
    index: dict[str, int] = {}
    for label in labels:
        for key in (f"{label.scientific}_{label.common}", label.scientific, label.common):
            index.setdefault(key.casefold(), label.index)
    found: set[int] = set()
    for lineno, raw in enumerate(names, 1):
        name = raw.split("#", 1)[0].strip()
        if not name:
            continue
        key = name.casefold()
        if key not in index:
            key = parse_label(name, 0).scientific.casefold()
        if key not in index:
            raise BirdnetEdgeError(
                f"{source} line {lineno}: {name!r} is not a BirdNET V2.4 species: "
                + _suggestion(name, labels)
            )
        found.add(index[key])
    return frozenset(found)


def _suggestion(name: str, labels: Sequence[Label]) -> str:
    """What to write instead of an unknown name: the closest label's names."""
    names = {label.scientific: label for label in labels}
    names.update({label.common: label for label in labels})
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(name.title(), list(names), n=1, cutoff=0.6)
    if not close:
        return "fix the name (scientific or common, as in the label file)"
    label = names[close[0]]
    return f"did you mean {label.common!r} ({label.scientific})?"
