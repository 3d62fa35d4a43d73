"""Large corpora: the out-of-core dataset equals the table extracted in memory, and the samples a study
measures a large corpus on (cross-validation rows, profiling captures) are drawn as documented."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cato.corpus import link_subset, load_corpus
from cato.dataset import Dataset, DatasetError, extract, load_dataset
from cato.features import resolve
from cato.zeek.corpus_run import plan_batches

KEY = ["capture", "ts", "proto", "orig_h", "orig_p", "resp_h", "resp_p"]


def _table(n: int, classes: dict[str, int], depths: int = 3) -> pd.DataFrame:
    """``n`` connections labelled by ``classes`` (label -> connections), one group per 10 connections."""
    labels = [label for label, k in classes.items() for _ in range(k)]
    assert len(labels) == n
    rows = []
    for i, label in enumerate(labels):
        for depth in range(1, depths + 1):
            rows.append({"capture": f"c{i // 10:04d}.pcap", "uid": f"C{i}", "ts": float(i), "proto": "udp",
                         "orig_h": "10.0.0.1", "orig_p": 1000 + i, "resp_h": "10.0.0.2", "resp_p": 53,
                         "depth": depth, "label": label, "group": f"g{i // 10}", "orig_pkts": depth,
                         "orig_size_sum": float(i * depth)})
    return pd.DataFrame(rows)


def test_a_sample_is_stratified_keeps_rare_classes_and_reads_the_same_vectors():
    ds = Dataset.from_table(_table(3000, {"big": 2800, "mid": 150, "rare": 50}), 3)
    assert ds.sample(5000) is ds and ds.sample(0) is ds  # no larger than the corpus: itself
    s = ds.sample(600, seed=1)
    counts = {ds.classes[c]: int((s.y == c).sum()) for c in range(len(ds.classes))}
    # Shares kept (2800 * 600 / 3000 = 560), rare classes floored at 100 rows or all they have.
    assert counts == {"big": 560, "mid": 100, "rare": 50}
    assert s.connections == 710 and s.sampling["of"] == 3000 and s.corpus_connections == 3000
    assert s.key != ds.key  # its F1s are cached apart from the corpus's
    assert np.all(np.diff(s.rows) > 0)
    for depth in (1, 3):
        np.testing.assert_array_equal(s.matrix(ds.features, depth), ds.matrix(ds.features, depth)[s.rows])
    np.testing.assert_array_equal(s.y, ds.y[s.rows])
    np.testing.assert_array_equal(s.groups, ds.groups[s.rows])
    assert list(s.ids["uid"]) == list(ds.ids["uid"].iloc[s.rows])
    # The same seed draws the same rows; another seed others.
    np.testing.assert_array_equal(ds.sample(600, seed=1).rows, s.rows)
    assert not np.array_equal(ds.sample(600, seed=2).rows, s.rows)
    with pytest.raises(DatasetError, match="already a sample"):
        s.sample(100)


def _fake_corpus(root: Path, sizes: dict[str, tuple[str, int]]) -> Path:
    for name, (_, size) in sizes.items():
        (root / name).write_bytes(b"\0" * size)
    pd.DataFrame({"pcap": list(sizes), "label": [label for label, _ in sizes.values()]}).to_csv(
        root / "labels.csv", index=False)
    return root


def test_a_capture_sample_takes_whole_captures_and_every_label_its_share(tmp_path):
    sizes = {f"a{i}.pcap": ("a", 1000) for i in range(60)} | {f"b{i}.pcap": ("b", 1000) for i in range(30)} | \
        {"c0.pcap": ("c", 5000)}
    corpus = load_corpus(_fake_corpus(tmp_path, sizes))
    assert corpus.sample_captures(10**9) is corpus and corpus.sample_captures(0) is corpus
    sample = corpus.sample_captures(20_000, seed=3)
    picked = sample.captures
    assert set(picked) <= set(sizes) and set(sample.labels["label"]) == {"a", "b", "c"}
    # Each label its share of the bytes (a: 60/95, b: 30/95 of 20 kB), rounded up to whole captures.
    assert sum(1 for c in picked if c.startswith("a")) == 13
    assert sum(1 for c in picked if c.startswith("b")) == 7
    assert corpus.sample_captures(20_000, seed=3).captures == picked



def test_a_study_takes_its_profiling_sample_for_its_corpus_and_refuses_a_changed_corpus(tmp_path):
    """A large corpus's costs are measured on a sample of its captures: the study's corpus check must
    take the sample for the corpus it was drawn from (a 30x corpus was refused before any trial)."""
    from cato.study import Study, StudyError, StudySettings
    sizes = {f"a{i}.pcap": ("a", 1000) for i in range(20)} | {f"b{i}.pcap": ("b", 1000) for i in range(20)}
    (tmp_path / "corpus").mkdir()
    root = _fake_corpus(tmp_path / "corpus", sizes)
    study = Study.open(tmp_path / "s", StudySettings(str(root), profile_sample_mb=0.01))
    corpus = study.corpus()
    sample = study.profile_corpus(corpus)
    assert len(sample.captures) < len(corpus.captures) and sample.sample_of == corpus.content_hash()
    study.check_corpus(sample)  # the profiling sample stands for its corpus
    (root / "a0.pcap").write_bytes(b"\1" * 1000)
    with pytest.raises(StudyError, match="changed since the study"):
        study.corpus()
    with pytest.raises(StudyError, match="changed since the study"):
        study.check_corpus(load_corpus(root).sample_captures(10_000))

@pytest.mark.corpora
def test_the_out_of_core_dataset_equals_the_table_extracted_in_memory(zeek, tmp_path):
    from conftest import corpus_path
    root = corpus_path("iot-sentinel")
    labels = pd.read_csv(root / "labels.csv", dtype=str, keep_default_na=False)
    files = labels.drop_duplicates("pcap").assign(size=lambda t: [(root / p).stat().st_size for p in t["pcap"]])
    # Small captures of every device, more than one batch's worth in all.
    pick = files[files["size"] < 300_000].sort_values("size").groupby("label").tail(3)
    corpus = load_corpus(link_subset(root, pick["pcap"], tmp_path / "corpus"))
    assert len(plan_batches([corpus.path_of(c) for c in sorted(corpus.captures)], 2)) > 1
    ds = load_dataset(corpus, 6, tmp_path / "cache", jobs=2)
    # The bare dataset's features: flow statistics (a bare deployment runs no analyzer).
    table = extract(corpus, resolve("all,-needs:analyzer"), range(1, 7), jobs=1, input_positions=True).table
    memory = Dataset.from_table(table, 6)
    assert ds.classes == memory.classes and ds.features == memory.features and ds.connections > 100
    np.testing.assert_array_equal(ds.y, memory.y)
    pd.testing.assert_frame_equal(ds.ids[KEY].reset_index(drop=True), memory.ids[KEY].reset_index(drop=True),
                                  check_dtype=False)
    for depth in range(1, 7):
        np.testing.assert_array_equal(ds.matrix(ds.features, depth), memory.matrix(ds.features, depth))
    for deadline in (0.01, 0.5):
        np.testing.assert_array_equal(ds.depths_at(6, deadline), memory.depths_at(6, deadline))
    assert ds.span_s == memory.span_s
    # Nothing but the dataset is left in the cache: the batches written on the way are gone.
    assert [p.name for p in (tmp_path / "cache" / "datasets").iterdir()] == [ds.key[:32]]
    assert not list((tmp_path / "cache").rglob("part-*"))


def test_a_study_checks_its_sample_against_the_whole_corpus(tmp_path):
    from cato.study import Study, StudySettings
    table = _table(1200, {"a": 600, "b": 500, "c": 100})
    # Make the labels learnable from orig_size_sum's band.
    table["orig_size_sum"] = table["label"].map({"a": 1.0, "b": 2.0, "c": 3.0}) * table["depth"] + \
        table["uid"].str[1:].astype(int) % 7 * 0.01
    ds = Dataset.from_table(table, 3)
    study = Study.open(tmp_path / "study", StudySettings(str(tmp_path), max_depth=3, folds=3, cv_sample=400))
    sample = study.cv_dataset(ds)
    assert sample.sampling is not None and sample.connections < ds.connections
    importance = {"features": ds.features, "mi": [1.0, 0.5]}
    check = study.sample_check(ds, sample, importance, lambda _m: None)
    assert check["of"] == 1200 and len(check["f1_samples"]) == 3
    assert check["bound"] == max(abs(v - check["f1_full"]) for v in check["f1_samples"])
    assert study.storage.get("sampling") == check
    assert study.sample_check(ds, ds, importance, lambda _m: None) is None  # no sample, nothing to check


@pytest.mark.corpora
@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_cato_extract_writes_the_table_batch_by_batch_as_extract_makes_it(zeek, mini_corpus, tmp_path, suffix):
    from cato.dataset import extract_to_file
    from cato.features import resolve
    feats = resolve("orig_pkts,orig_size_mean,tcp_rtt,history")
    corpus = load_corpus(mini_corpus)
    out = tmp_path / f"table{suffix}"
    result, parts = extract_to_file(corpus, feats, [1, 4], out, jobs=2)
    written = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out, keep_default_na=False,
                                                                               na_values=[""])
    memory = extract(corpus, feats, [1, 4], jobs=1).table
    assert len(written) == len(memory) == sum(p.rows for p in parts) > 0 and result.table.empty
    # Zeek draws uids at random: rows are compared by what the traffic fixes, in the order written.
    cols = [c for c in memory.columns if c != "uid"]
    pd.testing.assert_frame_equal(written[cols].astype(str), memory[cols].astype(str))
    assert not list(tmp_path.glob(".cato-parts-*"))  # the batches' files are gone
