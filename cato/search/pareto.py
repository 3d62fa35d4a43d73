"""Pareto fronts and hypervolume over (macro-F1, costs).

Hypervolume is computed in a space where every objective is maximised and costs are on a log
scale, since they span orders of magnitude (time-to-decision from microseconds to seconds):
``f1`` stays as it is, a cost ``c`` becomes ``log10(c_ref / c)``. The reference point is F1 = 0 and
the worst cost of the points compared (``reference``), so methods compared on one corpus share it.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from cato.search.objectives import OBJECTIVES

#: Floor for costs before taking logs (a time-to-decision can be 0 at depth 1).
COST_FLOOR = 1e-3


def to_max_space(values: Sequence[Mapping[str, float]], objectives: Sequence[str],
                 reference: Mapping[str, float] | None = None) -> np.ndarray:
    """Rows of objective values where larger is better; costs as log10(reference / cost)."""
    out = np.zeros((len(values), len(objectives)))
    for j, name in enumerate(objectives):
        col = np.array([float(v[name]) for v in values])
        if OBJECTIVES[name] == "max":
            out[:, j] = col
        else:
            ref = reference[name] if reference else 1.0
            out[:, j] = np.log10(max(ref, COST_FLOOR) / np.maximum(col, COST_FLOOR))
    return out


def pareto_mask(y: np.ndarray) -> np.ndarray:
    """Non-dominated rows of ``y`` (all maximised)."""
    n = len(y)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        if not keep[i]:
            continue
        dominated = np.all(y >= y[i], axis=1) & np.any(y > y[i], axis=1)
        if dominated.any():
            keep[i] = False
    return keep


def reference(values: Sequence[Mapping[str, float]], objectives: Sequence[str], margin: float = 1.1) -> dict:
    """Reference point shared by everything compared: F1 0, and the worst cost seen times ``margin``."""
    ref = {}
    for name in objectives:
        if OBJECTIVES[name] == "max":
            ref[name] = 0.0
        else:
            ref[name] = max(float(v[name]) for v in values) * margin if values else 1.0
    return ref


def hypervolume(values: Sequence[Mapping[str, float]], objectives: Sequence[str],
                ref: Mapping[str, float]) -> float:
    """Hypervolume dominated by ``values`` above the reference point (2 or 3 objectives)."""
    if not values:
        return 0.0
    return dominated_hypervolume(to_max_space(values, objectives, ref))  # the reference maps to the origin


def dominated_hypervolume(y: np.ndarray, ref: np.ndarray | None = None) -> float:
    """Hypervolume that the rows of ``y`` (every column maximised) dominate above ``ref`` (default: the
    origin): an exact sweep for two objectives, BoTorch's box decomposition for more."""
    y = np.asarray(y, dtype=float)
    ref = np.zeros(y.shape[1]) if ref is None else np.asarray(ref, dtype=float)
    y = y[np.all(y > ref, axis=1)] - ref
    if len(y) == 0:
        return 0.0
    y = y[pareto_mask(y)]
    if y.shape[1] == 2:
        order = np.argsort(-y[:, 0])
        hv, best_second = 0.0, 0.0
        for a, b in y[order]:
            if b > best_second:
                hv += a * (b - best_second)
                best_second = b
        return float(hv)
    import torch
    from botorch.utils.multi_objective.hypervolume import Hypervolume
    return float(Hypervolume(torch.zeros(y.shape[1], dtype=torch.double)).compute(torch.tensor(y)))
