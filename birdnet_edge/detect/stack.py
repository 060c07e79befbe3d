"""Build the detection stack (classifier, labels, species filter) from a :class:`Config`."""

from __future__ import annotations

import datetime as dt
import logging
import types
from collections.abc import Sequence

import numpy as np

from birdnet_edge.audio.format import SAMPLE_RATE
from birdnet_edge.config import Config
from birdnet_edge.detect.confirm import Confirmation
from birdnet_edge.detect.daylight import nocturnal
from birdnet_edge.detect.detector import Detector, Thresholds
from birdnet_edge.detect.filters import FloatArray, allowed_mask, excluded, week_of_year
from birdnet_edge.detect.sounds import Kind, NoiseRule, SoundRules, kind_mask, sound_indices
from birdnet_edge.errors import ModelError
from birdnet_edge.model.birdnet import Classifier, RangeModel, load_labels
from birdnet_edge.model.files import ModelPaths
from birdnet_edge.model.labels import Label, read_labels, read_species_list, species_indices
from birdnet_edge.model.probe import choose_runtime
from birdnet_edge.model.variants import ActiveModel, active_model

_LOGGER = logging.getLogger(__name__)


def names(cfg: Config, labels: Sequence[Label]) -> list[Label]:
    """The labels names in the config are looked up in: in the configured language, and in
    English (the label file's own) when that is another."""
    if cfg.model.locale is None:
        return list(labels)
    english = read_labels(ModelPaths.at(cfg.model.dir).labels)
    return [*labels, *english] if len(english) == len(labels) else list(labels)


#: Why a label is not allowed, by the part of the species filter that leaves it out.
Part = tuple[str, frozenset[int]]


def species_parts(
    cfg: Config,
    labels: Sequence[Label],
    today: dt.date | None = None,
    *,
    kinds: bool = True,
    named: Sequence[Label] | None = None,
) -> tuple[list[Part], frozenset[int]]:
    """The parts of the species filter, each the labels it allows and what leaving a label out
    means, and the labels excluded; with ``kinds`` False every kind is allowed (as
    BirdNET-Analyzer). ``named``: :func:`names`, when the caller has it already."""
    f = cfg.filters
    named = named or names(cfg, labels)
    # Sounds are not species: with report_sounds no species list or range filter applies.
    sounds = (
        frozenset(np.flatnonzero(kind_mask(labels, [Kind.SOUND])).tolist())
        if kinds and f.report_sounds
        else frozenset()
    )
    parts: list[Part] = []
    if kinds:
        reported = [Kind(name) for name in f.classes]
        kind = frozenset(np.flatnonzero(kind_mask(labels, reported)).tolist()) | sounds
        parts.append((f"not of a kind reported (filters.classes: {', '.join(f.classes)})", kind))
    if f.species_list is not None:
        listed = read_species_list(f.species_list, named) | sounds
        parts.append(("not in filters.species_list", listed))
    if f.include:
        included = species_indices(named, f.include, source="filters.include") | sounds
        parts.append(("not in filters.include", included))
    lat, lon = cfg.station.latitude, cfg.station.longitude
    if cfg.filters.range_filter and lat is not None and lon is not None:
        week = cfg.filters.week
        if week == 0:
            week = week_of_year(today or dt.date.today())
        meta_path = ModelPaths.at(cfg.model.dir).meta  # the range model has no variants
        meta = RangeModel(meta_path, choose_runtime(cfg.model.runtime, meta_path, threads=1), 1)
        found = meta.species(lat, lon, week, cfg.filters.range_threshold)
        _LOGGER.info(
            "range filter: %d species expected at %.2f, %.2f in week %d", len(found), lat, lon, week
        )
        parts.append((f"not expected here in week {week} (the range filter)", found | sounds))
    exclude = excluded(named, f.exclude)
    if f.exclude_list is not None:
        exclude |= read_species_list(f.exclude_list, named)
    return parts, exclude


