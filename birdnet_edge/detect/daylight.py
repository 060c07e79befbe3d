"""Day and night at the station, and the nocturnal birds that are not heard by day.

An owl or a nightjar reported at noon is most often something else (a dove, a distant dog, a
child imitating it). The filter suppresses the nocturnal species between sunrise and sunset,
shrunk by ``offset_minutes`` at both ends (dusk and dawn are theirs), at the station's location
and on the window's own date; sunrise and sunset come from ``astral`` (NOAA's formulas).

The nocturnal species are kept here by genus (the label file has no taxonomy): owls, nightjars
and nighthawks, potoos, frogmouths and owlet-nightjars, kiwis. Pygmy owls, hawk owls and the
little owls hunt by day and are not in it. Users add species with ``filters.daylight.species``.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence

from birdnet_edge.model.labels import Label

NOCTURNAL_GENERA = frozenset({
    # owls (Tytonidae, Strigidae; not Glaucidium, Surnia, Athene: they hunt by day)
    "Tyto", "Phodilus", "Strix", "Bubo", "Ketupa", "Scotopelia", "Otus", "Megascops",
    "Psiloscops", "Ptilopsis", "Asio", "Aegolius", "Ninox", "Pulsatrix", "Lophostrix",
    "Ciccaba", "Micrathene", "Pseudoscops", "Gymnoglaux", "Margarobyas", "Uroglaux",
    # nightjars and nighthawks
    "Caprimulgus", "Antrostomus", "Chordeiles", "Nyctidromus", "Phalaenoptilus", "Nyctiphrynus",
    "Hydropsalis", "Eurostopodus", "Lyncornis", "Systellura", "Setopagis", "Nyctiprogne",
    "Lurocalis", "Podager", "Gactornis",
    # potoos, frogmouths, owlet-nightjars, kiwis
    "Nyctibius", "Podargus", "Batrachostomus", "Rigidipenna", "Aegotheles", "Apteryx",
})  # fmt: skip


def nocturnal(labels: Sequence[Label]) -> frozenset[int]:
    """The label indices of the nocturnal species (by genus)."""
    return frozenset(
        label.index for label in labels if label.scientific.split(" ", 1)[0] in NOCTURNAL_GENERA
    )


@functools.lru_cache(maxsize=64)
def sun_times(latitude: float, longitude: float, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """Sunrise and sunset (aware, UTC) on the local solar ``day`` at the location; where the
    sun does not rise or set that day: the whole day is night, or day."""
    from astral import Observer
    from astral.sun import elevation, sunrise, sunset

    observer = Observer(latitude=latitude, longitude=longitude)
    solar = dt.timezone(dt.timedelta(hours=round(longitude / 15)))  # the day as lived there
    midnight = dt.datetime.combine(day, dt.time(), tzinfo=solar)
    utc = dt.timezone.utc
    try:
        rise = sunrise(observer, day, tzinfo=solar).astimezone(utc)
        return rise, sunset(observer, day, tzinfo=solar).astimezone(utc)
    except ValueError:  # polar day or night
        if elevation(observer, midnight + dt.timedelta(hours=12)) > 0:
            return midnight.astimezone(utc), (midnight + dt.timedelta(days=1)).astimezone(utc)
        return midnight.astimezone(utc), midnight.astimezone(utc)  # the sun never rises


def is_day(latitude: float, longitude: float, when: dt.datetime, offset_minutes: float) -> bool:
    """Whether ``when`` lies between sunrise and sunset shrunk by ``offset_minutes``."""
    offset = dt.timedelta(minutes=offset_minutes)
    solar = dt.timezone(dt.timedelta(hours=round(longitude / 15)))
    day = when.astimezone(solar).date()
    rise, set_ = sun_times(round(latitude, 3), round(longitude, 3), day)
    if set_ - rise >= dt.timedelta(days=1):
        return True
    return rise + offset <= when.astimezone(dt.timezone.utc) < set_ - offset
