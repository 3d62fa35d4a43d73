"""Vectors at a decision deadline, derived from the one multi-depth extraction, equal what the
generated script with that deadline emits in Zeek: every feature, on real captures of both corpora."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cato.corpus import link_subset, load_corpus
from cato.dataset import extract, load_dataset
from cato.features import FEATURES_BY_NAME, MISSING_VALUE

KEY = ["capture", "ts", "proto", "orig_h", "orig_p", "resp_h", "resp_p"]
MAX_DEPTH = 12


def _subset(root: Path, dest: Path, per_class: int) -> Path:
    labels = pd.read_csv(root / "labels.csv", dtype=str, keep_default_na=False)
    # Mid-sized captures of several classes: short and long connections, busy and quiet captures.
    files = labels.drop_duplicates("pcap").assign(size=lambda t: [(root / p).stat().st_size for p in t["pcap"]])
    files = files[files["size"] < 400_000].sort_values(["label", "size"])
    pick = files.groupby("label").tail(per_class).head(14)
    return link_subset(root, pick["pcap"], dest)


def _keyed(table: pd.DataFrame) -> pd.DataFrame:
    # Start times in the microseconds Zeek logs them in.
    return table.astype({"orig_p": "int64", "resp_p": "int64"}).assign(
        ts=(table["ts"].astype("float64") * 1e6).round().astype("int64"))


@pytest.mark.corpora
@pytest.mark.parametrize("name", ["iot-sentinel", "ndpi"])
def test_derived_deadline_vectors_equal_zeek(zeek, tmp_path, name):
    from conftest import corpus_path
    corpus = load_corpus(_subset(corpus_path(name), tmp_path / "corpus", 1))
    dataset = load_dataset(corpus, MAX_DEPTH, tmp_path / "cache")
    features = [FEATURES_BY_NAME[f] for f in dataset.features]
    ids = _keyed(dataset.ids).assign(row=np.arange(dataset.connections))
    unique = ids.drop_duplicates(KEY, keep=False)  # 5-tuples Zeek split into same-start connections: ambiguous
    decided = set()
    for depth, deadline in [(MAX_DEPTH, 0.002), (MAX_DEPTH, 0.05), (5, 0.3), (MAX_DEPTH, 2.5)]:
        table = _keyed(extract(corpus, features, [depth], deadline=deadline).table)
        merged = unique.merge(table, on=KEY, how="inner", validate="one_to_one")
        assert len(merged) == len(unique), (depth, deadline)
        rows = merged["row"].to_numpy()
        derived = dataset.matrix(dataset.features, depth, deadline)[rows]
        emitted = merged[dataset.features].astype("float64").fillna(MISSING_VALUE).to_numpy()
        # Zeek's connection record lags on ICMP under per-packet scripts, deadline or not (see
        # test_strategies_agree_on_all_features): those columns are compared on TCP and UDP only.
        icmp = (merged["proto"] == "icmp").to_numpy()
        for j, f in enumerate(features):
            tolerance = 1e-6 if f.dtype == "double" else 0.0
            bad = ~np.isclose(derived[:, j], emitted[:, j], rtol=1e-6, atol=tolerance)
            if not f.per_packet:
                bad &= ~icmp
            assert not bad.any(), (f.name, deadline, merged.loc[bad, KEY + ["pkts_seen", "decided_by"]].head(),
                                   derived[bad, j][:5], emitted[bad, j][:5])
        depths = dataset.depths_at(depth, deadline)[rows]
        reached = sum(dataset.reached(d)[rows].astype(int) for d in range(1, MAX_DEPTH + 1))
        seen = np.minimum(depths, reached)
        assert np.array_equal(seen, merged["pkts_seen"].to_numpy()), (depth, deadline)
        decided |= set(merged["decided_by"])
    assert "Cato::DEADLINE" in decided and "Cato::DEPTH" in decided
