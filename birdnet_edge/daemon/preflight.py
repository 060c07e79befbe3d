"""What ``run`` refuses in a config, checked before anything starts: ``check-config`` and ``run``
call the same function, so a config that passes one passes the other.

Beyond the YAML's own keys and values (``config.load_config``): the MQTT topics, TLS files and
password, the species list, the names to exclude or to suppress by a noise rule, and the label
language. Names are checked
against the model's labels where the model is installed.
"""

from __future__ import annotations

from birdnet_edge.config import Config
from birdnet_edge.credentials import exposed_password_file
from birdnet_edge.detect.filters import excluded
from birdnet_edge.detect.stack import confirmation_of, names, per_label_thresholds, sound_rules
from birdnet_edge.errors import ConfigError
from birdnet_edge.model.birdnet import load_labels
from birdnet_edge.model.files import ModelPaths
from birdnet_edge.model.labels import read_species_list, species_indices


def preflight(cfg: Config) -> list[str]:
    """Raise the error ``run`` would stop with for ``cfg``, if any, without loading the model;
    returns warnings (things that work but should not be so)."""
    warnings = []
    privacy = cfg.filters.privacy
    reach = cfg.clips.post + privacy.seconds
    if cfg.clips.enabled and privacy.enabled and cfg.events.gap_seconds < reach:
        warnings.append(
            f"events.gap_seconds ({cfg.events.gap_seconds:g}) is shorter than clips.post + "
            f"filters.privacy.seconds ({reach:g}): a voice heard just after an event closes "
            "could be in its clip; raise events.gap_seconds"
        )
    if cfg.mqtt.enabled:
        from birdnet_edge.mqtt.settings import check_settings  # paho: only when MQTT is on

        check_settings(cfg)
        exposed = exposed_password_file(cfg.mqtt)
        if exposed is not None:
            warnings.append(exposed)
    species_list = cfg.filters.species_list
    for key, listed in (("species_list", species_list), ("exclude_list", cfg.filters.exclude_list)):
        if listed is not None and not listed.is_file():
            raise ConfigError(f"filters.{key}: {listed} does not exist: create it or fix the path")
    paths = ModelPaths.at(cfg.model.dir)
    if not paths.labels.is_file():
        return warnings  # no model here yet: `run` says so; names need the labels
    labels = load_labels(paths, cfg.model.locale)  # a missing language is an error here
    named = names(cfg, labels)  # in the configured language or in English
    for listed in (species_list, cfg.filters.exclude_list):
        if listed is not None:
            read_species_list(listed, named)
    excluded(named, cfg.filters.exclude)
    species_indices(named, cfg.filters.include, source="filters.include")
    per_label_thresholds(cfg, labels, named)
    confirmation_of(cfg, labels, named)
    sound_rules(cfg, labels, named)  # the noise rules' and the daylight filter's species
    return warnings
