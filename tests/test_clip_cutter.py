"""The clip cutter's hold on the ring: what it still needs, and when it lets go."""

from __future__ import annotations

import dataclasses

import numpy as np

from birdnet_edge.audio.ring import RingBuffer
from birdnet_edge.clips.cutter import Clip, ClipCutter, ClipSettings
from birdnet_edge.detect.events import EventChange
from tests.test_sqlite_sink import make_event, shut

SR = 48_000


def test_a_clip_at_its_longest_no_longer_holds_the_ring() -> None:
    """A replay waits for room in the ring: a clip that held on to audio it will never take
    stalled it for good once an event outlasted clips.max_seconds plus the ring."""
    ring = RingBuffer(SR * 20)
    kept: list[Clip] = []
    cutter = ClipCutter(ring, ClipSettings(pre=0, post=SR, longest=5 * SR), kept.append)
    e = make_event()
    ring.write(np.full(3 * SR, 0.25, dtype=np.float32))
    cutter.follow([EventChange("opened", e)], window_end=3 * SR)
    assert cutter.oldest_needed() == 3 * SR  # copied up to the window's end, needs the rest
    for second in range(6, 30, 3):  # the bird goes on singing far past the clip's 5 s
        ring.write(np.full(3 * SR, 0.25, dtype=np.float32))
        e = dataclasses.replace(e, windows=e.windows + 1)
        cutter.follow([EventChange("updated", e)], window_end=second * SR)
        assert cutter.oldest_needed() is None, "the clip is whole: the ring may move on"
    cutter.follow([EventChange("closed", shut(e))], window_end=27 * SR)
    (clip,) = kept
    assert len(clip.samples) == 5 * SR
    assert np.all(clip.samples == round(0.25 * 32768))
