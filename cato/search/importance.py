"""Feature importance at full depth: mutual information (the search prior, and pruning) and RFE ranks.

These are the classic feature-selection baselines (MI-top-k, RFE-top-k) and the starting points of
the search, as in CATO.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

#: MI below this (nats) counts as zero: the feature is pruned from the search space.
MI_EPSILON = 1e-3
#: Rows used for MI and RFE; enough for stable ranks, cheap on two cores.
SAMPLE_ROWS = 20_000


def _sample(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if len(y) <= SAMPLE_ROWS:
        return x, y
    idx = np.random.default_rng(seed).choice(len(y), SAMPLE_ROWS, replace=False)
    return x[idx], y[idx]


def mutual_information(x: np.ndarray, y: np.ndarray, seed: int = 0) -> np.ndarray:
    """MI (nats) between each column and the label."""
    from sklearn.feature_selection import mutual_info_classif
    xs, ys = _sample(x, y, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mi = mutual_info_classif(xs, ys, discrete_features=False, random_state=seed, n_neighbors=3)
    return np.maximum(mi, 0.0)


def rfe_ranking(x: np.ndarray, y: np.ndarray, seed: int = 0, step: int = 4) -> np.ndarray:
    """RFE rank of each column (1 = kept longest) with an extra-trees estimator."""
    from sklearn.ensemble import ExtraTreesClassifier
    from sklearn.feature_selection import RFE
    xs, ys = _sample(x, y, seed)
    est = ExtraTreesClassifier(n_estimators=40, max_depth=16, n_jobs=2, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rfe = RFE(est, n_features_to_select=1, step=step).fit(xs, ys)
    return rfe.ranking_


def top_k(features: Sequence[str], scores: Sequence[float], k: int, higher_is_better: bool = True) -> list[str]:
    order = np.argsort(-np.asarray(scores) if higher_is_better else np.asarray(scores), kind="stable")
    return [features[i] for i in order[:k]]


def inclusion_prior(mi: Sequence[float], expected: float = 10.0, floor: float = 0.02,
                    ceiling: float = 0.9) -> np.ndarray:
    """Per-feature probability of being picked, proportional to MI and scaled so that a draw holds about
    ``expected`` features: informative features first, and sets small enough to be cheap. Shapes the
    initial design and weights the acquisition (see samplers)."""
    mi = np.asarray(mi, dtype=float)
    total = mi.sum()
    if total <= 0:
        return np.full(len(mi), min(ceiling, max(floor, expected / max(len(mi), 1))))
    return np.clip(floor + expected * mi / total, floor, ceiling)
