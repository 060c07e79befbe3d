"""What birdnet-edge publishes: the detection message and Home Assistant's event (through the
outbox), and the retained state; and the :class:`Announcer` that decides when an event change
is announced.

The detection message's fields come from :func:`birdnet_edge.log.record.message`; its schema is
public (Home Assistant templates read it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import Counter
from typing import Any

from birdnet_edge.detect.confirm import Confirmation, confirmation
from birdnet_edge.detect.events import Announce, EventChange, OutboxMessage
from birdnet_edge.log import record
from birdnet_edge.log.record import Detection
from birdnet_edge.mqtt.discovery import EVENT_TYPE


def outbox_messages(d: Detection, announce: Announce) -> tuple[OutboxMessage, ...]:
    """The messages that announce ``d``: when it becomes a detection, the detection message and
    Home Assistant's event (both durable, so a detection made while the broker was away still
    fires its automations, with the detection's own ``start`` to judge its age); when it closes,
    its final state. (A detection that closes as it becomes one gets both.)"""
    out: list[OutboxMessage] = []
    if d.kind == "sound":  # on its own topic, never as a bird (nor Home Assistant's event)
        if announce == "detected":
            out.append(("sound", dumps(record.message(dataclasses.replace(d, closed=False)))))
        if d.closed:
            out.append(("sound", dumps(record.message(d))))
        return tuple(out)
    if announce == "detected":
        message = record.message(dataclasses.replace(d, closed=False))
        fired = {"event_type": EVENT_TYPE, "species": d.common, **message}
        out += [("detection", dumps(message)), ("event", dumps(fired))]
    if d.closed:
        out.append(("detection", dumps(record.message(d))))
    return tuple(out)


class Announcer:
    """Decides what each event change announces over MQTT, and stamps it with its messages.

    An event becomes a detection when it reaches ``mqtt.min_windows`` windows; from then on it
    grows and finally closes. Runs on the pipeline thread, before the sinks: the log writes the
    messages with the change (see :mod:`birdnet_edge.log.writer`), the publisher counts it.
    """

    def __init__(self, confirm: int | Confirmation, announced: set[str] | None = None) -> None:
        self.confirm = confirmation(confirm)
        #: Open events already announced as detections (a config reload hands the set on to
        #: the next announcer, so an event in progress is not announced twice).
        self.announced = announced if announced is not None else set()

    def __call__(self, change: EventChange) -> EventChange:
        d = change.detection
        announce: Announce
        if d.id in self.announced:
            announce = "final" if d.closed else "grew"
        elif d.windows >= self.confirm.windows(d.scientific):
            announce = "detected"
            self.announced.add(d.id)
        else:
            return change
        if d.closed:
            self.announced.discard(d.id)
        return dataclasses.replace(change, announce=announce, messages=outbox_messages(d, announce))


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class DayCounts:
    """Detections counted per species for one local date."""

    def __init__(self, date: dt.date) -> None:
        self.date = date
        self.species: Counter[str] = Counter()

    def as_json(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat(),
            "total": sum(self.species.values()),
            "species": dict(self.species.most_common()),
        }


def state_message(last: dict[str, Any] | None, today: DayCounts) -> dict[str, Any]:
    """The retained ``<prefix>/state``: the last detection (or null) and today's counts."""
    return {"last": last, "today": today.as_json()}
