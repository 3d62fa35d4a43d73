"""Models: specs of the searched families, grouped cross-validation and training, and the ONNX contract."""

from cato.model.encoding import Vocabularies, learned_columns
from cato.model.onnx import CLASSES_KEY, FEATURES_KEY, ModelError, OnnxModel, to_onnx
from cato.model.spec import (
    DEFAULT_MODEL_SEEDS,
    FAMILIES,
    FAMILY_NAMES,
    N_TREES_RANGE,
    SEEDED_FAMILIES,
    TREE_DEPTH_RANGE,
    ModelSpec,
    ModelSpecError,
)
from cato.model.training import cross_val_f1, fit, grouped_folds, macro_f1

__all__ = [
    "CLASSES_KEY", "DEFAULT_MODEL_SEEDS", "FAMILIES", "FAMILY_NAMES", "FEATURES_KEY", "N_TREES_RANGE",
    "SEEDED_FAMILIES", "TREE_DEPTH_RANGE", "ModelError", "ModelSpec", "ModelSpecError", "OnnxModel",
    "Vocabularies", "cross_val_f1", "fit", "grouped_folds", "learned_columns", "macro_f1", "to_onnx",
]
