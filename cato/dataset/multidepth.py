"""A labelled corpus as feature matrices at every packet depth 1..max, from one cached extraction.

Predictive quality of any (feature subset, depth, decision deadline) comes from here: the corpus is
extracted once with every numeric catalog feature at depths 1..max (one multi-depth Zeek pass), cached
by corpus content, catalog and generated-script hash, and sliced per trial.

Out of core. Each batch of captures is labelled and written to disk where Zeek ran on it; the batches
are then laid out as one file per depth, feature-major (a feature's values at one depth are one
contiguous run), plus the decision times, depth-major. A trial reads only its features at its depths:
no process ever holds the multi-depth table, and memory follows the rows a trial uses, not the corpus
(``Dataset.sample`` bounds those too).

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
import os
import shutil
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cato.cache import private_name
from cato.executors import Executor
from cato.codegen import generate
from cato.corpus import Corpus
from cato.dataset.extract import extract
from cato.features import CATALOG, FEATURES_BY_NAME, MISSING_VALUE, catalog_hash
from cato.zeek import deployment_invocation
from cato.codegen.static import static_scripts_sha256

DATASET_VERSION = 7
#: Per connection, what identifies it (kept beside the matrices, read only when asked for).
ID_KEEP = ("capture", "uid", "ts", "proto", "orig_h", "orig_p", "resp_h", "resp_p", "label", "group")
#: Decision times per connection and depth (see the module's docstring).
TIMES = ("after", "previous", "reached")
_TIME_DTYPES = {"after": np.int64, "previous": np.int64, "reached": np.bool_}


class DatasetError(RuntimeError):
    pass


def numeric_features(deployment: str = "default") -> list[str]:
    """Catalog features a model can take (strings such as ``history`` are left out: their codes and
    lengths are in) that a dataset extracted under ``deployment`` holds. A bare deployment runs no
    protocol analyzer, and loading one would change what Zeek makes of every connection (roles,
    DNS sessions): its datasets have no analyzer feature."""
    bare = deployment_invocation(deployment)[0]
    return [f.name for f in CATALOG if f.dtype != "string" and not (bare and f.analyzer_field is not None)]


def _extracted(features: Sequence[str]) -> list:
    """The catalog features the extraction runs for ``features``: with the strings their codes read,
    and the connection record's (``history``), which its feature tables show."""
    names = set(features) | {FEATURES_BY_NAME[f].computation.source for f in features if FEATURES_BY_NAME[f].learned}
    return [f for f in CATALOG if f.name in names or (f.dtype == "string" and f.analyzer_field is None)]


# Strings a learned feature encodes are stored as ids, ranked by how many connections have them at
# the deepest depth (0 the most common; ties by the string): the ranks a model's vocabulary starts
# from (``cato.model.encoding``), and what feature rankings see.

def _intern(values: pd.Series, strings: list[str], lookup: pd.Index) -> tuple[np.ndarray, pd.Index]:
    """``values`` (strings, missing as NA) as positions in ``strings`` (``lookup`` indexes it); a string
    not there yet is appended. Returns the positions and the lookup of the list as it now is."""
    codes = lookup.get_indexer(values.astype(object))
    new = (codes < 0) & values.notna().to_numpy()
    if new.any():
        strings += [v for v in pd.unique(values[new].astype(str)) if v not in lookup]
        lookup = pd.Index(strings)
        codes = lookup.get_indexer(values.astype(object))
    out = codes.astype(np.float32)
    out[codes < 0] = MISSING_VALUE
    return out, lookup


def _ranked(counts: dict[str, int]) -> list[str]:
    return sorted(counts, key=lambda v: (-counts[v], v))


# Storage: where the matrices live -------------------------------------------------------------------

class _Store(Protocol):
    #: Connections.
    n: int
    #: Whether decision times were stored (tables made without them derive no deadline).
    timed: bool

    def feature_rows(self, depth: int, idx: Sequence[int]) -> np.ndarray:
        """float32 [len(idx), n]: the features at ``idx`` (catalog positions) at ``depth``."""

    def times(self, kind: str, depth: int) -> np.ndarray:
        """[n]: ``kind`` (one of TIMES) of every connection at ``depth``."""

    def ids(self) -> pd.DataFrame:
        """Per connection, ID_KEEP columns, in row order."""


