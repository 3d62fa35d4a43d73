"""Vocabularies: how a string feature's code is learned, per fit, from the rows a model trains on.

A dataset stores a learned feature (``dns_query_code``, say) as ids of its strings, ranked by how
many connections of the whole corpus have each (``cato.dataset.multidepth``). A fit learns its own
vocabulary from its training rows only: the ``max_size`` values seen most often there, at least
``min_count`` times, get codes 1, 2, ... in that order; any other value codes 0, a missing one stays
``MISSING_VALUE``. Cross-validation learns one per fold, so a test fold's values never shape the
codes it is scored with, as a deployed model meets values its training never saw. A compiled package
ships the final fit's vocabulary as a table that Zeek applies: the ONNX model sees codes only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from cato.features import FEATURES_BY_NAME, MISSING_VALUE

#: Values a vocabulary keeps at most, and how often a value must be seen in training to get a code
#: of its own (a value seen once tells nothing a test can confirm).
MAX_VOCABULARY = 512
MIN_COUNT = 2


def learned_columns(features: Sequence[str]) -> list[int]:
    """Positions of the learned (vocabulary-coded) features among ``features``."""
    return [i for i, f in enumerate(features) if FEATURES_BY_NAME[f].learned]


@dataclass
class Vocabularies:
    """One vocabulary per learned column of a feature matrix."""

    columns: Sequence[int]
    max_size: int = MAX_VOCABULARY
    min_count: int = MIN_COUNT
    #: Per column, the dataset ids that get codes, in code order (code = position + 1).
    kept: dict[int, np.ndarray] = field(default_factory=dict)

    def fit(self, x: np.ndarray) -> "Vocabularies":
        for j in self.columns:
            ids = x[:, j][x[:, j] >= 0].astype(np.int64)
            counts = np.bincount(ids) if len(ids) else np.zeros(0, dtype=np.int64)
            # Most often first; ties by the corpus-wide rank (the id), so fits repeat.
            order = np.lexsort((np.arange(len(counts)), -counts))
            order = order[counts[order] >= self.min_count][: self.max_size]
            self.kept[j] = order
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        if not self.columns:
            return x
        out = np.array(x, dtype=np.float32, copy=True)
        for j in self.columns:
            kept = self.kept[j]
            lookup = np.zeros(int(kept.max()) + 1 if len(kept) else 0, dtype=np.float32)
            lookup[kept] = np.arange(1, len(kept) + 1, dtype=np.float32)
            present = x[:, j] >= 0
            ids = x[present, j].astype(np.int64)
            inside = ids < len(lookup)
            codes = np.zeros(len(ids), dtype=np.float32)
            codes[inside] = lookup[ids[inside]]
            out[present, j] = codes
            out[~present, j] = MISSING_VALUE
        return out

    def words(self, column: int, strings: Sequence[str]) -> list[str]:
        """The strings of a column's vocabulary in code order, from the dataset's ids."""
        return [strings[i] for i in self.kept[column]]
