"""Evidence for a detection: the audio clip of each event, cut from the ring the model read."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from birdnet_edge.config import Config


class Codec(NamedTuple):
    """How a clip file is written (libsndfile's format and subtype) and served (MIME type)."""

    format: str
    subtype: str
    mime: str


#: The clip formats by file suffix. FLAC keeps the scored audio bit for bit (~1.6 MB a
#: minute); Opus (in Ogg) takes ~0.46 MB a minute but 20 times the CPU.
FORMATS = {
    ".flac": Codec("FLAC", "PCM_16", "audio/flac"),
    ".opus": Codec("OGG", "OPUS", "audio/ogg"),
}


def clips_dir(cfg: Config, db_path: Path) -> Path:
    """Where clips go: ``clips.dir``, else a ``clips`` folder beside the database."""
    return cfg.clips.dir or db_path.parent / "clips"