@dataclass
class _Block:
    """Connections in row order, depth-major: what one batch (or a table in memory) comes to."""

    ids: pd.DataFrame
    x: np.ndarray  # float32 [max_depth, features, n]
    times: dict[str, np.ndarray] | None  # kind -> [max_depth, n]
    #: Per learned feature, the strings its ids stand for, ranked (see ``_intern``).
    strings: dict[str, list[str]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.x.shape[2]


class _MemoryStore:
    def __init__(self, block: _Block) -> None:
        self._block = block
        self.n = block.n
        self.timed = block.times is not None

    def feature_rows(self, depth: int, idx: Sequence[int]) -> np.ndarray:
        return self._block.x[depth - 1][list(idx)]

    def times(self, kind: str, depth: int) -> np.ndarray:
        return self._block.times[kind][depth - 1]

    def ids(self) -> pd.DataFrame:
        return self._block.ids


def _read_npy(path: Path) -> np.ndarray:
    """An .npy file of plain numbers, mapped read-only: ``open_memmap`` refuses object arrays, so no
    file in the cache can make cato unpickle (and run) anything."""
    return np.lib.format.open_memmap(path, mode="r")


def _npy_offset(path: Path) -> int:
    """Where an .npy file's values begin."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        read(f)
        return f.tell()


class _FileStore:
    """A dataset directory: ``x{depth}.npy`` float32 [features, n] per depth, ``{kind}.npy`` [max_depth, n]
    per decision time, ``ids.parquet``. Values are read with plain file reads, not memory maps, so that a
    process's resident memory is what it asked for."""

    def __init__(self, root: Path, n: int, timed: bool, n_features: int, max_depth: int) -> None:
        self.root, self.n, self.timed = root, n, timed
        self._offsets: dict[str, int] = {}
        # Every file whole (a crash or a full disk can cut one short): checked once, at open.
        files = {f"x{d:03d}.npy": (np.float32, n_features * n) for d in range(1, max_depth + 1)}
        if timed:
            files |= {f"{k}.npy": (_TIME_DTYPES[k], max_depth * n) for k in TIMES}
        for name, (dtype, count) in files.items():
            path = root / name
            self._offsets[name] = _npy_offset(path)
            if path.stat().st_size != self._offsets[name] + count * np.dtype(dtype).itemsize:
                raise DatasetError(f"{path}: {path.stat().st_size} bytes, not the size of its values")

    def _row(self, name: str, row: int, dtype) -> np.ndarray:
        path = self.root / name
        itemsize = np.dtype(dtype).itemsize
        out = np.fromfile(path, dtype=dtype, count=self.n, offset=self._offsets[name] + row * self.n * itemsize)
        if len(out) != self.n:
            raise DatasetError(f"{path}: truncated (row {row})")
        return out

    def feature_rows(self, depth: int, idx: Sequence[int]) -> np.ndarray:
        out = np.empty((len(idx), self.n), dtype=np.float32)
        for k, i in enumerate(idx):
            out[k] = self._row(f"x{depth:03d}.npy", i, np.float32)
        return out

    def times(self, kind: str, depth: int) -> np.ndarray:
        return self._row(f"{kind}.npy", depth - 1, _TIME_DTYPES[kind])

    def ids(self) -> pd.DataFrame:
        return pd.read_parquet(self.root / "ids.parquet")


# From the extraction's table to rows in order ---------------------------------------------------------

def _block_of(table: pd.DataFrame, features: list[str], max_depth: int) -> _Block:
    """A table of vectors (one row per connection and depth 1..max_depth) as a block, its connections in
    an order the traffic fixes."""
    present = sorted(int(d) for d in table["depth"].unique())
    if present != list(range(1, max_depth + 1)):
        raise DatasetError(f"the table's depths are {present[:3]}..{present[-3:]}, not 1..{max_depth}")
    # Zeek's uids are random: order by what the traffic fixes, so that folds and fits repeat across
    # extractions. Zeek can split one 5-tuple into connections that start at the same time (nDPI's
    # ipsec_isakmp_esp.pcap has 126 such): those are ordered by their deepest vector, and uid
    # breaks only ties between identical connections.
    learned = [f for f in features if FEATURES_BY_NAME[f].learned]
    sources = {f: FEATURES_BY_NAME[f].computation.source for f in learned}
    plain = [f for f in features if f not in sources]
    deepest = table.loc[table["depth"] == max_depth, ["uid", *plain, *sorted(set(sources.values()))]]
    tie = pd.Series(pd.util.hash_pandas_object(deepest.drop(columns="uid"), index=False).to_numpy(),
                    index=deepest["uid"].to_numpy())
    strings: dict[str, list[str]] = {}
    lookups: dict[str, pd.Index] = {}
    for f, source in sources.items():
        counts = deepest[source].dropna().astype(str).value_counts().to_dict()
        strings[f] = _ranked(counts)
        lookups[f] = pd.Index(strings[f])
    with warnings.catch_warnings():  # a wide table built column by column; copying it costs more
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        table = table.assign(_tie=table["uid"].map(tie))
    order = [c for c in ("capture", "ts", "proto", "orig_h", "orig_p", "resp_h", "resp_p", "_tie", "uid",
                         "depth") if c in table.columns]
    table = table.sort_values(order, kind="stable")
    ids = table.loc[table["depth"] == 1, [c for c in ID_KEEP if c in table.columns]].reset_index(drop=True)
    n = len(ids)
    timed = {"decided_after", "previous_after", "pkts_seen"} <= set(table.columns)
    x = np.empty((max_depth, len(features), n), dtype=np.float32)
    times = {k: np.empty((max_depth, n), dtype=_TIME_DTYPES[k]) for k in TIMES} if timed else None
    uids = ids["uid"].to_numpy()
    for depth, rows in table.groupby("depth", sort=True):
        if len(rows) != n or not np.array_equal(rows["uid"].to_numpy(), uids):
            raise DatasetError(f"depth {depth}: its {len(rows)} vectors are not the {n} connections of depth 1")
        d = int(depth) - 1
        for k, f in enumerate(features):
            if f in sources:
                # (a value the deepest vector lacks, were there one, ranks last)
                x[d, k], lookups[f] = _intern(rows[sources[f]], strings[f], lookups[f])
            else:
                x[d, k] = rows[f].astype("float64").fillna(MISSING_VALUE).to_numpy(np.float32)
        if times is not None:
            times["after"][d] = _microseconds(rows["decided_after"])
            times["previous"][d] = _microseconds(rows["previous_after"])
            times["reached"][d] = rows["pkts_seen"].to_numpy(np.int64) >= int(depth)
    for col in ("capture", "uid", "proto", "orig_h", "resp_h", "label", "group"):
        if col in ids.columns:
            ids[col] = ids[col].astype("string")
    return _Block(ids, x, times, strings)


def _microseconds(seconds: pd.Series) -> np.ndarray:
    # Zeek logs times in whole microseconds: comparisons are exact in them. -inf (no packet before)
    # becomes a time before any deadline.
    values = np.nan_to_num(seconds.astype("float64").to_numpy(), nan=0.0, neginf=-1e12, posinf=1e12)
    return np.round(values * 1e6).astype(np.int64)


def _span_us(times: dict[str, np.ndarray] | None) -> int:
    if times is None or not times["after"].size:
        return 0
    return int(np.where(times["reached"], times["after"], 0).max())


@dataclass
class Part:
    """One batch of captures written to disk by :class:`PartWriter` (small: what the parent keeps)."""

    path: Path
    connections: int
    labels: list[str]
    groups: list[str]
    span_us: int


def _string_counts(block: _Block, features: list[str]) -> dict[str, list[list]]:
    """Per learned feature, its strings in id order with how many of the block's connections have
    each at the deepest depth: what ranks them across the corpus."""
    out = {}
    for f, values in block.strings.items():
        ids = block.x[-1, features.index(f)]
        counts = np.bincount(ids[ids >= 0].astype(np.int64), minlength=len(values))
        out[f] = [[v, int(c)] for v, c in zip(values, counts)]
    return out


@dataclass
class PartWriter:
    """Writes a batch's feature table as a block (runs in the extraction's worker processes)."""

    directory: Path
    features: list[str]
    max_depth: int
    #: It stores features as float32: the extraction may hand them over so (see ``cato.dataset.extract``).
    float32: bool = True

    def __call__(self, batch: int, table: pd.DataFrame) -> Part:
        path = self.directory / f"part-{batch:06d}"
        if table.empty:
            return Part(path, 0, [], [], 0)
        block = _block_of(table, self.features, self.max_depth)
        path.mkdir(parents=True, exist_ok=True)
        block.ids.to_parquet(path / "ids.parquet", index=False)
        np.save(path / "x.npy", block.x)
        (path / "strings.json").write_text(json.dumps(_string_counts(block, self.features)))
        for kind, values in (block.times or {}).items():
            np.save(path / f"{kind}.npy", values)
        return Part(path, block.n, sorted(block.ids["label"].unique()), sorted(block.ids["group"].unique()),
                    _span_us(block.times))


def _assemble(parts: list[Part], root: Path, features: list[str], max_depth: int, meta: dict) -> None:
    """Lay the parts (in row order) out as a dataset directory: one write per feature, depth and part."""
    parts = [p for p in parts if p.connections]
    n = sum(p.connections for p in parts)
    if n == 0:
        raise DatasetError("no labelled connections")
    classes = sorted({label for p in parts for label in p.labels})
    group_names = sorted({g for p in parts for g in p.groups})
    timed = all((p.path / "after.npy").exists() for p in parts)
    # Learned features' strings, ranked over the corpus; each part's ids are mapped onto them.
    part_strings = [json.loads((p.path / "strings.json").read_text()) for p in parts]
    totals: dict[str, dict[str, int]] = {f: {} for f in features if FEATURES_BY_NAME[f].learned}
    for ps in part_strings:
        for f, pairs in ps.items():
            for value, count in pairs:
                totals.setdefault(f, {})[value] = totals.get(f, {}).get(value, 0) + count
    strings = {f: _ranked(counts) for f, counts in totals.items()}
    ranks = {f: {v: i for i, v in enumerate(values)} for f, values in strings.items()}
    files = {f"x{d:03d}.npy": (np.float32, (len(features), n)) for d in range(1, max_depth + 1)}
    if timed:
        files |= {f"{k}.npy": (_TIME_DTYPES[k], (max_depth, n)) for k in TIMES}
    fds, offsets = {}, {}
    for name, (dtype, shape) in files.items():
        np.lib.format.open_memmap(root / name, mode="w+", dtype=dtype, shape=shape).flush()  # header; sparse
        offsets[name] = _npy_offset(root / name)
        fds[name] = os.open(root / name, os.O_WRONLY)
    y = np.empty(n, dtype=np.int64)
    groups = np.empty(n, dtype=np.int64)
    icmp = np.empty(n, dtype=bool)
    writer = None
    try:
        start = 0
        for part, own_strings in zip(parts, part_strings):
            ids = pd.read_parquet(part.path / "ids.parquet")
            stop = start + part.connections
            y[start:stop] = np.searchsorted(np.array(classes, dtype=object), ids["label"].to_numpy(dtype=object))
            groups[start:stop] = np.searchsorted(np.array(group_names, dtype=object),
                                                 ids["group"].to_numpy(dtype=object))
            icmp[start:stop] = (ids["proto"] == "icmp").to_numpy(dtype=bool) if "proto" in ids else False
            table = pa.Table.from_pandas(ids, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(root / "ids.parquet", table.schema)
            writer.write_table(table.cast(writer.schema))
            x = _read_npy(part.path / "x.npy")
            remaps = {}
            for f, pairs in own_strings.items():
                remaps[features.index(f)] = np.array([ranks[f][v] for v, _ in pairs], dtype=np.float32)
            for d in range(max_depth):
                name = f"x{d + 1:03d}.npy"
                block = np.array(x[d])
                for k, remap in remaps.items():
                    present = block[k] >= 0
                    block[k, present] = remap[block[k, present].astype(np.int64)]
                for f in range(len(features)):
                    os.pwrite(fds[name], block[f].tobytes(), offsets[name] + (f * n + start) * 4)
            del x
            if timed:
                for kind in TIMES:
                    values = _read_npy(part.path / f"{kind}.npy")
                    name, size = f"{kind}.npy", np.dtype(_TIME_DTYPES[kind]).itemsize
                    for d in range(max_depth):
                        os.pwrite(fds[name], np.ascontiguousarray(values[d]).tobytes(),
                                  offsets[name] + (d * n + start) * size)
                    del values
            start = stop
    finally:
        for fd in fds.values():
            os.close(fd)
        if writer is not None:
            writer.close()
    np.save(root / "y.npy", y)
    np.save(root / "groups.npy", groups)
    np.save(root / "icmp.npy", icmp)
    (root / "strings.json").write_text(json.dumps(strings))
    meta = {**meta, "features": features, "classes": classes, "group_names": group_names, "max_depth": max_depth,
            "connections": n, "timed": timed, "span_us": max([p.span_us for p in parts], default=0)}
    (root / "meta.json").write_text(json.dumps(meta))  # last: its presence means the directory is whole


# The dataset -------------------------------------------------------------------------------------------

@dataclass
class Dataset:
    features: list[str]
    classes: list[str]
    max_depth: int
    key: str
    _store: _Store = field(repr=False)
    #: Class index per connection.
    y: np.ndarray = field(repr=False)
    #: Group index per connection (``group_names`` names them): folds never split a group.
    groups: np.ndarray = field(repr=False)
    #: Captures the extraction skipped or only partly read, one message each.
    problems: list[str] = field(default_factory=list, repr=False)
    group_names: list[str] = field(default_factory=list, repr=False)
    _icmp: np.ndarray | None = field(default=None, repr=False)
    _span_us: int = 0
    #: A sample of the corpus (see :meth:`sample`): the store's rows it holds, ascending; None: every row.
    rows: np.ndarray | None = field(default=None, repr=False)
    #: How the sample was drawn (rows, of, seed, per-class floor); None for the whole corpus.
    sampling: dict | None = None
    #: Per learned feature (a vocabulary code), the strings its stored ids stand for, most common first.
    _strings: dict[str, list[str]] = field(default_factory=dict, repr=False)

    @property
    def connections(self) -> int:
        return len(self.y)

    def strings(self, feature: str) -> list[str]:
        """The strings a learned feature's values (ids: 0 the most common over the corpus, -1 missing)
        stand for, as Zeek's logs write them."""
        if feature not in self.features or not FEATURES_BY_NAME[feature].learned:
            raise DatasetError(f"{feature} is not a learned feature of this dataset")
        return self._strings.get(feature, [])  # (none: no connection had one)

    @property
    def corpus_connections(self) -> int:
        """Connections of the whole corpus (a sample's too)."""
        return self._store.n

    def _pick(self, values: np.ndarray) -> np.ndarray:
        """A per-connection array of the store restricted to this dataset's rows."""
        return values if self.rows is None else values[..., self.rows]

    @property
    def ids(self) -> pd.DataFrame:
        """Each connection's capture, start time, 5-tuple, label and group, in row order."""
        ids = self._store.ids()
        return ids if self.rows is None else ids.iloc[self.rows].reset_index(drop=True)

    @property
    def _not_icmp(self) -> np.ndarray:
        return ~self._pick(self._icmp)

    def _require_times(self) -> None:
        if not self._store.timed:
            raise DatasetError("this dataset has no decision times (made by an older cato): "
                               "extract it again to search a deadline")

    @property
    def span_s(self) -> float:
        """Seconds from a connection's first packet to its packet at the deepest depth, longest over the
        corpus: no deadline beyond it changes any vector up to that depth."""
        self._require_times()
        return self._span_us / 1e6

    def reached(self, depth: int) -> np.ndarray:
        """Per connection, whether it had ``depth`` packets."""
        self._require_times()
        return self._pick(self._store.times("reached", depth))

    def decided_after_us(self, depth: int) -> np.ndarray:
        """Per connection, µs from its first packet to the packet that completed its vector at ``depth``."""
        self._require_times()
        return self._pick(self._store.times("after", depth))

    def _at(self, depth: int, idx: list[int]) -> np.ndarray:
        if not 1 <= depth <= self.max_depth:
            raise DatasetError(f"depth {depth} outside 1..{self.max_depth}")
        return np.ascontiguousarray(self._pick(self._store.feature_rows(depth, idx)).T)

    def matrix(self, features: Sequence[str], depth: int, deadline: float | None = None) -> np.ndarray:
        """The vectors of ``features`` a script with this depth (and decision deadline, seconds) emits."""
        idx = [self.features.index(f) for f in features]
        if deadline is None:
            return self._at(depth, idx)
        rows = self.depths_at(depth, deadline)
        out = np.empty((self.connections, len(idx)), dtype=np.float32)
        for d in np.unique(rows):
            at = rows == d
            out[at] = self._at(int(d), idx)[at]
        return out

    def depths_at(self, depth: int, deadline: float) -> np.ndarray:
        """Per connection, the depth whose vector a script with ``depth`` and ``deadline`` emits: the
        packets before the deadline, plus the one that moved network time past it if it is the
        connection's own; all of them (up to ``depth``) if none came at or after it."""
        self._require_times()
        if not 1 <= depth <= self.max_depth:
            raise DatasetError(f"depth {depth} outside 1..{self.max_depth}")
        times = lambda kind, d: self._pick(self._store.times(kind, d))  # noqa: E731
        # Zeek arms the deadline at network time of the first packet, which a capture whose clock goes
        # back has already passed; a packet counts as late once network time is past it.
        due = np.maximum(times("previous", 1), 0) + round(deadline * 1e6)
        result = np.full(self.connections, depth, dtype=np.int64)
        decided = np.zeros(self.connections, dtype=bool)
        not_icmp = self._not_icmp
        for d in range(1, depth + 1):  # one depth at a time: memory stays one row per connection
            previous = times("previous", d)
            late = times("reached", d) & (np.maximum(previous, times("after", d)) >= due) & ~decided
            # Packets before the first late one, plus that one if it is the connection's own. Zeek's
            # ICMP connection record lags a packet behind, so the deadline never sees an ICMP
            # connection's own packet as already counted (and per-packet scripts do not take it).
            result[late] = d - 1 + ((previous[late] < due[late]) & not_icmp[late])
            decided |= late
            if decided.all():
                break
        return result.clip(1, depth)

    def sample(self, max_rows: int, seed: int = 0, min_per_class: int = 100) -> "Dataset":
        """A stratified sample of at most about ``max_rows`` connections (itself when the corpus is no
        larger). Each class keeps its share of the corpus, but at least ``min_per_class`` rows (all of
        its rows when it has fewer): macro-F1 weighs every class alike, so a rare class is not thinned
        below what cross-validation needs. Rows are drawn at random across all of a class's groups, and
        folds on the sample still never split a group. (Design weights that undo the floor were
        measured and left out: on IoT Sentinel they moved a forest's F1 further from the whole corpus's,
        benchmarks/RESULTS.md.)"""
        if self.rows is not None:
            raise DatasetError("this dataset is already a sample")
        n = self.connections
        if max_rows <= 0 or n <= max_rows:
            return self
        rng = np.random.default_rng(seed)
        keep = []
        for c in range(len(self.classes)):
            members = np.flatnonzero(self.y == c)
            if not len(members):
                continue
            m = min(len(members), max(round(len(members) * max_rows / n), min_per_class))
            keep.append(rng.choice(members, size=m, replace=False))
        rows = np.sort(np.concatenate(keep))
        sampling = {"rows": int(len(rows)), "of": int(n), "seed": int(seed), "max_rows": int(max_rows),
                    "min_per_class": int(min_per_class)}
        # A sample's F1s are not the corpus's: they are cached apart.
        key = hashlib.sha256(json.dumps([self.key, sampling]).encode()).hexdigest()
        return replace(self, key=key, y=self.y[rows], groups=self.groups[rows], rows=rows, sampling=sampling)

    @classmethod
    def from_table(cls, table: pd.DataFrame, max_depth: int, key: str = "") -> "Dataset":
        """A dataset held in memory, from an extraction's table (tests, small corpora)."""
        if table.empty:
            raise DatasetError("no labelled connections")
        features = [f for f in numeric_features() if f in table.columns or (
            FEATURES_BY_NAME[f].learned and FEATURES_BY_NAME[f].computation.source in table.columns)]
        block = _block_of(table, features, max_depth)
        classes = sorted(block.ids["label"].unique())
        group_names = sorted(block.ids["group"].unique())
        y = np.searchsorted(np.array(classes, dtype=object), block.ids["label"].to_numpy(dtype=object))
        groups = np.searchsorted(np.array(group_names, dtype=object), block.ids["group"].to_numpy(dtype=object))
        icmp = (block.ids["proto"] == "icmp").to_numpy(dtype=bool) if "proto" in block.ids else \
            np.zeros(block.n, dtype=bool)
        return cls(features, classes, max_depth, key, _MemoryStore(block), y.astype(np.int64),
                   groups.astype(np.int64), group_names=group_names, _icmp=icmp, _span_us=_span_us(block.times),
                   _strings=block.strings)

    @classmethod
    def open(cls, root: Path) -> "Dataset":
        """A dataset directory written by :func:`load_dataset`."""
        meta = json.loads((root / "meta.json").read_text())
        store = _FileStore(root, meta["connections"], meta["timed"], len(meta["features"]), meta["max_depth"])
        return cls(meta["features"], meta["classes"], meta["max_depth"], meta["key"], store,
                   np.array(_read_npy(root / "y.npy")), np.array(_read_npy(root / "groups.npy")),
                   list(meta.get("problems", [])), meta["group_names"], np.array(_read_npy(root / "icmp.npy")),
                   meta["span_us"], _strings=json.loads((root / "strings.json").read_text()))


def dataset_key(corpus: Corpus, max_depth: int, deployment: str = "bare") -> str:
    script = generate(_extracted(numeric_features(deployment)), range(1, max_depth + 1), "auto",
                      input_positions=True)
    # (A bare dataset's key is as it was before deployments: its cache stays valid.)
    return hashlib.sha256(json.dumps([DATASET_VERSION, corpus.content_hash(), corpus.label_column,
                                      catalog_hash(), script.sha256, static_scripts_sha256(), max_depth,
                                      *([deployment] if deployment != "bare" else [])]).encode()).hexdigest()


def load_dataset(corpus: Corpus, max_depth: int, cache_dir: Path, *, jobs: int | None = None,
                 progress: Callable[[int], None] | None = None, executor: Executor | None = None,
                 deployment: str = "bare") -> Dataset:
    """Every numeric feature at depths 1..max_depth, extracted once and cached as a dataset directory.

    The extraction's worker processes write each batch of captures to disk; the batches are then laid
    out into the directory: memory follows a batch (``MAX_BATCH_BYTES`` of captures), not the corpus.
    With ``executor`` (Ray tasks, say: ``cato.executors``), the batches run there, and write their parts
    under ``cache_dir``, which every node must see at the same path."""
    key = dataset_key(corpus, max_depth, deployment)
    root = cache_dir / "datasets" / key[:32]
    if (root / "meta.json").exists():
        try:
            return Dataset.open(root)
        except (OSError, ValueError, KeyError, DatasetError) as e:  # damaged: extracted again
            warnings.warn(f"{root}: cached dataset unreadable ({e}); extracting it again", stacklevel=2)
    # Built in a directory of this process's own, renamed into place whole: another process may be
    # extracting the same corpus.
    work = private_name(root)
    work.mkdir(parents=True)
    try:
        features = numeric_features(deployment)
        result = extract(corpus, _extracted(features), range(1, max_depth + 1), jobs=jobs, progress=progress,
                         input_positions=True, writer=PartWriter(work / "parts", features, max_depth),
                         executor=executor, deployment=deployment)
        problems = [f"{'skipped' if p.skipped else 'warning'}: {p}" for p in result.problems]
        _assemble(result.parts, work, features, max_depth,
                  {"key": key, "problems": problems, "deployment": deployment})
        shutil.rmtree(work / "parts", ignore_errors=True)
        if root.exists():
            shutil.rmtree(root, ignore_errors=True)  # damaged or incomplete
        try:
            os.rename(work, root)
        except OSError:  # another process put its dataset in place first
            pass
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Dataset.open(root)
