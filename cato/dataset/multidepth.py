"""A labelled corpus as feature matrices at every packet depth 1..max, from one cached extraction.

Predictive quality of any (feature subset, depth, decision deadline) comes from here: the corpus is
extracted once with every numeric catalog feature at depths 1..max (one multi-depth Zeek pass), cached
by corpus content, catalog and generated-script hash, and sliced per trial.

A deadline needs no Zeek pass of its own. The vector a script with deadline T emits holds the packets
Zeek had processed when network time first reached start + T, and equals the multi-depth vector at
that many packets (tests/test_dataset_deadline.py checks it against Zeek on real captures). Those are
the connection's packets before T, plus the one that moved network time past T when it is the
connection's own (on a trace Zeek notices the deadline only when a packet comes, after its core has
counted it). So each depth's vector is stored with the time of the packet that completed it and
Zeek's network time just before that packet (from the packet's position in Zeek's input: captures
whose clocks go back are common, so the capture's timestamps alone do not tell).
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

DATASET_VERSION = 4


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
    #: Per connection and depth (columns 0..max-1): µs from its first packet to the packet that completed
    #: the vector and to the capture's packet before that one, and whether the connection had that many
    #: packets. None in tables made without them (no deadline can be derived).
    _after_us: np.ndarray | None = field(default=None, repr=False)
    _previous_us: np.ndarray | None = field(default=None, repr=False)
    _reached: np.ndarray | None = field(default=None, repr=False)
    #: Each connection's capture, start time and 5-tuple, in row order.
    ids: pd.DataFrame | None = field(default=None, repr=False)
    #: Captures the extraction skipped or only partly read, one message each.
    problems: list[str] = field(default_factory=list, repr=False)

    @property
    def connections(self) -> int:
        return len(self.y)

    @property
    def _not_icmp(self) -> np.ndarray:
        return ~(self.ids["proto"] == "icmp").to_numpy(dtype=bool)

    def _require_times(self) -> None:
        if self._after_us is None:
            raise DatasetError("this dataset has no decision times (made by an older cato): "
                               "extract it again to search a deadline")

    @property
    def span_s(self) -> float:
        """Seconds from a connection's first packet to its packet at the deepest depth, longest over the
        corpus: no deadline beyond it changes any vector up to that depth."""
        self._require_times()
        done = np.where(self._reached, self._after_us, 0)
        return float(done.max()) / 1e6

    def matrix(self, features: Sequence[str], depth: int, deadline: float | None = None) -> np.ndarray:
        """The vectors of ``features`` a script with this depth (and decision deadline, seconds) emits."""
        if depth not in self._matrices:
            raise DatasetError(f"depth {depth} outside 1..{self.max_depth}")
        idx = [self.features.index(f) for f in features]
        if deadline is None:
            return self._matrices[depth][:, idx]
        rows = self.depths_at(depth, deadline)
        out = np.empty((self.connections, len(idx)), dtype=np.float32)
        for d in np.unique(rows):
            at = rows == d
            out[at] = self._matrices[int(d)][np.ix_(at, idx)]
        return out

    def depths_at(self, depth: int, deadline: float) -> np.ndarray:
        """Per connection, the depth whose vector a script with ``depth`` and ``deadline`` emits: the
        packets before the deadline, plus the one that moved network time past it if it is the
        connection's own; all of them (up to ``depth``) if none came at or after it."""
        self._require_times()
        # Zeek arms the deadline at network time of the first packet, which a capture whose clock goes
        # back has already passed; a packet counts as late once network time is past it.
        due = np.maximum(self._previous_us[:, 0], 0) + round(deadline * 1e6)
        network = np.maximum(self._previous_us[:, :depth], self._after_us[:, :depth])
        late = self._reached[:, :depth] & (network >= due[:, None])
        first_late = late.argmax(1)  # packets before it: its 0-based index
        own = self._previous_us[np.arange(self.connections), first_late] < due
        # Zeek's ICMP connection record lags a packet behind, so the deadline never sees an ICMP
        # connection's own packet as already counted (and per-packet scripts do not take it).
        own &= self._not_icmp
        return np.where(late.any(1), first_late + own, depth).clip(1, depth)

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
        timed = {"decided_after", "previous_after"} <= set(table.columns)
        matrices, after, previous, reached = {}, [], [], []
        for depth, rows in table.groupby("depth", sort=True):
            if len(rows) != len(conns) or not np.array_equal(rows["uid"].to_numpy(), conns["uid"].to_numpy()):
                raise DatasetError(f"depth {depth}: its {len(rows)} vectors are not the {len(conns)} connections "
                                   "of depth 1")
            matrices[int(depth)] = rows[features].astype("float64").fillna(MISSING_VALUE).to_numpy(np.float32)
            if timed:
                after.append(_microseconds(rows["decided_after"]))
                previous.append(_microseconds(rows["previous_after"]))
                reached.append(rows["pkts_seen"].to_numpy(np.int64) >= int(depth))
        classes = sorted(conns["label"].unique())
        y = np.searchsorted(np.array(classes, dtype=object), conns["label"].to_numpy(dtype=object))
        ids = table.loc[table["depth"] == 1, [c for c in ("capture", "ts", "proto", "orig_h", "orig_p", "resp_h",
                                                          "resp_p") if c in table.columns]].reset_index(drop=True)
        stack = (lambda cols: np.stack(cols, axis=1)) if timed else (lambda cols: None)  # noqa: E731
        return cls(features, classes, max_depth, key, matrices, y.astype(np.int64),
                   conns["group"].to_numpy(dtype=object), stack(after), stack(previous), stack(reached), ids)


def _microseconds(seconds: pd.Series) -> np.ndarray:
    # Zeek logs times in whole microseconds: comparisons are exact in them. -inf (no packet before)
    # becomes a time before any deadline.
    values = np.nan_to_num(seconds.astype("float64").to_numpy(), nan=0.0, neginf=-1e12, posinf=1e12)
    return np.round(values * 1e6).astype(np.int64)


def dataset_key(corpus: Corpus, max_depth: int) -> str:
    script = generate(list(CATALOG), range(1, max_depth + 1), "auto", input_positions=True)
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
    result = extract(corpus, list(CATALOG), range(1, max_depth + 1), jobs=jobs, progress=progress,
                     input_positions=True)
    problems = [f"{'skipped' if p.skipped else 'warning'}: {p}" for p in result.problems]
    write_atomic(notes, lambda p: p.write_text(json.dumps(problems)))  # before the table: its presence means done
    keep = [c for c in [*ID_COLUMNS, "previous_after"] if c in result.table.columns and c != "decided_by"] + \
        [f for f in numeric_features() if f in result.table.columns]
    table = result.table[keep]
    write_atomic(path, lambda p: table.to_parquet(p, index=False))
    dataset = Dataset.from_table(table, max_depth, key)
    dataset.problems = problems
    return dataset
