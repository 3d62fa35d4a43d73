"""Model families cato searches over: a :class:`ModelSpec` is a small value (family and size), and
``build`` gives a fresh scikit-learn style estimator for it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

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
