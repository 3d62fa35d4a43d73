"""Labelled pcap corpora: a folder with ``labels.csv`` and the captures it names.

``labels.csv`` columns: ``pcap`` (path relative to the folder) and ``label`` are required; other
columns are alternative labels (``--label-column``); ``group`` is optional (default: the capture).
Classes with fewer rows than ``min_class_size`` can be left out (``--min-class-size``): a class seen a
handful of times cannot be cross-validated, yet weighs as much as any other in macro-F1.
With ``proto,src_ip,src_port,dst_ip,dst_port`` a row labels one connection, matched without regard
to direction; otherwise it labels every connection of its capture.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterable

import numpy as np
import pandas as pd

FLOW_COLUMNS = ("proto", "src_ip", "src_port", "dst_ip", "dst_port")


class CorpusError(ValueError):
    pass


@dataclass
class Corpus:
    root: Path
    labels: pd.DataFrame  # pcap, label, group (+ flow columns when flow-level)
    label_column: str
    flow_level: bool
    #: Problems found while loading (missing captures, unusable rows), one message each.
    problems: list[str] = field(default_factory=list)
    #: The content hash of the corpus this one is a sample of (``sample_captures``); None: not a sample.
    sample_of: str | None = None
    #: Classes of ``label_column`` with fewer rows were left out (``load_corpus``).
    min_class_size: int = 1
    _hash: str | None = field(default=None, repr=False)

    @property
    def captures(self) -> list[str]:
        """Capture paths relative to ``root``, each once, in labels.csv order."""
        return list(dict.fromkeys(self.labels["pcap"]))

    def path_of(self, capture: str) -> Path:
        return self.root / capture

    def sample_captures(self, max_bytes: int, seed: int = 0) -> "Corpus":
        """A corpus of about ``max_bytes`` of whole captures drawn at random (seeded), or itself when the
        corpus is no larger: a per-connection cost measured on it stands for the corpus's own mix of
        traffic, at a price that does not grow with the corpus. Where each capture has one label, the
        draw is stratified: each label gets its share of the bytes (at least one capture), so the mix
        of traffic holds, as a plain draw keeps it only on average."""
        captures = self.captures
        sizes = {c: self.path_of(c).stat().st_size for c in captures}
        total = sum(sizes.values())
        if max_bytes <= 0 or total <= max_bytes:
            return self
        rng = np.random.default_rng(seed)
        if self.flow_level:
            strata = {"": captures}
        else:
            per_label = self.labels.drop_duplicates("pcap").groupby("label", sort=True)["pcap"]
            strata = {label: list(group) for label, group in per_label}
        chosen: set[str] = set()
        for members in strata.values():
            budget = max_bytes * sum(sizes[c] for c in members) / total
            taken = 0
            for i in rng.permutation(len(members)):
                if taken >= budget:
                    break
                chosen.add(members[i])
                taken += sizes[members[i]]
        labels = self.labels[self.labels["pcap"].isin(chosen)].reset_index(drop=True)
        return Corpus(self.root, labels, self.label_column, self.flow_level, list(self.problems),
                      sample_of=self.sample_of or self.content_hash(), min_class_size=self.min_class_size)

    def content_hash(self) -> str:
        """Hash of the labels and every capture's bytes: a cache key for anything computed on it."""
        if self._hash is None:
            h = hashlib.sha256(pd.util.hash_pandas_object(self.labels.drop(columns=["key"], errors="ignore"),
                                                          index=False).values.tobytes())
            for cap in sorted(self.captures):
                h.update(cap.encode())
                h.update(self.path_of(cap).read_bytes())
            self._hash = h.hexdigest()
        return self._hash


def _canonical_ip(value: str) -> str | None:
    try:
        return ipaddress.ip_address(str(value).strip()).compressed
    except ValueError:
        return None


def _escapes(relative: str) -> bool:
    """Whether a labels.csv path leaves the corpus folder: absolute, or climbing out through ".."."""
    path = PurePosixPath(relative.replace("\\", "/"))
    if path.is_absolute() or PureWindowsPath(relative).drive:
        return True
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            return True
    return False


def flow_key(proto: str, a_ip: str, a_port: int, b_ip: str, b_port: int) -> tuple:
    """A direction-free connection key."""
    a, b = (a_ip, int(a_port)), (b_ip, int(b_port))
    return (proto.lower(),) + (a + b if a <= b else b + a)


