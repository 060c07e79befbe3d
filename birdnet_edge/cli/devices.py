"""``birdnet-edge devices``: the audio inputs, and which one the config picks."""

from __future__ import annotations

import argparse
from pathlib import Path

from birdnet_edge.cli.options import run_config_path
from birdnet_edge.config import load_config
from birdnet_edge.errors import BirdnetEdgeError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("devices", help="list audio input devices")
    p.add_argument("-c", "--config", type=Path, help="mark the device this config picks")
    p.set_defaults(handler=cmd_devices)


def cmd_devices(args: argparse.Namespace) -> int:
    from birdnet_edge.audio.devices import list_input_devices

    cfg = load_config(run_config_path(args))  # the config `run` would use
    lines = list_input_devices(cfg.audio.device)
    if not lines:
        raise BirdnetEdgeError("no audio input devices found: plug in a USB microphone")
    print("  idx  name  (input channels, default rate); * = the device the config picks")
    print("\n".join(lines))
    return 0
