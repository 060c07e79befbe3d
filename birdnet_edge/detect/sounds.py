"""What BirdNET hears besides birds, and the rules that keep it from passing as a bird.

BirdNET V2.4's 6522 labels are mostly birds, but not all: human sounds (``Human vocal``,
``Human non-vocal``, ``Human whistle``), other sounds (``Dog``, ``Engine``, ``Siren``, ``Gun``,
``Fireworks``, ``Power tools``, ``Environmental``, ``Noise``), and some insects, frogs and
mammals. The label file has no taxonomy, so the animals that are not birds are kept here by
genus (checked against the label file by the tests).

Per window, in stream order (:class:`SoundGate`):

- a label of a kind not reported (``filters.classes``; human sounds and other sounds never)
  is not a detection: the species mask drops it before the gate;
- **privacy**: where a human sound reaches ``filters.privacy.threshold``, the time from
  ``seconds`` before to ``seconds`` after that window is private: no audio of it is kept
  (clips, when they exist) and, with ``drop_detections``, the bird detections of windows in it
  that are not reported yet are dropped (windows already reported, before the voice, stay:
  the daemon reports within a window's time and does not hold detections back);
- **noise rules**: a listed sound (a dog's bark, a siren...) at its threshold suppresses the
  listed species for ``seconds`` from that window on (a siren read as an owl).

Times are sample numbers of the stream, so replays and tests are exact.
"""

from __future__ import annotations

import collections
import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from birdnet_edge.audio.format import SAMPLE_RATE
from birdnet_edge.detect.daylight import is_day
from birdnet_edge.log.record import Kind as RecordKind
from birdnet_edge.model.labels import Label

IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float32]


class Kind(enum.Enum):
    """What a label is."""

    BIRD = "birds"
    INSECT = "insects"
    FROG = "frogs"
    MAMMAL = "mammals"
    HUMAN = "human"  # never reported; it opens a private stretch
    SOUND = "sounds"  # dog, engine, siren...: never reported as an animal


#: The kinds ``filters.classes`` may name: the animals.
ANIMALS = (Kind.BIRD, Kind.INSECT, Kind.FROG, Kind.MAMMAL)

HUMAN_LABELS = ("Human vocal", "Human non-vocal", "Human whistle")
SOUND_LABELS = (
    "Dog", "Engine", "Siren", "Gun", "Fireworks", "Power tools", "Environmental", "Noise",
)  # fmt: skip

#: The genera of BirdNET V2.4's labels that are not birds (its label file has no taxonomy).
GENERA = {
    Kind.INSECT: frozenset({
        "Allonemobius", "Amblycorypha", "Anaxipha", "Atlanticus", "Conocephalus", "Cyrtoxipha",
        "Eunemobius", "Gryllus", "Miogryllus", "Neoconocephalus", "Neonemobius", "Oecanthus",
        "Orchelimum", "Orocharis", "Phyllopalpus", "Pterophylla", "Scudderia",
    }),
    Kind.FROG: frozenset({
        "Acris", "Anaxyrus", "Dryophytes", "Eleutherodactylus", "Gastrophryne", "Hyliola",
        "Incilius", "Lithobates", "Pseudacris", "Scaphiopus", "Spea",
    }),
    Kind.MAMMAL: frozenset({
        "Alouatta", "Canis", "Odocoileus", "Sciurus", "Tamias", "Tamiasciurus",
    }),
}  # fmt: skip


def kind_of(label: Label) -> Kind:
    """The kind of one label."""
    if label.scientific in HUMAN_LABELS:
        return Kind.HUMAN
    if label.scientific in SOUND_LABELS:
        return Kind.SOUND
    genus = label.scientific.split(" ", 1)[0]
    for kind, genera in GENERA.items():
        if genus in genera:
            return kind
    return Kind.BIRD


_RECORDED: dict[Kind, RecordKind] = {
    Kind.BIRD: "bird", Kind.INSECT: "insect", Kind.FROG: "frog", Kind.MAMMAL: "mammal",
    Kind.SOUND: "sound", Kind.HUMAN: "sound",
}  # fmt: skip


def recorded_kind(label: Label) -> RecordKind:
    """The kind a detection of ``label`` is logged as."""
    return _RECORDED[kind_of(label)]


def kind_mask(labels: Sequence[Label], reported: Iterable[Kind]) -> npt.NDArray[np.bool_]:
    """The labels of the kinds reported (``filters.classes``)."""
    chosen = set(reported)
    return np.array([kind_of(label) in chosen for label in labels], dtype=bool)


def sound_indices(labels: Sequence[Label], names: Iterable[str]) -> IntArray:
    """The label indices of BirdNET's sounds by (scientific) name: ``Siren``, ``Dog``..."""
    wanted = set(names)
    return np.array([label.index for label in labels if label.scientific in wanted], dtype=np.intp)


@dataclass(frozen=True)
class NoiseRule:
    """A sound that suppresses some species for a while."""

    sounds: IntArray  # label indices of the sounds
    threshold: float
    samples: int  # how long the species stay suppressed after the sound's window ends
    species: frozenset[int]  # label indices suppressed
    name: str = ""  # for the logs: the sounds' names


