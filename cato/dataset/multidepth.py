"""A labelled corpus as feature matrices at every packet depth 1..max, from one cached extraction.

Predictive quality of any (feature subset, depth) comes from here: the corpus is extracted once with
every numeric catalog feature at depths 1..max (one multi-depth Zeek pass), cached by corpus content,
catalog and generated-script hash, and sliced per trial.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from cato.cache import write_atomic
from cato.codegen import generate
from cato.corpus import Corpus
from cato.dataset.extract import ID_COLUMNS, extract
from cato.features import CATALOG, MISSING_VALUE, catalog_hash
from cato.codegen.static import static_scripts_sha256

DATASET_VERSION = 3


class DatasetError(RuntimeError):
    pass


def numeric_features() -> list[str]:
    """Catalog features a model can take as they are (strings such as ``history`` are left out)."""
    return [f.name for f in CATALOG if f.dtype != "string"]


@dataclass
class Dataset:
    features: list[str]
    classes: list[str]
    max_depth: int
    key: str
    #: depth -> float32 matrix (connections x features), rows in the same connection order at every depth.
    _matrices: dict[int, np.ndarray] = field(repr=False)
    y: np.ndarray = field(repr=False)
    groups: np.ndarray = field(repr=False)
    #: Captures the extraction skipped or only partly read, one message each.
    problems: list[str] = field(default_factory=list, repr=False)

    @property
    def connections(self) -> int:
        return len(self.y)

    def matrix(self, features: Sequence[str], depth: int) -> np.ndarray:
        if depth not in self._matrices:
            raise DatasetError(f"depth {depth} outside 1..{self.max_depth}")
        idx = [self.features.index(f) for f in features]
        return self._matrices[depth][:, idx]

    @classmethod
    def from_table(cls, table: pd.DataFrame, max_depth: int, key: str = "") -> "Dataset":
        if table.empty:
            raise DatasetError("no labelled connections")
        features = [f for f in numeric_features() if f in table.columns]
        # Zeek's uids are random: order by what the traffic fixes, so that folds and fits repeat across
        # extractions. Zeek can split one 5-tuple into connections that start at the same time (nDPI's
        # ipsec_isakmp_esp.pcap has 126 such): those are ordered by their deepest vector, and uid
        # breaks only ties between identical connections.
        deepest = table.loc[table["depth"] == table["depth"].max(), ["uid", *features]]
        tie = pd.Series(pd.util.hash_pandas_object(deepest[features], index=False).to_numpy(),
                        index=deepest["uid"].to_numpy())
        table = table.assign(_tie=table["uid"].map(tie))
        order = [c for c in ("capture", "ts", "proto", "orig_h", "orig_p", "resp_h", "resp_p", "_tie", "uid",
                             "depth") if c in table.columns]
        table = table.sort_values(order, kind="stable")
        conns = table.loc[table["depth"] == 1, ["capture", "uid", "label", "group"]].reset_index(drop=True)
        matrices = {}
        for depth, rows in table.groupby("depth", sort=True):
            if len(rows) != len(conns) or not np.array_equal(rows["uid"].to_numpy(), conns["uid"].to_numpy()):
                raise DatasetError(f"depth {depth}: its {len(rows)} vectors are not the {len(conns)} connections "
                                   "of depth 1")
            matrices[int(depth)] = rows[features].astype("float64").fillna(MISSING_VALUE).to_numpy(np.float32)
        classes = sorted(conns["label"].unique())
        y = np.searchsorted(np.array(classes, dtype=object), conns["label"].to_numpy(dtype=object))
        return cls(features, classes, max_depth, key, matrices, y.astype(np.int64),
                   conns["group"].to_numpy(dtype=object))


def dataset_key(corpus: Corpus, max_depth: int) -> str:
    script = generate(list(CATALOG), range(1, max_depth + 1), "auto")
    return hashlib.sha256(json.dumps([DATASET_VERSION, corpus.content_hash(), corpus.label_column,
                                      catalog_hash(), script.sha256, static_scripts_sha256(),
                                      max_depth]).encode()).hexdigest()


def load_dataset(corpus: Corpus, max_depth: int, cache_dir: Path, *, jobs: int | None = None,
                 progress: Callable[[int], None] | None = None) -> Dataset:
    """Every numeric feature at depths 1..max_depth, extracted once and cached as Parquet."""
    key = dataset_key(corpus, max_depth)
    path = cache_dir / "datasets" / f"{key[:32]}.parquet"
    notes = path.with_suffix(".problems.json")
    if path.exists():
        try:
            dataset = Dataset.from_table(pd.read_parquet(path), max_depth, key)
            dataset.problems = json.loads(notes.read_text()) if notes.exists() else []
            return dataset
        except (OSError, ValueError) as e:  # damaged (a crash mid-write before writes were atomic)
            warnings.warn(f"{path}: cached dataset unreadable ({e}); extracting it again", stacklevel=2)
    result = extract(corpus, list(CATALOG), range(1, max_depth + 1), jobs=jobs, progress=progress)
    problems = [f"{'skipped' if p.skipped else 'warning'}: {p}" for p in result.problems]
    write_atomic(notes, lambda p: p.write_text(json.dumps(problems)))  # before the table: its presence means done
    keep = [c for c in ID_COLUMNS if c in result.table.columns] + \
        [f for f in numeric_features() if f in result.table.columns]
    table = result.table[keep]
    write_atomic(path, lambda p: table.to_parquet(p, index=False))
    dataset = Dataset.from_table(table, max_depth, key)
    dataset.problems = problems
    return dataset
