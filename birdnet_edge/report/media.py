"""The clips and spectrograms a report embeds (as ``data:`` URIs), within its size cap.

The newest detections come first, each with its spectrogram and then its clip while they fit
(a clip is several times its spectrogram's size: once clips no longer fit, smaller spectrograms
of older detections may). What is left out is counted, for the page to say so.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from birdnet_edge.clips import FORMATS
from birdnet_edge.clips.writer import image_of
from birdnet_edge.report.data import Row

#: Markup around each embedded item (the tag, its attributes, the URI's prefix), over-estimated.
TAG_BYTES = 400


@dataclass(frozen=True)
class Media:
    """One detection's embedded spectrogram and clip (None: not embedded)."""

    image: str | None = None  # data:image/png;base64,...
    size: tuple[int, int] | None = None  # the image's width and height in pixels
    audio: str | None = None  # data:audio/flac;base64,... (or audio/ogg: an Opus clip)


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


def embed(rows: Sequence[Row], budget: int) -> Embedded:
    """The media of ``rows`` (newest first) that fit in ``budget`` bytes of page."""
    clips = [(r.detection.id, r.clip) for r in rows if r.clip is not None]
    missing = frozenset(i for i, clip in clips if not clip.is_file())
    media: dict[str, Media] = {}
    left = budget
    out = {"image": 0, "audio": 0}
    for ident, clip in clips:
        found: dict[str, tuple[str, bytes]] = {}
        codec = FORMATS.get(clip.suffix)
        mime = codec.mime if codec else "application/octet-stream"
        for part, kind, path in (("image", "image/png", image_of(clip)), ("audio", mime, clip)):
            n = _encoded_size(path)
            if n is None:
                continue
            if n + TAG_BYTES > left:
                out[part] += 1
                continue
            item = _uri(kind, path)
            if item is not None:
                found[part] = item
                left -= n + TAG_BYTES
        if found:
            image = found.get("image")
            audio = found.get("audio")
            media[ident] = Media(
                image=image[0] if image else None,
                size=png_size(image[1]) if image else None,
                audio=audio[0] if audio else None,
            )
    return Embedded(media, out["image"], out["audio"], missing)
