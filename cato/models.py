"""Model families cato searches over, each exportable to ONNX, and their grouped cross-validation.

A :class:`ModelSpec` is a small value (family and size); ``build`` gives a fresh scikit-learn style
estimator, ``cross_val_f1`` scores it with K-fold cross-validation grouped by the corpus ``group``
(no group on both sides of a split) and ``to_onnx`` exports a fitted one with the feature order in
its metadata, as ``cato.inference`` checks it.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from cato.inference import FEATURES_KEY

#: Decision tree, random forest, and gradient-boosted trees (LightGBM).
FAMILIES = ("dt", "rf", "gbt")
FAMILY_NAMES = {"dt": "decision tree", "rf": "random forest", "gbt": "gradient-boosted trees"}
#: Families whose fit depends on the seed (bootstrap samples, feature order); LightGBM without bagging
#: does not, so averaging it over seeds would refit the same model.
SEEDED_FAMILIES = ("dt", "rf")
#: Seeds a study fits each seeded model with, on the same folds; its F1 is their mean.
DEFAULT_MODEL_SEEDS = 3
#: Search ranges of the size parameters: trees per ensemble, and depth of each tree.
N_TREES_RANGE = (10, 100)
TREE_DEPTH_RANGE = (2, 24)
CLASSES_KEY = "cato_classes"


class ModelSpecError(ValueError):
    pass


@dataclass(frozen=True)
class ModelSpec:
    family: str = "rf"
    #: Trees in the ensemble (rf, gbt); a decision tree has one.
    n_trees: int = 50
    #: Maximum depth of each tree.
    tree_depth: int = 16

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ModelSpecError(f"unknown model family {self.family!r} (choose from {', '.join(FAMILIES)})")
        if self.family == "dt" and self.n_trees != 1:
            object.__setattr__(self, "n_trees", 1)

    def __str__(self) -> str:
        if self.family == "dt":
            return f"dt(depth={self.tree_depth})"
        return f"{self.family}(trees={self.n_trees},depth={self.tree_depth})"

    def to_dict(self) -> dict:
        return asdict(self)

    def build(self, seed: int = 0, n_jobs: int = 2):
        if self.family == "dt":
            from sklearn.tree import DecisionTreeClassifier
            return DecisionTreeClassifier(max_depth=self.tree_depth, random_state=seed)
        if self.family == "rf":
            from sklearn.ensemble import RandomForestClassifier
            return RandomForestClassifier(n_estimators=self.n_trees, max_depth=self.tree_depth, n_jobs=n_jobs,
                                          random_state=seed)
        from lightgbm import LGBMClassifier
        # L2 regularisation keeps multi-class boosting from diverging on small, unbalanced classes; 15 leaves
        # and 63 bins keep one fit to seconds with a tree per class per round. One thread: LightGBM's
        # OpenMP threads spin while they wait, and beside any other busy process (Zeek profiling, a second
        # study) two of them ran several times slower than one (two are 1.4x faster on an idle machine).
        return LGBMClassifier(n_estimators=self.n_trees, max_depth=self.tree_depth,
                              num_leaves=min(15, 2 ** self.tree_depth), max_bin=63, learning_rate=0.1,
                              reg_lambda=1.0, min_child_samples=10, n_jobs=1, random_state=seed, verbose=-1)


def grouped_folds(y: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified K folds that never split a group; fewer folds when there are fewer groups."""
    from sklearn.model_selection import StratifiedGroupKFold
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ModelSpecError("cross-validation needs at least two groups")
    k = min(folds, n_groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes with fewer groups than folds
        return list(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(
            np.zeros(len(y)), y, groups))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    from sklearn.metrics import f1_score
    return float(f1_score(y_true, y_pred, average="macro", labels=np.unique(y_true), zero_division=0))


def cross_val_f1(x: np.ndarray, y: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]],
                 spec: ModelSpec, seed: int = 0, model_seeds: int = 1) -> dict:
    """Macro-F1 of out-of-fold predictions, plus the per-fold scores.

    With ``model_seeds`` > 1 a seeded family is fitted with seeds ``seed .. seed + model_seeds - 1`` on the
    same folds and the scores are averaged: one random forest's F1 swings with its seed by as much as
    the differences a search must decide (0.637-0.646 for five seeds of one configuration)."""
    runs = model_seeds if spec.family in SEEDED_FAMILIES else 1
    scores, per_fold = [], np.zeros(len(folds))
    for s in range(seed, seed + runs):
        pred = np.empty_like(y)
        for i, (train, test) in enumerate(folds):
            model = spec.build(s)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(x[train], y[train])
                pred[test] = model.predict(x[test])
            per_fold[i] += macro_f1(y[test], pred[test]) / runs
        scores.append(macro_f1(y, pred))
    return {"f1": float(np.mean(scores)), "f1_seeds": scores, "f1_folds": per_fold.tolist(),
            "f1_std": float(np.std(per_fold))}


def fit(x: np.ndarray, y: np.ndarray, spec: ModelSpec, seed: int = 0):
    model = spec.build(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y)
    return model


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
        onx = skl_to_onnx(model, np.zeros((1, n), np.float32), options={id(model): {"zipmap": False}},
                          target_opset={"": 15, "ai.onnx.ml": 3})
    for key, value in ((FEATURES_KEY, ",".join(features)), (CLASSES_KEY, ",".join(classes))):
        entry = onx.metadata_props.add()
        entry.key, entry.value = key, value
    return onx.SerializeToString()
