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
from birdnet_edge.detect.stack import sound_rules
from birdnet_edge.errors import ConfigError
from birdnet_edge.model.birdnet import load_labels
from birdnet_edge.model.files import ModelPaths
from birdnet_edge.model.labels import read_species_list


def preflight(cfg: Config) -> list[str]:
    """Raise the error ``run`` would stop with for ``cfg``, if any, without loading the model;
    returns warnings (things that work but should not be so)."""
    warnings = []
    if cfg.mqtt.enabled:
        from birdnet_edge.mqtt.settings import check_settings  # paho: only when MQTT is on

        check_settings(cfg)
        exposed = exposed_password_file(cfg.mqtt)
        if exposed is not None:
            warnings.append(exposed)
    species_list = cfg.filters.species_list
    if species_list is not None and not species_list.is_file():
        raise ConfigError(
            f"filters.species_list: {species_list} does not exist: create it or fix the path"
        )
    paths = ModelPaths.at(cfg.model.dir)
    if not paths.labels.is_file():
        return warnings  # no model here yet: `run` says so; names need the labels
    labels = load_labels(paths, cfg.model.locale)  # a missing language is an error here
    if species_list is not None:
        read_species_list(species_list, labels)
    excluded(labels, cfg.filters.exclude)
    sound_rules(cfg, labels)  # the noise rules' species
    return warnings