@dataclass(frozen=True)
class SoundRules:
    """The window-by-window rules, built from the config (swapped whole on a reload)."""

    human: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    privacy_threshold: float | None = None  # None: no privacy filter
    privacy_samples: int = 0
    drop_in_private: bool = False
    noise: tuple[NoiseRule, ...] = ()
    #: Nocturnal species suppressed by day at ``location`` (latitude, longitude); None: off.
    nocturnal: frozenset[int] = frozenset()
    location: tuple[float, float] | None = None
    daylight_offset_minutes: float = 30.0

    @classmethod
    def for_labels(
        cls,
        labels: Sequence[Label],
        *,
        privacy_threshold: float | None,
        privacy_seconds: float,
        drop_in_private: bool,
        noise: tuple[NoiseRule, ...] = (),
        nocturnal: frozenset[int] = frozenset(),
        location: tuple[float, float] | None = None,
        daylight_offset_minutes: float = 30.0,
    ) -> SoundRules:
        human = np.array(
            [label.index for label in labels if kind_of(label) is Kind.HUMAN], dtype=np.intp
        )
        return cls(
            human=human,
            privacy_threshold=privacy_threshold if len(human) else None,
            privacy_samples=round(privacy_seconds * SAMPLE_RATE),
            drop_in_private=drop_in_private,
            noise=noise,
            nocturnal=nocturnal,
            location=location,
            daylight_offset_minutes=daylight_offset_minutes,
        )


@dataclass
class GateStats:
    """What the gate did, for the status line and the day's log."""

    private_windows: int = 0  # windows with a human sound at the privacy threshold
    dropped_private: int = 0  # bird hits dropped in a private stretch
    suppressed: int = 0  # hits dropped by a noise rule
    by_day: int = 0  # nocturnal species' hits dropped by day


@dataclass(frozen=True)
class Verdict:
    """One window through the gate: what passed, and why the rest did not."""

    hits: list[tuple[int, float]]
    private: bool  # the window lies in a private stretch: keep none of its audio
    dropped: list[tuple[int, str]]  # (label, reason) of the hits taken out


class SoundGate:
    """Applies :class:`SoundRules` to the windows of one stream, in order."""

    def __init__(self) -> None:
        self.private_until = -1  # sample number: windows starting before it are private
        #: The private stretches heard lately, oldest first: ``seconds`` either side of the
        #: windows with a human sound, merged where they touch (for evidence: clips).
        self.private_spans: collections.deque[tuple[int, int]] = collections.deque(maxlen=256)
        self.suppressed_until: dict[int, tuple[int, str]] = {}  # label -> (sample, by what)
        self.stats = GateStats()

    def window(
        self,
        rules: SoundRules,
        start: int,
        end: int,
        confidences: FloatArray,
        hits: list[tuple[int, float]],
        *,
        at: dt.datetime | None = None,
    ) -> Verdict:
        """Pass one window (sample numbers ``start``..``end``, starting at wall-clock time ``at``
        where known) with its scores and hits."""
        voice = (
            rules.privacy_threshold is not None
            and len(rules.human) > 0
            and float(confidences[rules.human].max()) >= rules.privacy_threshold
        )
        if voice:
            self.stats.private_windows += 1
            self.private_until = max(self.private_until, end + rules.privacy_samples)
            span = (start - rules.privacy_samples, end + rules.privacy_samples)
            if self.private_spans and span[0] <= self.private_spans[-1][1]:
                first, last = self.private_spans.pop()
                span = (min(first, span[0]), max(last, span[1]))
            self.private_spans.append(span)
        private = voice or start < self.private_until
        for rule in rules.noise:
            if float(confidences[rule.sounds].max()) >= rule.threshold:
                until = end + rule.samples
                for index in rule.species:
                    if self.suppressed_until.get(index, (-1, ""))[0] < until:
                        self.suppressed_until[index] = (until, rule.name)
        by_day = (
            at is not None
            and rules.location is not None
            and bool(rules.nocturnal.intersection(i for i, _ in hits))
            and is_day(*rules.location, at, rules.daylight_offset_minutes)
        )
        kept: list[tuple[int, float]] = []
        dropped: list[tuple[int, str]] = []
        for index, confidence in hits:
            by = self.suppressed_until.get(index)
            if by_day and index in rules.nocturnal:
                dropped.append((index, "daylight: a nocturnal species heard by day"))
                self.stats.by_day += 1
            elif private and rules.drop_in_private:
                dropped.append((index, "privacy: a human sound within the window's reach"))
                self.stats.dropped_private += 1
            elif by is not None and start < by[0]:
                dropped.append((index, f"noise: {by[1]} heard"))
                self.stats.suppressed += 1
            else:
                kept.append((index, confidence))
        return Verdict(kept, private, dropped)

    def is_private(self, start: int, end: int) -> bool:
        """Whether any audio from ``start`` to ``end`` lies within ``seconds`` of a human sound
        heard so far (for evidence kept later: clips)."""
        return any(start < last and end > first for first, last in self.private_spans)
