"""Features from Zeek's protocol analyzers: where they may run, how their strings become numbers, and
that every way cato computes them agrees (strategies, depths, a dataset's batches)."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from test_extract import sub_corpus

from cato.codegen import GeneratorError, generate
from cato.corpus import link_subset, load_corpus
from cato.dataset import extract, load_dataset, numeric_features
from cato.features import CATALOG, FEATURES_BY_NAME, MISSING_VALUE, resolve
from cato.model import ModelSpec, Vocabularies, cross_val_f1, learned_columns
from cato.zeek import read_zeek_log, run_zeek, static_load_script
from cato.zeek.corpus_run import run_over_captures
from cato.zeek.logs import log_string_bytes
from conftest import corpus_path

ANALYZER = [f.name for f in CATALOG if f.analyzer_field is not None]
KEY = ["capture", "ts", "orig_h", "orig_p", "resp_h", "resp_p", "depth"]


def test_analyzer_features_run_where_the_analyzers_run():
    assert not set(ANALYZER) & set(numeric_features("bare")), "bare Zeek runs no analyzer"
    assert {"dns_query_code", "dns_query_len", "dns_qtype"} <= set(numeric_features("default"))
    assert "dns_query" not in numeric_features("default"), "a string reaches models as numbers only"
    with pytest.raises(GeneratorError, match="native engine computes no analyzer feature.*dns_qtype"):
        generate(resolve("orig_pkts,dns_qtype"), [5], engine="native")
    with pytest.raises(GeneratorError, match="new_packet"):
        generate(resolve("orig_size_mean,dns_qtype"), [5], "new_packet")
    # Every string source has a learned code and a length (but a host name's shape: its name's length
    # says it); a selection can leave the analyzers out.
    for f in CATALOG:
        if f.analyzer_field is not None and f.dtype == "string":
            assert FEATURES_BY_NAME[f"{f.name}_code"].learned, f.name
            assert f.name.endswith("_shape") != (f"{f.name}_len" in FEATURES_BY_NAME), f.name
            assert f.name.endswith("_shape") or not FEATURES_BY_NAME[f"{f.name}_len"].learned
    assert not [f for f in resolve("all,-needs:analyzer") if f.analyzer_field is not None]
    assert len(resolve("all,-needs:analyzer")) + len(ANALYZER) == len(CATALOG)


def test_a_vocabulary_is_learned_from_its_training_rows_only():
    # Column 0: ids of strings (-1 missing); column 1 a plain number, left alone.
    train = np.array([[0, 5], [0, 6], [1, 7], [1, 8], [1, 9], [2, 1], [-1, 2]], dtype=np.float32)
    vocab = Vocabularies([0], max_size=8, min_count=2).fit(train)
    assert vocab.kept[0].tolist() == [1, 0], "most often first; 2 was seen once"
    test = np.array([[1, 0], [0, 0], [2, 0], [9, 0], [-1, 3]], dtype=np.float32)
    assert vocab.transform(test).tolist() == [[1, 0], [2, 0], [0, 0], [0, 0], [MISSING_VALUE, 3]]
    assert vocab.words(0, ["a.com", "b.com", "c.com"]) == ["b.com", "a.com"]
    assert Vocabularies([0], max_size=1).fit(train).kept[0].tolist() == [1]
    # Cross-validation learns a vocabulary per fold: a value only the test fold has codes 0 there, as
    # a deployed model meets values its training never saw. Here each group has a string of its own
    # and a class per string: no fold can score from the string.
    x = np.repeat(np.arange(6), 10).astype(np.float32)[:, None]
    y = np.repeat(np.arange(6) % 3, 10)
    groups = np.repeat(np.arange(6), 10)
    folds = [(np.flatnonzero(groups != g), np.flatnonzero(groups == g)) for g in range(6)]
    for train, test in folds:
        assert (Vocabularies([0]).fit(x[train]).transform(x[test]) == 0).all()
    assert learned_columns(["dns_query_code"]) == [0] and learned_columns(["orig_pkts"]) == []
    scores = cross_val_f1(x, y, folds, ModelSpec("dt", 1, 4), learned=[0])
    assert scores["f1"] < 0.34, "every test row looks alike to the model: one class at most"


def test_zeek_log_strings_become_the_bytes_zeek_saw():
    assert log_string_bytes("(empty)") == b""
    assert log_string_bytes("\\x2d") == b"-"
    assert log_string_bytes("a\\x0ab\\x00\\xff") == b"a\nb\x00\xff"
    assert log_string_bytes("\\\\x41\\\\") == b"\\x41\\"
    assert log_string_bytes("é\\x4") == "é\\x4".encode()


@pytest.mark.zeek
@pytest.mark.corpora
def test_strategies_and_depths_agree_on_analyzer_values(tmp_path):
    """A value is in the vectors made after its packet: counters (Zeek's connection counters) and
    thresholds (per-packet) strategies, and one pass of several depths, give the same columns."""
    root = sub_corpus(corpus_path("ndpi"), tmp_path / "c", 25, every=7)
    corpus = load_corpus(root)
    corpus.flow_level = False
    depths = [1, 2, 3, 5, 8]
    counters = extract(corpus, resolve("needs:analyzer,orig_pkts"), depths, jobs=2, deployment="default").table
    thresholds = extract(corpus, resolve("needs:analyzer,orig_size_mean"), depths, jobs=2,
                         deployment="default").table
    single = extract(corpus, resolve("needs:analyzer,orig_size_mean"), [3], jobs=2, deployment="default").table
    columns = [c for c in ANALYZER if c in counters.columns]
    a, b = (t.sort_values(KEY).reset_index(drop=True) for t in (counters, thresholds))
    assert len(a) == len(b) > 500
    pd.testing.assert_frame_equal(a[KEY + columns], b[KEY + columns])
    for column in ("service", "dns_query", "tls_server_name", "http_host"):
        assert a[column].notna().any(), column
    # A value comes after the packet that brings it: no vector of one packet has a DNS query.
    assert a.loc[(a["depth"] == 1) & (a["decided_by"] == "Cato::DEPTH"), "dns_query"].isna().all()
    s = single.sort_values(KEY).reset_index(drop=True)
    pd.testing.assert_frame_equal(s[KEY + columns], b[b["depth"] == 3].reset_index(drop=True)[KEY + columns])


@pytest.mark.zeek
@pytest.mark.corpora
def test_a_dataset_stores_each_string_as_its_corpus_rank_across_batches(tmp_path, monkeypatch):
    """A dataset made of several batches: each learned feature's ids name the strings Zeek logged,
    ranked by how many connections have them."""
    import cato.zeek.corpus_run as corpus_run
    monkeypatch.setattr(corpus_run, "MAX_BATCH_BYTES", 256 * 1024)
    root = sub_corpus(corpus_path("iot-sentinel"), tmp_path / "c", 30, every=17)
    corpus = load_corpus(root)
    dataset = load_dataset(corpus, 6, tmp_path / "cache", jobs=2, deployment="default")
    table = extract(corpus, resolve("dns_query,service,dhcp_param_list"), [6], jobs=2, deployment="default").table
    ids = dataset.ids.assign(depth=6)
    merged = ids.merge(table, on=KEY, how="left", suffixes=("", "_t"))
    assert len(merged) == dataset.connections
    for feature, source in (("dns_query_code", "dns_query"), ("service_code", "service"),
                            ("dhcp_param_list_code", "dhcp_param_list")):
        stored = dataset.matrix([feature], 6)[:, 0]
        strings = dataset.strings(feature)
        back = [None if v < 0 else strings[int(v)] for v in stored]
        expected = [None if pd.isna(v) else v for v in merged[source]]
        assert back == expected, feature
        counts = pd.Series([s for s in back if s is not None]).value_counts()
        ranked = [counts.get(s, 0) for s in strings]
        assert ranked == sorted(ranked, reverse=True) and ranked[-1] > 0, (feature, "ranked by count")
    assert dataset.strings("service_code")[0] in {"dns", "http", "ssl", "dhcp", "ntp"}
    assert dataset.strings("ssh_client_version_code") == [], "no SSH here: a vocabulary of nothing"
    assert (dataset.matrix(["ssh_client_version_code"], 6) == MISSING_VALUE).all()


@pytest.mark.zeek
@pytest.mark.corpora
def test_a_bare_study_of_analyzer_features_says_why_it_cannot_search_them(mini_corpus, cache, tmp_path):
    from cato.study import Study, StudyError, StudySettings
    dataset = load_dataset(load_corpus(mini_corpus), 5, cache)  # bare
    study = Study.open(tmp_path / "s", StudySettings(str(mini_corpus), max_depth=5, deployment="bare",
                                                     features=("dns_query_code", "service_code")))
    with pytest.raises(StudyError, match="Zeek's analyzers.*bare deployment.*--deployment default"):
        study.importance(dataset, lambda _m: None)


@pytest.mark.zeek
@pytest.mark.corpora
def test_remembered_values_stay_in_their_capture_and_come_with_the_first_packet(zeek, tmp_path):
    """Captures of one device (one MAC address) merged into one stream give the remembered columns
    that each capture run alone gives: Cato::host_memory and name_memory end before the next capture
    (merged streams put them a day apart). Values are in the first packet's vector, under both the
    counters and the thresholds strategy."""
    src = corpus_path("iot-sentinel")
    labels = pd.read_csv(src / "labels.csv", dtype=str, keep_default_na=False)
    captures = [*labels.loc[labels["label"] == "HueBridge", "pcap"][:3], *labels.loc[labels["label"] == "Aria", "pcap"][:2]]
    corpus = load_corpus(link_subset(src, captures, tmp_path / "c"))
    remembered = [f.name for f in resolve("group:host_dhcp,group:host_dns") if f.dtype == "string"]
    key = ["capture", "ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "depth"]
    for other in ("orig_pkts", "orig_size_mean"):
        script = generate(resolve(f"group:host_dhcp,group:host_dns,{other}"), [1, 5])
        path = tmp_path / f"{other}.zeek"
        path.write_text(script.text)
        merged = run_over_captures(path, [(c, corpus.path_of(c)) for c in corpus.captures], jobs=1, zeek=zeek)
        singles = []
        for i, cap in enumerate(corpus.captures):
            run = run_zeek(corpus.path_of(cap), [static_load_script(), path], workdir=tmp_path / f"{other}{i}",
                           zeek=zeek)
            singles.append(read_zeek_log(run.log("cato")).assign(capture=cap))
        a, b = (t.assign(capture=t["capture"].astype(str)).sort_values(key).reset_index(drop=True)[key + remembered]
                for t in (merged.vectors, pd.concat(singles, ignore_index=True)))
        assert len(a) > 300
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
        first = a[a["depth"] == 1]
        assert first["orig_host_dhcp_param_list"].notna().mean() > 0.5, "the device's own connections"
        assert first["resp_host_dhcp_param_list"].notna().any() and first["resp_dns_domain"].notna().any()