def load_corpus(root: str | Path, label_column: str = "label", min_class_size: int = 1) -> Corpus:
    root = Path(root)
    csv = root / "labels.csv"
    if not root.is_dir():
        raise CorpusError(f"{root}: corpus folder not found")
    if not csv.is_file():
        raise CorpusError(f"{csv}: missing (a corpus is a folder with labels.csv and its captures)")
    try:
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except Exception as e:  # pandas raises many types for bad CSV
        raise CorpusError(f"{csv}: cannot parse: {e}") from None
    for col in ("pcap", label_column):
        if col not in df.columns:
            raise CorpusError(f"{csv}: no '{col}' column (columns: {', '.join(df.columns)})")
    present = [c for c in FLOW_COLUMNS if c in df.columns]
    if present and len(present) != len(FLOW_COLUMNS):
        missing = sorted(set(FLOW_COLUMNS) - set(present))
        raise CorpusError(f"{csv}: flow-level labels need all of {', '.join(FLOW_COLUMNS)}; "
                          f"missing {', '.join(missing)}")
    flow_level = bool(present)
    problems: list[str] = []

    out = pd.DataFrame({"pcap": df["pcap"].str.strip(), "label": df[label_column].str.strip()})
    out["group"] = df["group"].str.strip() if "group" in df.columns else out["pcap"]
    out.loc[out["group"] == "", "group"] = out["pcap"]
    keep = pd.Series(True, index=df.index)

    empty = out["label"] == ""
    if empty.any():
        problems.append(f"{csv}: {int(empty.sum())} row(s) without a '{label_column}' value were left out "
                        f"(first: line {int(empty.idxmax()) + 2})")
        keep &= ~empty

    if flow_level:
        out["proto"] = df["proto"].str.strip().str.lower()
        for col in ("src_ip", "dst_ip"):
            out[col] = df[col].map(_canonical_ip)
        for col in ("src_port", "dst_port"):
            out[col] = pd.to_numeric(df[col], errors="coerce")
        bad = out[["src_ip", "dst_ip", "src_port", "dst_port"]].isna().any(axis=1) | (out["proto"] == "")
        bad &= keep
        if bad.any():
            problems.append(f"{csv}: {int(bad.sum())} row(s) with a bad address, port or protocol were left "
                            f"out (first: line {int(bad.idxmax()) + 2})")
            keep &= ~bad

    # A labels file names captures inside its folder: an absolute path or one through ".." could make
    # cato read any file on the machine. (A symbolic link inside the folder is the corpus owner's choice.)
    outside = sorted(p for p in out["pcap"].unique() if _escapes(p))
    if outside:
        problems.append(f"{csv}: {len(outside)} capture path(s) lead outside {root}, their rows were left out: "
                        + ", ".join(outside[:5]) + (" ..." if len(outside) > 5 else ""))
        keep &= ~out["pcap"].isin(outside)

    exists = {p: not _escapes(p) and (root / p).is_file() for p in out["pcap"].unique()}
    missing = sorted(p for p, ok in exists.items() if not ok and p not in outside)
    if missing:
        problems.append(f"{csv}: {len(missing)} capture(s) not found, their rows were left out: "
                        + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
        keep &= out["pcap"].map(exists)

    out = out[keep].reset_index(drop=True)
    if not flow_level:
        # One capture, one label: a capture listed twice with different labels is not guessed at.
        labels_per = out.groupby("pcap")["label"].nunique()
        torn = sorted(labels_per[labels_per > 1].index)
        if torn:
            problems.append(f"{csv}: {len(torn)} capture(s) carry conflicting labels, their rows were left out: "
                            + ", ".join(torn[:5]) + (" ..." if len(torn) > 5 else ""))
            out = out[~out["pcap"].isin(torn)].reset_index(drop=True)
    if flow_level:
        out["src_port"] = out["src_port"].astype(int)
        out["dst_port"] = out["dst_port"].astype(int)
        out["key"] = [flow_key(*t) for t in zip(out["proto"], out["src_ip"], out["src_port"],
                                                   out["dst_ip"], out["dst_port"])]
        conflicts = out.groupby(["pcap", "key"])["label"].nunique()
        conflicts = conflicts[conflicts > 1]
        if len(conflicts):
            bad_keys = set(conflicts.index)
            drop = [(p, k) in bad_keys for p, k in zip(out["pcap"], out["key"])]
            problems.append(f"{csv}: {len(conflicts)} connection(s) carry conflicting labels and were left out")
            out = out[[not d for d in drop]].reset_index(drop=True)
        out = out.drop_duplicates(["pcap", "key"]).reset_index(drop=True)
    if min_class_size > 1 and not out.empty:
        sizes = out["label"].value_counts()
        rare = sizes[sizes < min_class_size]
        if len(rare):
            problems.append(f"{csv}: {len(rare)} class(es) of '{label_column}' with fewer than {min_class_size} "
                            f"rows were left out ({int(rare.sum())} rows): "
                            + ", ".join(map(str, rare.index[:5])) + (" ..." if len(rare) > 5 else ""))
            out = out[~out["label"].isin(rare.index)].reset_index(drop=True)
    if out.empty:
        raise CorpusError(f"{csv}: no usable labelled rows"
                          + (f" (no class has {min_class_size} rows)" if min_class_size > 1 else ""))
    return Corpus(root, out, label_column, flow_level, problems, min_class_size=min_class_size)


def link_subset(root: str | Path, captures: Iterable[str], dest: str | Path) -> Path:
    """A corpus in ``dest`` holding only ``captures`` of the corpus at ``root``: their labels.csv rows, and
    symbolic links to the captures where they lie (nothing is copied). For samples and tests."""
    root, dest = Path(root), Path(dest)
    wanted = set(captures)
    rows = pd.read_csv(root / "labels.csv", dtype=str, keep_default_na=False)
    rows = rows[rows["pcap"].str.strip().isin(wanted)]
    for rel in rows["pcap"].str.strip().unique():
        link = dest / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to((root / rel).resolve())
    rows.to_csv(dest / "labels.csv", index=False)
    return dest
