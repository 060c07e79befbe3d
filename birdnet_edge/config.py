"""Typed, frozen configuration loaded strictly from YAML.

Every section is a frozen dataclass; each field carries its documentation and limits in
``field(metadata=...)``. :func:`load_config` refuses unknown keys and bad values with an error that
names the key path (``analysis.overlap: must be between 0 and 2.9, got 3``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from birdnet_edge.errors import ConfigError

Runtime = Literal["auto", "litert", "tflite-runtime"]
Variant = Literal["auto", "original", "optimized"]
ClipFormat = Literal["flac", "opus"]

T = TypeVar("T")


def _f(default: Any, doc: str, *, lo: float | None = None, hi: float | None = None) -> Any:
    """A config field with its documentation and optional inclusive numeric limits."""
    return field(default=default, metadata={"doc": doc, "min": lo, "max": hi})


def _per_name(doc: str, *, lo: float, hi: float) -> Any:
    """A config field mapping names to values (empty by default, read-only once loaded)."""
    return field(
        default_factory=lambda: types.MappingProxyType({}),
        metadata={"doc": doc, "min": lo, "max": hi},
    )


@dataclass(frozen=True)
class StationConfig:
    """Where the listener stands."""

    name: str = _f("garden", "Station name; used in the database, MQTT topics and device ids.")
    latitude: float | None = _f(None, "Latitude in degrees (-90..90).", lo=-90, hi=90)
    longitude: float | None = _f(None, "Longitude in degrees (-180..180).", lo=-180, hi=180)


@dataclass(frozen=True)
class ModelConfig:
    """Which model files and runtime to use."""

    dir: Path | None = _f(None, "Model directory; default $XDG_DATA_HOME/birdnet-edge/models.")
    file: str | None = _f(
        None,
        "Audio model file name inside `dir`, e.g. an FP16 or INT8 model installed "
        "with `model install --from`; use it with `variant: auto`.",
    )
    variant: Variant = _f(
        "auto",
        "FP32 model variant: auto (the optimised one once `model install` or `model optimize` "
        "derived it and its check accepted it, else the original), original or optimized.",
    )
    runtime: Runtime = _f("auto", "TFLite runtime: auto, litert or tflite-runtime.")
    threads: int = _f(0, "Interpreter threads; 0 = one per CPU core.", lo=0, hi=64)
    locale: str | None = _f(None, "Language of common names, e.g. de (see `model install`).")


@dataclass(frozen=True)
class RefineConfig:
    """Extra windows where a species comes near the threshold (see README, Recall)."""

    enabled: bool = _f(
        True,
        "Score the windows between grid windows, every `step` s, where an allowed species "
        "reaches `candidate`; report each species on its best window.",
    )
    candidate: float = _f(
        0.2,
        "Confidence 0.01..0.99 that makes a grid window a candidate for refinement.",
        lo=0.01,
        hi=0.99,
    )
    step: float = _f(
        0.1, "Seconds 0.05..1 between the starts of the extra windows.", lo=0.05, hi=1.0
    )


@dataclass(frozen=True)
class AnalysisConfig:
    """How scores become detections, exactly as BirdNET-Analyzer 2.4."""

    sensitivity: float = _f(
        1.0, "Detection sensitivity 0.5..1.5; higher finds more.", lo=0.5, hi=1.5
    )
    min_confidence: float = _f(
        0.7, "Minimum confidence 0.01..0.99 for a detection.", lo=0.01, hi=0.99
    )
    overlap: float | Literal["auto"] = _f(
        1.5,
        "Window overlap in seconds 0..2.9, grid windows start every 3 - overlap s; or auto: "
        "what this board affords with 30 % headroom, from `birdnet-edge benchmark`.",
        lo=0.0,
        hi=2.9,
    )
    refine: RefineConfig = field(default_factory=RefineConfig)


@dataclass(frozen=True)
class PrivacyConfig:
    """Around human sounds (speech, a whistle): no audio kept, and optionally no detections."""

    enabled: bool = _f(
        True, "Treat the time around a window with a human sound as private (no audio kept)."
    )
    threshold: float = _f(
        0.05,
        "A window is human when Human vocal, Human non-vocal or Human whistle reaches this "
        "(0.01..0.99; low on purpose, as BirdNET-Go's).",
        lo=0.01,
        hi=0.99,
    )
    seconds: float = _f(
        3.0, "The private stretch reaches this far before and after such a window (0..60 s).",
        lo=0, hi=60,
    )  # fmt: skip
    drop_detections: bool = _f(
        False,
        "Also drop the bird detections of windows in a private stretch not yet reported "
        "(a whistling neighbour is a classic false positive; see README, Trust).",
    )


@dataclass(frozen=True)
class DaylightConfig:
    """Nocturnal birds (owls, nightjars...) reported by day are suppressed."""

    enabled: bool = _f(
        True, "Suppress nocturnal species between sunrise and sunset (needs the location)."
    )
    offset_minutes: float = _f(
        30.0, "Day starts this long after sunrise and ends this long before sunset (0..180).",
        lo=0, hi=180,
    )  # fmt: skip
    species: tuple[str, ...] = _f(
        (), "More nocturnal species, besides owls, nightjars, potoos, frogmouths and kiwis."
    )


Animal = Literal["birds", "insects", "frogs", "mammals"]
Sound = Literal[
    "Dog", "Engine", "Siren", "Gun", "Fireworks", "Power tools", "Environmental", "Noise"
]


@dataclass(frozen=True)
class NoiseRuleConfig:
    """A sound that suppresses species it is mistaken for (a siren for an owl)."""

    sounds: tuple[Sound, ...] = _f((), "BirdNET sounds that trigger the rule, e.g. [Siren, Dog].")
    threshold: float = _f(
        0.1, "A sound triggers the rule at this score (0.01..0.99).", lo=0.01, hi=0.99
    )
    seconds: float = _f(
        30.0, "Species stay suppressed this long after the sound (0..3600 s).", lo=0, hi=3600
    )
    species: tuple[str, ...] = _f((), "Species suppressed (scientific or common names).")


@dataclass(frozen=True)
class FiltersConfig:
    """Which species may be reported."""

    classes: tuple[Animal, ...] = _f(
        ("birds",),
        "Kinds of animal reported: birds, insects, frogs, mammals. BirdNET's other sounds "
        "(human, dog, engine, siren...) are never reported as animals.",
    )
    report_sounds: bool = _f(
        False,
        "Log BirdNET's other sounds (dog, engine, siren, gun, fireworks, power tools...) as "
        "events of their own kind, published on <prefix>/sound, never as birds; human sounds "
        "are never logged.",
    )
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    daylight: DaylightConfig = field(default_factory=DaylightConfig)
    noise: tuple[NoiseRuleConfig, ...] = _f(
        (),
        "Noise rules: a sound above its threshold suppresses the listed species for a while.",
    )

    species_list: Path | None = _f(
        None, "File of allowed species, one `Scientific name_Common name` per line."
    )
    range_filter: bool = _f(True, "Use the location/week range model when lat/lon are set.")
    range_threshold: float = _f(
        0.03, "Range-model occurrence threshold 0.01..0.99.", lo=0.01, hi=0.99
    )
    week: int = _f(
        0, "Week of year 1..48 for the range model; -1 = all year; 0 = current week.", lo=-1, hi=48
    )
    include: tuple[str, ...] = _f(
        (), "Only these species are reported (names; with species_list, both must allow)."
    )
    exclude: tuple[str, ...] = _f((), "Species never reported (scientific or common names).")
    exclude_list: Path | None = _f(None, "File of species never reported, one per line.")
    thresholds: Mapping[str, float] = _per_name(
        "Per-species minimum confidence, e.g. {House Sparrow: 0.85} (0.01..0.99).",
        lo=0.01, hi=0.99,
    )  # fmt: skip
    min_windows: Mapping[str, int] = _per_name(
        "Per-species windows before an event is reported (mqtt.min_windows for the rest).",
        lo=1, hi=100,
    )  # fmt: skip
    single_call: tuple[str, ...] = _f(
        (), "Species that call once: reported at their first window whatever min_windows says."
    )


@dataclass(frozen=True)
class AudioConfig:
    """The microphone."""

    device: str | None = _f(
        None,
        "Input device: a name substring or an index from `birdnet-edge devices`; "
        "default the system's default input.",
    )
    channel: int | None = _f(
        None, "Use only this input channel (0-based); default: downmix all channels.", lo=0
    )
    samplerate: int | None = _f(
        None,
        "Open the device at this rate (resampled to 48 kHz); default 48000, or the "
        "device's native rate if it refuses 48000.",
        lo=8000,
        hi=384000,
    )
    ring_seconds: float = _f(
        60.0, "Audio held in memory for the model to catch up (10..600 s).", lo=10, hi=600
    )
    stall_seconds: float = _f(
        5.0, "Reopen the stream when no audio arrives for this long (1..60 s).", lo=1, hi=60
    )


@dataclass(frozen=True)
class EventsConfig:
    """How window hits of one species merge into one detection event."""

    gap_seconds: float = _f(
        6.0,
        "An event closes when its species is not heard for this long (0..60 s).",
        lo=0,
        hi=60,
    )
    max_seconds: float = _f(
        300.0,
        "An event longer than this is closed and a new one opened (30..3600 s).",
        lo=30,
        hi=3600,
    )


@dataclass(frozen=True)
class DatabaseConfig:
    """The local SQLite detection log."""

    path: Path | None = _f(
        None,
        "SQLite file; default $XDG_STATE_HOME/birdnet-edge/detections.db "
        "(/var/lib/birdnet-edge/detections.db under systemd).",
    )
    retention_days: int = _f(0, "Delete detections older than this; 0 = keep all.", lo=0)
    max_size_mb: int = _f(0, "Prune the oldest detections above this size; 0 = no limit.", lo=0)


@dataclass(frozen=True)
class ClipsConfig:
    """An audio clip of each bird detection, cut from the audio the model scored."""

    enabled: bool = _f(True, "Keep a clip and a spectrogram of each bird detection.")
    dir: Path | None = _f(None, "Where clips go; default a clips folder beside the database.")
    format: ClipFormat = _f(
        "flac", "flac (lossless: the scored audio bit for bit, ~1.6 MB a minute) or opus "
        "(lossy, ~0.46 MB a minute, 20 times the CPU to encode).",
    )  # fmt: skip
    pre: float = _f(1.0, "Audio kept before the event's first window (0..10 s).", lo=0, hi=10)
    post: float = _f(1.0, "Audio kept after the event's last window (0..10 s).", lo=0, hi=10)
    max_seconds: float = _f(
        60.0, "A clip holds at most this much of a long event, from its start (5..300 s).",
        lo=5, hi=300,
    )  # fmt: skip
    max_size_mb: int = _f(1024, "The clips take at most this much disk (MB; 0 = no limit).", lo=0)
    min_free_mb: int = _f(
        500, "A clip is written only if this much stays free on its disk (MB; 0 = no floor).",
        lo=0,
    )  # fmt: skip
    retention_days: float = _f(
        30.0, "Clips older than this are deleted (days; 0 = kept while the budget allows).",
        lo=0,
    )  # fmt: skip


@dataclass(frozen=True)
class TLSConfig:
    """TLS for the MQTT connection."""

    enabled: bool = _f(False, "Connect with TLS.")
    ca_file: Path | None = _f(None, "CA certificate file; default the system's CAs.")
    certfile: Path | None = _f(None, "Client certificate file (optional).")
    keyfile: Path | None = _f(None, "Client key file (optional).")
    insecure: bool = _f(False, "Skip the server hostname check (not recommended).")


@dataclass(frozen=True)
class DiscoveryConfig:
    """Home Assistant MQTT discovery."""

    enabled: bool = _f(True, "Publish Home Assistant discovery messages.")
    prefix: str = _f("homeassistant", "Home Assistant's discovery prefix.")


@dataclass(frozen=True)
class MQTTConfig:
    """Publishing detections over MQTT."""

    enabled: bool = _f(False, "Publish detections to an MQTT broker.")
    host: str = _f("localhost", "Broker host name or address.")
    port: int = _f(1883, "Broker port (8883 is usual with TLS).", lo=1, hi=65535)
    client_id: str | None = _f(None, "MQTT client id; default birdnet-edge-<station slug>.")
    keepalive: int = _f(30, "Keepalive in seconds (5..3600).", lo=5, hi=3600)
    protocol: Literal["3.1.1", "5"] = _f("3.1.1", "MQTT protocol version: 3.1.1 or 5.")
    username: str | None = _f(None, "User name, if the broker wants one.")
    password_file: Path | None = _f(
        None,
        "File holding the password. Also read from $BIRDNET_EDGE_MQTT_PASSWORD or the "
        "systemd credential mqtt-password ($CREDENTIALS_DIRECTORY).",
    )
    topic_prefix: str | None = _f(None, "Topic prefix; default birdnet-edge/<station slug>.")
    min_windows: int = _f(
        1,
        "Publish an event once it has this many windows over threshold (1 = at once).",
        lo=1,
        hi=20,
    )
    tls: TLSConfig = field(default_factory=TLSConfig)
    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    station: StationConfig = field(default_factory=StationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    filters: FiltersConfig = field(default_factory=FiltersConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    clips: ClipsConfig = field(default_factory=ClipsConfig)
    mqtt: MQTTConfig = field(default_factory=MQTTConfig)

    def __post_init__(self) -> None:
        if (self.station.latitude is None) != (self.station.longitude is None):
            raise ConfigError("station: latitude and longitude must be given together (or neither)")
        if self.model.file is not None and self.model.variant != "auto":
            raise ConfigError(
                f"model: file ({self.model.file}) and variant ({self.model.variant}) both choose "
                "the audio model: remove one of them"
            )


def load_config(path: Path | str | None) -> Config:
    """Load and validate a YAML config file; ``None`` gives the defaults."""
    if path is None:
        return Config()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist: copy config.example.yaml there and edit it"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text: save it as UTF-8") from None
    try:
        _refuse_duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader), "", path)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: fix the syntax") from None
    if data is None:
        data = {}
    return build(Config, data, "", base=path.parent)


def _refuse_duplicate_keys(node: yaml.Node | None, prefix: str, path: Path) -> None:
    """YAML keeps the last of two equal keys silently; a config that says a thing twice is
    an error naming the key path and both lines."""
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicate_keys(item, f"{prefix}[{i}]", path)
    elif isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            line = key.start_mark.line + 1
            if name in seen:
                raise ConfigError(
                    f"{path}: {_join(prefix, name)} is set twice (lines {seen[name]} and "
                    f"{line}): keep one"
                )
            seen[name] = line
            _refuse_duplicate_keys(value, _join(prefix, name), path)


def build(cls: type[T], data: Any, prefix: str, *, base: Path | None = None) -> T:
    """Build dataclass ``cls`` from ``data``, naming the key path in every error."""
    where = prefix or "config"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping of keys to values")
    assert dataclasses.is_dataclass(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        known = ", ".join(fields)
        raise ConfigError(f"{_join(prefix, unknown[0])}: unknown key (known keys: {known})")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        key = _join(prefix, name)
        kwargs[name] = _convert(hints[name], value, key, fields[name].metadata, base)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{prefix + '.' if prefix else ''}{exc}") from None


def check_value(cls: type[Any], name: str, value: Any, key: str) -> Any:
    """``value`` for field ``name`` of section ``cls``, checked and converted exactly as in a
    config file; errors name ``key`` (e.g. a command-line option)."""
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    return _convert(typing.get_type_hints(cls)[name], value, key, field.metadata, None)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _convert(  # noqa: PLR0912 - one branch per supported type reads best
    tp: Any, value: Any, key: str, meta: Any, base: Path | None
) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        # A number or a word (`overlap: auto`): a word goes to the Literal.
        words = [a for a in inner if typing.get_origin(a) is Literal]
        if words and len(inner) == 2:
            (other,) = [a for a in inner if a not in words]
            if isinstance(value, str):
                return _convert(words[0], value, key, meta, base)
            return _convert(other, value, key, meta, base)
        (only,) = inner
        return _convert(only, value, key, meta, base)
    if dataclasses.is_dataclass(tp):
        # A section whose keys are all commented out is empty in YAML: its defaults hold.
        return build(typing.cast(type[Any], tp), {} if value is None else value, key, base=base)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices and str(value) in choices:  # `protocol: 5` in YAML is a number
            value = str(value)
        if value not in choices:
            allowed = ", ".join(map(str, choices))
            raise ConfigError(f"{key}: must be one of {allowed}, got {value!r}")
        return value
    if origin in (dict, Mapping):
        # A mapping of names to values (per-species settings): read-only once loaded.
        if value is None:
            return types.MappingProxyType({})
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: must be a mapping of names to values")
        _, inner = typing.get_args(tp)
        return types.MappingProxyType(
            {str(k): _convert(inner, v, f"{key}.{k}", meta, base) for k, v in value.items()}
        )
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, list):
            raise ConfigError(f"{key}: must be a list")
        (inner,) = typing.get_args(tp)[:1]
        return tuple(_convert(inner, v, f"{key}[{i}]", meta, base) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: must be true or false, got {value!r}")
        return value
    if tp in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: must be a number, got {value!r}")
        if tp is int and not float(value).is_integer():
            raise ConfigError(f"{key}: must be a whole number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: must be a finite number, got {value!r}")
        lo, hi = meta.get("min"), meta.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"{key}: {_limits(lo, hi)}, got {value!r}")
        return tp(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}: must be text, got {value!r}")
        return str(value)
    if tp is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: must be a file path, got {value!r}")
        p = Path(os.path.expandvars(value)).expanduser()
        return base / p if base is not None and not p.is_absolute() else p
    raise TypeError(f"unsupported config type {tp!r} for {key}")  # a programming error


def _limits(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"must be between {lo:g} and {hi:g}"
    return f"must be at least {lo:g}" if lo is not None else f"must be at most {hi:g}"


def field_docs(cls: type[Any], prefix: str = "") -> dict[str, str]:
    """Every key path of ``cls`` with its documentation (used to check the example config)."""
    docs: dict[str, str] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = _join(prefix, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            docs.update(field_docs(hints[f.name], key))
        else:
            docs[key] = f.metadata.get("doc", "")
    return docs
