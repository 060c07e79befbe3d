"""Writing clips (FLAC or Opus) and their spectrograms on a thread of its own, never on the
audio or inference thread.

A clip is encoded in memory and written whole (a temporary name, then renamed), so a power cut
leaves either the file or nothing. A full or failing disk costs the clip, said once a minute,
never the detection or the listening.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import soundfile

from birdnet_edge.audio.format import SAMPLE_RATE
from birdnet_edge.clips import FORMATS
from birdnet_edge.clips.budget import ClipBudget, Kept, free_bytes
from birdnet_edge.clips.cutter import Clip
from birdnet_edge.clips.spectrogram import render

_LOGGER = logging.getLogger(__name__)

ERROR_EVERY = 60.0  # seconds between error lines while clips cannot be written


def encode(clip: Clip) -> bytes:
    """The clip as a file of the format its name ends with (48 kHz mono; FLAC: 16-bit)."""
    codec = FORMATS[PurePosixPath(clip.name).suffix]
    out = io.BytesIO()
    soundfile.write(out, clip.samples, SAMPLE_RATE, format=codec.format, subtype=codec.subtype)
    return out.getvalue()


def _write_whole(path: Path, data: bytes) -> None:
    """Write ``path`` under a temporary name, then rename it: whole or not at all."""
    partial = path.with_name(path.name + ".part")
    with open(partial, "wb") as f:
        f.write(data)
    os.replace(partial, path)


def image_of(clip: Path) -> Path:
    """The spectrogram beside a clip."""
    return clip.with_suffix(".png")


class ClipWriter:
    """Writes the clips handed to it under ``root``, in order, from one thread."""

    def __init__(
        self,
        root: Path,
        budget: ClipBudget | None = None,
        on_image: Callable[[bytes], None] | None = None,
    ) -> None:
        """Write under ``root`` within ``budget`` (checked now, at start, and before each clip);
        ``on_image`` is given each spectrogram written (for Home Assistant's image entity)."""
        self.root = root
        self.budget = budget
        self.on_image = on_image
        self.last_image: bytes | None = None
        self.written = 0
        self.failed = 0
        self.over_budget = 0  # clips not written: they did not fit
        if budget is not None and not budget.make_room(0, dt.datetime.now(dt.timezone.utc)):
            _LOGGER.warning("the clips under %s are over their budget", root)
        self._queue: queue.SimpleQueue[Clip | None] = queue.SimpleQueue()
        self._last_error = -ERROR_EVERY
        self._thread = threading.Thread(target=self._run, name="clip-writer", daemon=True)
        self._thread.start()

    def put(self, clip: Clip) -> None:
        """Queue a clip (any thread; never blocks)."""
        self._queue.put(clip)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            _LOGGER.warning("the clip writer did not finish within %.1f s", timeout)

    def _run(self) -> None:
        while (clip := self._queue.get()) is not None:
            try:
                self._write(clip)
            except (OSError, RuntimeError, ValueError) as exc:  # soundfile raises RuntimeError
                self.failed += 1
                now = time.monotonic()
                if now - self._last_error >= ERROR_EVERY:
                    self._last_error = now
                    _LOGGER.error(
                        "cannot write the clip %s under %s: %s (detections are still logged)",
                        clip.name, self.root, exc,
                    )  # fmt: skip

    def _write(self, clip: Clip) -> None:
        path = self.root / clip.name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = encode(clip)
        image = render(clip.samples, marked=clip.marked)
        d = clip.detection
        size = len(data) + len(image)
        if self.budget is not None and not self.budget.make_room(size, d.start):
            self.over_budget += 1
            raise OSError(
                f"no room within clips.max_size_mb and clips.min_free_mb (free {self._free_mb()} "
                "MB): the clip is not kept; raise the limits or free space"
            )
        _write_whole(path.with_suffix(".png"), image)  # the picture first: a clip has one
        _write_whole(path, data)
        self.written += 1
        self.last_image = image
        if self.budget is not None:
            self.budget.added(Kept(clip.name, size, d.scientific, d.confidence, d.start))
        if self.on_image is not None:
            self.on_image(image)

    def _free_mb(self) -> int:
        return free_bytes(self.root) >> 20
