"""The confirmation rule: how many windows make an event a detection.

``mqtt.min_windows`` for every species (1 by default: reported at its first window), overridden
per species by ``filters.min_windows``; species in ``filters.single_call`` (a bird that calls
once, a woodpecker's single drum) count at their first window whatever the rest need. Events
below the rule are logged but not announced, and do not count as the species' latest detection.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Confirmation:
    """Windows needed per species (by scientific name), and for the others."""

    default: int = 1
    per_species: Mapping[str, int] = field(default_factory=lambda: types.MappingProxyType({}))

    def windows(self, scientific: str) -> int:
        return self.per_species.get(scientific, self.default)


def confirmation(rule: int | Confirmation) -> Confirmation:
    """A rule given as a number of windows for every species, or already whole."""
    return rule if isinstance(rule, Confirmation) else Confirmation(rule)
