"""The ONNX contract of a cato model, in one place: export (``to_onnx``), load, check, predict, time.

A cato model takes one float32 input of shape [N, len(features)], missing values as
``MISSING_VALUE``, and gives a label and class probabilities. Its metadata carries the feature order
(``cato_features``, comma-separated names) and the class names (``cato_classes``, in the order of the
model's class indices); a loaded model checks the vectors it is given against them. Training
(``cato.model.training``), the search's inference timing, and deployment all go through here.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from cato.features import MISSING_VALUE

#: Metadata keys: the feature order and the class names.
FEATURES_KEY = "cato_features"
CLASSES_KEY = "cato_classes"


class ModelError(ValueError):
    pass


@dataclass
class OnnxModel:
    path: Path
    session: object
    input_name: str
    n_features: int | None
    features: list[str] | None
    classes: list[str] | None = None

    @classmethod
    def load(cls, path: str | Path) -> "OnnxModel":
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelError("ONNX inference needs onnxruntime: pip install 'cato[onnx]'") from None
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: model file not found")
        try:
            options = ort.SessionOptions()
            options.log_severity_level = 3  # errors only: some converters' declared shapes warn on every call
            sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ModelError(f"{path}: not a loadable ONNX model: {e}") from None
        inputs = sess.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"{path}: expected one input tensor, found {len(inputs)}")
        shape = inputs[0].shape
        n = shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
        meta = sess.get_modelmeta().custom_metadata_map
        feats = [f for f in meta.get(FEATURES_KEY, "").split(",") if f] or None
        classes = [c for c in meta.get(CLASSES_KEY, "").split(",") if c] or None
        return cls(path, sess, inputs[0].name, n, feats, classes)

    @property
    def key(self) -> str:
        """Content hash of the model file."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def time_vectors(self, vectors: pd.DataFrame) -> dict:
        """One-vector latency over ``vectors`` (rows with a column per feature, in any order)."""
        if self.features is None:
            raise ModelError(f"{self.path}: no {FEATURES_KEY} metadata: cannot tell which columns it takes")
        return self.time_per_vector(self.matrix(vectors, self.features))

    def check_features(self, features: Sequence[str]) -> None:
        if self.features is not None and list(self.features) != list(features):
            raise ModelError(f"{self.path}: trained on features {','.join(self.features)}, "
                             f"given {','.join(features)}")
        if self.n_features is not None and self.n_features != len(features):
            raise ModelError(f"{self.path}: takes {self.n_features} features, given {len(features)}")

    def matrix(self, vectors: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
        """The model's input from ``vectors`` (missing values as in training), checking the feature order."""
        self.check_features(features)
        cols = []
        for f in features:
            col = vectors[f]
            if not pd.api.types.is_numeric_dtype(col):
                raise ModelError(f"feature {f} is not numeric: encode it before inference")
            cols.append(col.astype("float64").to_numpy(na_value=MISSING_VALUE))
        return np.column_stack(cols).astype(np.float32) if cols else np.zeros((len(vectors), 0), np.float32)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def predict_scores(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class indices and the probability the model gives each its class."""
        labels, probabilities = self.session.run(None, {self.input_name: x})[:2]
        labels = np.asarray(labels, dtype=np.int64)
        return labels, np.asarray(probabilities, dtype=np.float64)[np.arange(len(labels)), labels]

    def time_per_vector(self, x: np.ndarray, samples: int = 1000) -> dict:
        """Latency of one-vector inferences (as a worker answering one connection at a time)."""
        if len(x) == 0:
            return {"p50": 0.0, "p95": 0.0, "samples": 0}
        rows = x[np.arange(samples) % len(x)]
        self.predict(rows[:1])  # warm up
        times = []
        for i in range(samples):
            t0 = time.perf_counter()
            self.predict(rows[i:i + 1])
            times.append((time.perf_counter() - t0) * 1000.0)
        return {"p50": float(np.percentile(times, 50)), "p95": float(np.percentile(times, 95)),
                "samples": samples}


def to_onnx(model, features: Sequence[str], classes: Sequence[str]) -> bytes:
    """ONNX bytes of a fitted model: float32 input [N, len(features)], label and probabilities out."""
    n = len(features)
    if type(model).__module__.startswith("lightgbm"):
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType
        onx = convert_lightgbm(model, initial_types=[("input", FloatTensorType([None, n]))], zipmap=False,
                               target_opset=15)
    else:
        from skl2onnx import to_onnx as skl_to_onnx
        from skl2onnx.common.data_types import FloatTensorType as SklFloatTensorType
        # A batch dimension of any size: from a sample array it is fixed at the sample's, and ONNX Runtime
        # warns on every call with another batch size.
        onx = skl_to_onnx(model, initial_types=[("input", SklFloatTensorType([None, n]))],
                          options={id(model): {"zipmap": False}}, target_opset={"": 15, "ai.onnx.ml": 3})
    for key, value in ((FEATURES_KEY, ",".join(features)), (CLASSES_KEY, ",".join(classes))):
        entry = onx.metadata_props.add()
        entry.key, entry.value = key, value
    return onx.SerializeToString()
