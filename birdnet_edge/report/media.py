"""The clips and spectrograms a report embeds (as ``data:`` URIs), within its size cap.

The newest detections come first: every spectrogram that fits (small, and what a reader scans),
then every clip that still fits. What is left out is counted, for the page to say so.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from birdnet_edge.clips.writer import image_of
from birdnet_edge.report.data import Row

#: Markup around each embedded item (the tag, its attributes, the URI's prefix), over-estimated.
TAG_BYTES = 400


@dataclass(frozen=True)
class Media:
    """One detection's embedded spectrogram and clip (None: not embedded)."""

    image: str | None = None  # data:image/png;base64,...
    size: tuple[int, int] | None = None  # the image's width and height in pixels
    audio: str | None = None  # data:audio/flac;base64,...


@dataclass(frozen=True)
class Embedded:
    """What a report embeds, and what it had to leave out."""

    media: Mapping[str, Media] = field(default_factory=dict)  # by detection id
    images_left_out: int = 0  # spectrograms on disk that did not fit the cap
    clips_left_out: int = 0  # clips on disk that did not fit the cap
    #: Ids of the detections whose clip the log names but is no longer on disk (the clip
    #: budget or retention deleted it).
    missing: frozenset[str] = frozenset()

    @property
    def left_out(self) -> bool:
        return bool(self.images_left_out or self.clips_left_out)


def _encoded_size(path: Path) -> int | None:
    """Bytes of ``path`` as base64 (None: not there)."""
    try:
        n = path.stat().st_size
    except OSError:
        return None
    return 4 * ((n + 2) // 3)


def png_size(data: bytes) -> tuple[int, int] | None:
    """A PNG's width and height from its header (None: not a PNG)."""
    if len(data) < 24 or not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _uri(kind: str, path: Path) -> tuple[str, bytes] | None:
    try:
        data = path.read_bytes()
    except OSError:  # deleted since it was measured (the clip budget runs meanwhile)
        return None
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}", data


def _fit(
    items: Sequence[tuple[str, Path]], kind: str, left: int
) -> tuple[dict[str, tuple[str, bytes]], int, int]:
    """The files of ``items`` (id, path) that fit in ``left`` bytes, in order, as (URI, bytes)
    by id; the bytes left; how many on disk did not fit."""
    chosen: dict[str, tuple[str, bytes]] = {}
    out = 0
    for ident, path in items:
        n = _encoded_size(path)
        if n is None:
            continue
        if n + TAG_BYTES > left:
            out += 1
            continue
        found = _uri(kind, path)
        if found is not None:
            chosen[ident] = found
            left -= n + TAG_BYTES
    return chosen, left, out


def embed(rows: Sequence[Row], budget: int) -> Embedded:
    """The media of ``rows`` (newest first) that fit in ``budget`` bytes of page."""
    clips = [(r.detection.id, r.clip) for r in rows if r.clip is not None]
    missing = frozenset(i for i, clip in clips if not clip.is_file())
    images, left, images_out = _fit([(i, image_of(c)) for i, c in clips], "image/png", budget)
    audio, _left, clips_out = _fit(clips, "audio/flac", left)
    media = {
        i: Media(
            image=images[i][0] if i in images else None,
            size=png_size(images[i][1]) if i in images else None,
            audio=audio[i][0] if i in audio else None,
        )
        for i in images.keys() | audio.keys()
    }
    return Embedded(media, images_out, clips_out, missing)
