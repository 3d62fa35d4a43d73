"""ONNX inference over feature vectors: load a model, check its feature order, time it.

A cato model takes one float32 input of shape [N, len(features)], features in catalog order. When
its metadata carries ``cato_features`` (comma-separated names), the order is checked against the
vectors it is given.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from cato.features import MISSING_VALUE

FEATURES_KEY = "cato_features"


class ModelError(ValueError):
    pass


@dataclass
class OnnxModel:
    path: Path
    session: object
    input_name: str
    n_features: int | None
    features: list[str] | None

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
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ModelError(f"{path}: not a loadable ONNX model: {e}") from None
        inputs = sess.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"{path}: expected one input tensor, found {len(inputs)}")
        shape = inputs[0].shape
        n = shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
        meta = sess.get_modelmeta().custom_metadata_map
        feats = [f for f in meta.get(FEATURES_KEY, "").split(",") if f] or None
        return cls(path, sess, inputs[0].name, n, feats)

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
