"""Extraction over real corpora with real Zeek: labels, schema, merged streams, bad captures."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cato.cli import app
from cato.codegen import generate
from cato.corpus import flow_key, link_subset, load_corpus, read_capture
from cato.corpus.pcapio import write_pcap_header
from cato.dataset.extract import ID_COLUMNS, extract
from cato.features import CATALOG, resolve
from cato.zeek import read_zeek_log, run_zeek, static_load_script
from cato.zeek.corpus_run import run_over_captures
from conftest import corpus_path

pytestmark = pytest.mark.zeek
TRACES = Path(__file__).parent / "btest" / "Traces"


def sub_corpus(src: Path, dst: Path, n: int, every: int = 1) -> Path:
    """A corpus of ``n`` of ``src``'s captures, linked where they lie (never copied)."""
    labels = pd.read_csv(src / "labels.csv", dtype=str, keep_default_na=False)
    caps = list(dict.fromkeys(labels["pcap"]))[::every][:n]
    dst.mkdir(parents=True, exist_ok=True)
    return link_subset(src, caps, dst)


@pytest.mark.corpora
@pytest.mark.parametrize("name,n,every", [("iot-sentinel", 24, 23), ("ndpi", 40, 12)])
def test_merged_streams_give_what_single_runs_give(zeek, name, n, every, tmp_path):
    """The merge trick must not change any vector: compare with one Zeek run per capture."""
    corpus = load_corpus(sub_corpus(corpus_path(name), tmp_path / "c", n, every=every))
    script = generate(resolve("all,-needs:analyzer"), [1, 5, 20])
    path = tmp_path / "gen.zeek"
    path.write_text(script.text)
    merged = run_over_captures(path, [(c, corpus.path_of(c)) for c in corpus.captures], jobs=2, zeek=zeek)
    assert not [p for p in merged.problems if p.skipped]
    singles = []
    for i, cap in enumerate(corpus.captures):
        run = run_zeek(corpus.path_of(cap), [static_load_script(), path], workdir=tmp_path / f"s{i}", zeek=zeek)
        df = read_zeek_log(run.log("cato"))
        df.insert(0, "capture", cap)
        singles.append(df)
    single = pd.concat(singles, ignore_index=True)
    key = ["capture", "ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "depth"]
    # Zeek read directly mistakes times near the epoch for "no time yet" (IATs of 0): merged streams
    # shift such captures to sane times, so they are not compared here.
    near_epoch = {c for c in corpus.captures
                  if min(p.ts_ns for p in read_capture(corpus.path_of(c)).packets) < 86_400 * 10**9}
    a = merged.vectors[~merged.vectors["capture"].isin(near_epoch)]
    b = single[~single["capture"].isin(near_epoch)]
    a = a.drop(columns=["uid"]).sort_values(key).reset_index(drop=True)
    b = b.drop(columns=["uid"]).sort_values(key).reset_index(drop=True)
    a["capture"] = a["capture"].astype(str)
    b["capture"] = b["capture"].astype(str)
    assert len(a) > 500
    # Loads divide by durations that can be a few µs: time arithmetic at different epochs (1e-7 s
    # apart) moves them slightly.
    loads = ["orig_load", "resp_load"]
    pd.testing.assert_frame_equal(a.drop(columns=loads), b.drop(columns=loads), check_dtype=False, rtol=0, atol=2e-6)
    pd.testing.assert_frame_equal(a[loads], b[loads], check_dtype=False, rtol=1e-2)


@pytest.mark.corpora
def test_iot_sentinel_extraction_schema_and_labels(zeek, iot_corpus, tmp_path):
    corpus = load_corpus(sub_corpus(iot_corpus, tmp_path / "c", 40, every=13))
    result = extract(corpus, resolve("all"), [1, 10], jobs=2)
    t = result.table
    assert list(t.columns) == ID_COLUMNS + [f.name for f in CATALOG]
    assert set(t["depth"]) == {1, 10}
    assert len(t) == 2 * t["uid"].nunique() > 300
    labels = corpus.labels.set_index("pcap")["label"]
    assert (t["label"] == t["capture"].map(labels)).all()
    assert (t["pkts_seen"] <= t["depth"]).all()
    assert not result.skipped


@pytest.mark.corpora
def test_ndpi_flow_labels_match_by_five_tuple(zeek, ndpi_corpus, tmp_path):
    corpus = load_corpus(sub_corpus(ndpi_corpus, tmp_path / "c", 60, every=8))
    result = extract(corpus, resolve("orig_pkts,resp_pkts,orig_size_mean"), [5], jobs=2)
    t = result.table
    labelled = corpus.labels
    usable = labelled[~labelled["pcap"].isin({p.capture for p in result.skipped})]
    # Nearly every labelled flow is found (nDPI and Zeek may split a few differently).
    assert t.groupby(["capture"]).size().sum() >= 0.85 * len(usable)
    for row in t.head(50).itertuples():
        match = labelled[(labelled["pcap"] == row.capture) & (labelled["proto"] == row.proto)
                         & (((labelled["src_ip"] == row.orig_h) & (labelled["src_port"] == row.orig_p))
                            | ((labelled["dst_ip"] == row.orig_h) & (labelled["dst_port"] == row.orig_p)))]
        assert row.label in set(match["label"])


@pytest.mark.corpora
def test_bad_captures_are_named_and_do_not_stop_the_corpus(zeek, malformed_dir, tmp_path):
    root = tmp_path / "c"
    root.mkdir()
    rows = ["pcap,label"]
    for p in sorted(malformed_dir.iterdir()):  # linked in: labels.csv names captures inside its folder
        (root / p.name).symlink_to(p.resolve())
        rows.append(f"{p.name},broken")
    (root / "empty.pcap").write_bytes(b"")
    with open(root / "header-only.pcap", "wb") as out:  # a valid capture holding no packet
        write_pcap_header(out, 1)
    (root / "garbage.pcap").write_bytes(b"this is not a capture at all")
    shutil.copy(TRACES / "small.pcap", root / "good.pcap")
    rows += ["empty.pcap,broken", "garbage.pcap,broken", "header-only.pcap,quiet", "good.pcap,fine",
             "missing.pcap,gone"]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    corpus = load_corpus(root)
    assert any("missing.pcap" in p for p in corpus.problems)
    result = extract(corpus, resolve("all,-needs:analyzer"), [10], jobs=2)
    skipped = {Path(p.capture).name: p.reason for p in result.skipped}
    assert "garbage.pcap" in skipped and "not a pcap" in skipped["garbage.pcap"]
    assert "empty.pcap" in skipped and "no packet" in skipped["header-only.pcap"]
    good = result.table[result.table["capture"] == "good.pcap"]
    assert len(good) == 5 and set(good["label"]) == {"fine"}
    # Most malformed captures still yield connections.
    assert result.table["capture"].nunique() > 5


def test_cli_generate_and_extract(zeek, tmp_path):
    root = tmp_path / "c"
    root.mkdir()
    shutil.copy(TRACES / "small.pcap", root / "a.pcap")
    shutil.copy(TRACES / "long.pcap", root / "b.pcap")
    (root / "labels.csv").write_text("pcap,label\na.pcap,x\nb.pcap,y\n")
    runner = CliRunner()
    out = runner.invoke(app, ["generate", "--features", "orig_pkts,tcp_rtt", "--depths", "1,5", "-o",
                              str(tmp_path / "g.zeek")])
    assert out.exit_code == 0, out.output
    assert "redef depths = vector(1, 5);" in (tmp_path / "g.zeek").read_text()
    out = runner.invoke(app, ["extract", str(root), "--features", "all,-needs:analyzer", "--depths", "1,5", "-o",
                              str(tmp_path / "x.parquet"), "-j", "1"])
    assert out.exit_code == 0, out.output
    t = pd.read_parquet(tmp_path / "x.parquet")
    assert len(t) == 2 * 6 and set(t["label"]) == {"x", "y"}
    out = runner.invoke(app, ["extract", str(tmp_path / "nope"), "-o", str(tmp_path / "y.parquet")])
    assert out.exit_code == 2 and "not found" in out.output
    out = runner.invoke(app, ["generate", "--features", "bogus"])
    assert out.exit_code == 2 and "bogus" in out.output


@pytest.mark.corpora
def test_strategies_agree_on_real_connections(zeek, ndpi_corpus, tmp_path):
    """new_packet and re-armed thresholds give the same vectors on real traffic (role flips,
    retransmissions, ICMP, IPv6). Known exceptions: on ICMP, features read from the connection record
    may lag a packet (Zeek 8.0 cannot look every ICMP connection up by its ID; asserted exactly on
    icmp.pcap in test_zeek_scripts), and, kept rare by the bound below, a threshold event gets no
    header for a packet Zeek reassembled from fragments or found truncated."""
    corpus = load_corpus(sub_corpus(ndpi_corpus, tmp_path / "c", 50, every=9))
    corpus.flow_level = False  # every connection, labelled or not
    tables = [extract(corpus, resolve("all,-needs:analyzer"), [1, 4, 12], strategy=s, jobs=2).table
              for s in ("new_packet", "thresholds")]
    key = ["capture", "ts", "orig_h", "orig_p", "resp_h", "resp_p", "depth"]
    a, b = (t.drop(columns=["uid"]).sort_values(key).reset_index(drop=True) for t in tables)
    assert len(a) == len(b) > 1000 and set(a["proto"]) >= {"tcp", "udp"}
    assert (a[key] == b[key]).all().all()
    flow = resolve("all,-needs:analyzer")
    conn_cols = [f.name for f in flow if not f.per_packet]
    feats = [f.name for f in flow if f.dtype != "string"]
    x, y = a[feats].astype(float).to_numpy(), b[feats].astype(float).to_numpy()
    same = np.isclose(x, y, rtol=1e-9, atol=1e-9) | (np.isnan(x) & np.isnan(y))
    icmp = (a["proto"] == "icmp").to_numpy()
    same[np.ix_(icmp, [feats.index(c) for c in conn_cols if c in feats])] = True
    differing = ~same.all(axis=1)
    assert differing.mean() <= 0.005, a.loc[differing, key].head(10).to_string()


@pytest.mark.corpora
def test_whole_iot_sentinel_corpus(zeek, iot_corpus):
    result = extract(load_corpus(iot_corpus), resolve("all,-needs:analyzer"), [10], jobs=2)
    t = result.table
    assert len(t) >= 14_000 and t["label"].nunique() == 31
    assert not result.skipped and t["uid"].is_unique


@pytest.mark.corpora
def test_whole_ndpi_corpus(zeek, ndpi_corpus):
    corpus = load_corpus(ndpi_corpus)
    result = extract(corpus, resolve("orig_pkts,resp_pkts,orig_size_mean,tcp_rtt"), [10], jobs=2)
    t = result.table
    matched = {(c, flow_key(p, a, ap, b, bp))
               for c, p, a, ap, b, bp in zip(t["capture"], t["proto"], t["orig_h"], t["orig_p"], t["resp_h"],
                                             t["resp_p"])}
    assert len(matched) >= 5_000 and len(matched) <= len(corpus.labels)
    # Every capture of the corpus is read (pcapng, Linux SLL, raw IP, null/loopback, PPP); the few where Zeek
    # sees no connection (HDLC, SOME/IP link types, a lone tunnel) are named as such, not passed over.
    assert all("Zeek saw no connection" in p.reason for p in result.skipped), [str(p) for p in result.skipped]
    assert len(result.skipped) <= 4, [str(p) for p in result.skipped]
