"""Sound devices: finding the configured input device and listing the inputs."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from birdnet_edge.errors import AudioError


def sound_devices() -> str:
    """A fingerprint of the system's sound devices: ALSA's card list and device nodes."""
    parts = []
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/asound/cards").read_text(encoding="utf-8", errors="replace"))
    with contextlib.suppress(OSError):
        parts.append(",".join(sorted(os.listdir("/dev/snd"))))
    return "\n".join(parts)


def portaudio() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # raised when libportaudio is missing
        raise AudioError(
            f"PortAudio is not available ({exc}): sudo apt-get install libportaudio2"
        ) from None
    return sounddevice


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def find_input_device(spec: str | None) -> int:
    """The input device index for ``spec``: an index, a name substring, or None (default)."""
    sd = portaudio()

    devices = list(sd.query_devices())
    if spec is None:
        index = sd.default.device[0]
        if index is None or index < 0:
            inputs = [i for i, d in enumerate(devices) if d["max_input_channels"] > 0]
            if not inputs:
                raise AudioError("no audio input device found")
            return inputs[0]
        return int(index)
    if spec.strip().isdigit():
        index = int(spec)
        if index >= len(devices) or devices[index]["max_input_channels"] < 1:
            raise AudioError(f"audio.device {index} is not an input device")
        return index
    matches = [
        i
        for i, d in enumerate(devices)
        if d["max_input_channels"] > 0 and spec.casefold() in str(d["name"]).casefold()
    ]
    if not matches:
        raise AudioError(f"no input device matches audio.device {spec!r}")
    return matches[0]


def list_input_devices(spec: str | None) -> list[str]:
    """Lines describing every input device, the one ``spec`` picks marked with ``*``."""
    sd = portaudio()

    try:
        chosen: int | None = find_input_device(spec)
    except AudioError:
        chosen = None
    lines = []
    for i, d in enumerate(sd.query_devices()):
        if d["max_input_channels"] < 1:
            continue
        mark = "*" if i == chosen else " "
        lines.append(
            f"{mark} {i:3d}  {d['name']}  ({d['max_input_channels']} ch, "
            f"{int(d['default_samplerate'])} Hz)"
        )
    return lines
