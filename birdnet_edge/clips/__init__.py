"""Evidence for a detection: the audio clip of each event, cut from the ring the model read."""

from __future__ import annotations

from pathlib import Path

from birdnet_edge.config import Config


def clips_dir(cfg: Config, db_path: Path) -> Path:
    """Where clips go: ``clips.dir``, else a ``clips`` folder beside the database."""
    return cfg.clips.dir or db_path.parent / "clips"
