"""The manifest of a compiled package: what its model takes and gives, and where it came from.

The schema hash ties the three parts of a deployment together: the generated script's vectors, the
ONNX model and the verdicts that come back all carry it, and a part whose hash differs is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from cato import __version__
from cato.model.onnx import OnnxModel

MANIFEST_NAME = "manifest.json"
#: Version of the manifest's layout; a package written with a newer one is refused.
MANIFEST_FORMAT = 1


class ManifestError(ValueError):
    pass


def schema_hash(features: Sequence[str], depth: int, version: str = __version__) -> str:
    """Identifies a vector layout: the features in order, the packet depth and the cato version."""
    return hashlib.sha256(json.dumps([list(features), int(depth), version]).encode()).hexdigest()[:16]


@dataclass
class Manifest:
    features: list[str]
    depth: int
    labels: list[str]
    model: dict
    #: Labels whose verdicts raise a Notice.
    alert_labels: list[str]
    #: The study point: trial number, its cross-validated objective values, the corpus it was tuned on.
    trial: int
    values: dict
    corpus: str
    label_column: str
    strategy: str
    #: Decision deadline of the script, seconds (None: none).
    deadline: float | None = None
    cato_version: str = __version__
    format: int = MANIFEST_FORMAT
    schema: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.schema:
            self.schema = schema_hash(self.features, self.depth, self.cato_version)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def module(self) -> str:
        """The Zeek module of the package's scripts and events (``Cato`` for a package compiled before
        each had its own)."""
        return self.extra.get("module", "Cato")

    def check_model(self, model: OnnxModel) -> None:
        """``model`` takes this manifest's features, in order, and gives its labels (ModelError or
        ManifestError otherwise): the one check that compile and serve both make."""
        model.check_features(self.features)
        if model.features is None or model.classes != self.labels:
            raise ManifestError(f"{model.path}: its classes {model.classes} are not the manifest's {self.labels}")

    def write(self, directory: Path) -> Path:
        path = Path(directory) / MANIFEST_NAME
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def read(cls, directory: Path) -> "Manifest":
        path = Path(directory) / MANIFEST_NAME
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ManifestError(f"{path}: missing (is {directory} a package made by `cato compile`?)") from None
        except (OSError, ValueError) as e:
            raise ManifestError(f"{path}: unreadable: {e}") from None
        if not isinstance(data, dict) or not isinstance(data.get("format"), int):
            raise ManifestError(f"{path}: not a cato manifest")
        if data["format"] > MANIFEST_FORMAT:
            raise ManifestError(f"{path}: manifest format {data['format']} is newer than this cato reads "
                                f"({MANIFEST_FORMAT}): upgrade cato")
        try:
            manifest = cls(**data)
        except TypeError as e:
            raise ManifestError(f"{path}: {e}") from None
        if manifest.schema != schema_hash(manifest.features, manifest.depth, manifest.cato_version):
            raise ManifestError(f"{path}: its schema hash does not match its features and depth (edited by hand?)")
        return manifest