def sound_rules(
    cfg: Config, labels: Sequence[Label], named: Sequence[Label] | None = None
) -> SoundRules:
    """The privacy, noise and daylight rules of ``cfg.filters`` for these labels."""
    privacy = cfg.filters.privacy
    named = named or names(cfg, labels)
    noise = tuple(
        NoiseRule(
            sounds=sound_indices(labels, rule.sounds),
            threshold=rule.threshold,
            samples=round(rule.seconds * SAMPLE_RATE),
            species=species_indices(named, rule.species, source=f"filters.noise[{i}].species"),
            name=" or ".join(rule.sounds),
        )
        for i, rule in enumerate(cfg.filters.noise)
        if rule.sounds and rule.species
    )
    daylight = cfg.filters.daylight
    lat, lon = cfg.station.latitude, cfg.station.longitude
    location = (lat, lon) if daylight.enabled and lat is not None and lon is not None else None
    extra = species_indices(named, daylight.species, source="filters.daylight.species")
    return SoundRules.for_labels(
        labels,
        privacy_threshold=privacy.threshold if privacy.enabled else None,
        privacy_seconds=privacy.seconds,
        drop_in_private=privacy.drop_detections,
        noise=noise,
        nocturnal=nocturnal(labels) | extra if location is not None else frozenset(),
        location=location,
        daylight_offset_minutes=daylight.offset_minutes,
    )


def per_label_thresholds(
    cfg: Config, labels: Sequence[Label], named: Sequence[Label] | None = None
) -> FloatArray | None:
    """``analysis.min_confidence`` for every label, but ``filters.thresholds``' own."""
    given = cfg.filters.thresholds
    if not given:
        return None
    named = named or names(cfg, labels)
    out = np.full(len(labels), cfg.analysis.min_confidence, dtype=np.float32)
    for name, value in given.items():
        for index in species_indices(named, [name], source=f"filters.thresholds.{name}"):
            out[index] = value
    return out


def confirmation_of(
    cfg: Config, labels: Sequence[Label], named: Sequence[Label] | None = None
) -> Confirmation:
    """The confirmation rule: ``mqtt.min_windows``, ``filters.min_windows`` per species, 1 for
    ``filters.single_call``."""
    named = named or names(cfg, labels)
    per: dict[str, int] = {}
    for name, windows in cfg.filters.min_windows.items():
        for index in species_indices(named, [name], source=f"filters.min_windows.{name}"):
            per[labels[index].scientific] = windows
    for index in species_indices(named, cfg.filters.single_call, source="filters.single_call"):
        per[labels[index].scientific] = 1
    return Confirmation(cfg.mqtt.min_windows, types.MappingProxyType(per))


def thresholds(
    cfg: Config, labels: Sequence[Label], *, kinds: bool = True, today: dt.date | None = None
) -> Thresholds:
    """What turns scores into detections for ``cfg``; with ``kinds`` False (``analyze``, as
    BirdNET-Analyzer) every label may be reported and no sound rules apply."""
    named = names(cfg, labels)  # the label file read once for every part that looks names up
    parts, exclude = species_parts(cfg, labels, today, kinds=kinds, named=named)
    return Thresholds(
        min_confidence=cfg.analysis.min_confidence,
        sensitivity=cfg.analysis.sensitivity,
        allowed=allowed_mask(len(labels), species=[p for _, p in parts], exclude=exclude),
        left_out=(*parts, ("excluded (filters.exclude)", frozenset(range(len(labels))) - exclude)),
        per_label=per_label_thresholds(cfg, labels, named),
        sounds=sound_rules(cfg, labels, named) if kinds else None,
    )


def _load_classifier(cfg: Config, active: ActiveModel) -> Classifier:
    # A runtime that crashes natively on this machine is found in a child process first.
    paths = active.paths
    runtime = choose_runtime(cfg.model.runtime, paths.audio, threads=cfg.model.threads)
    # The variant's windows with a stretch of digital silence go to the original it came from.
    original = ModelPaths.at(paths.dir).audio if active.optimized else None
    return Classifier(paths.audio, runtime, cfg.model.threads, original=original)


def load_detector(cfg: Config, *, kinds: bool = True) -> Detector:
    """Load the model and labels and build the filters the config asks for (``kinds``: see
    :func:`thresholds`)."""
    active = active_model(cfg.model)
    paths = active.paths
    labels = load_labels(paths, cfg.model.locale)
    try:
        classifier = _load_classifier(cfg, active)
    except ModelError as exc:
        if active.fallback is None:
            raise
        # The variant passed its check when it was made; if it no longer loads (a runtime
        # changed), the original still does the same work.
        _LOGGER.warning("optimised model does not load (%s); using the original", exc)
        active = ActiveModel(active.fallback, f"original: the variant failed: {exc}")
        paths = active.paths
        classifier = _load_classifier(cfg, active)
    _LOGGER.info(
        "model %s on %s with %d threads (%s)",
        paths.audio.name,
        classifier.runtime,
        classifier.model.threads,
        active.why,
    )
    return Detector(classifier, labels, thresholds(cfg, labels, kinds=kinds))
