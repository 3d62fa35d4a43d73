"""Bad captures and labels through extract, profile, tune and serve --replay (#19).

One corpus holds good captures beside fuzzed ones (from the malformed corpus when present), a
truncated, an empty, a text file, an unsupported link type and one whose clock jumps a year back and
ten years on. Every command must name each bad file with its cause and still process the rest.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dpkt
import pandas as pd
import pytest

from cato.corpus import load_corpus
from conftest import CORPORA

pytestmark = pytest.mark.zeek
TRACES = Path(__file__).parent / "btest" / "Traces"
FUZZED = ("fuzz-2021-06-07-c6c72a0a56.pcap", "ossfuzz_seed_fake_traces_4.pcapng", "tls-esni-fuzzed.pcap")
#: Bad file -> what the report must say about it.
CAUSES = {"empty.pcap": "0 bytes", "notes.pcap": "not a pcap or pcapng", "truncated.pcap": "ends inside packet",
          "linktype.pcap": "link type 147"}


def _rewrite(src: Path, dst: Path, linktype: int = 1, clock=lambda i, ts: ts) -> None:
    with open(src, "rb") as f, open(dst, "wb") as out:
        w = dpkt.pcap.Writer(out, linktype=linktype)
        for i, (ts, buf) in enumerate(dpkt.pcap.Reader(f)):
            w.writepkt(buf, ts=clock(i, ts))


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    shutil.copy(TRACES / "small.pcap", root / "small.pcap")
    shutil.copy(TRACES / "long.pcap", root / "long.pcap")
    raw = (TRACES / "long.pcap").read_bytes()
    (root / "truncated.pcap").write_bytes(raw[:len(raw) // 2 + 7])
    (root / "empty.pcap").write_bytes(b"")
    (root / "notes.pcap").write_text("this is a text file, not a capture\n")
    _rewrite(TRACES / "small.pcap", root / "linktype.pcap", linktype=147)  # USER0: nothing Zeek decodes
    year = 365 * 86400
    _rewrite(TRACES / "long.pcap", root / "clock.pcap",
             clock=lambda i, ts: ts - year if i % 3 == 1 else (ts + 10 * year if i % 3 == 2 else ts))
    fuzzed = [n for n in FUZZED if (CORPORA / "malformed" / n).is_file()]
    for name in fuzzed:  # linked, never copied
        (root / name).symlink_to((CORPORA / "malformed" / name).resolve())
    rows = {"small.pcap": "a", "long.pcap": "b", "clock.pcap": "b", "truncated.pcap": "b", **{n: "c" for n in fuzzed},
            **{n: "c" for n in ("empty.pcap", "notes.pcap", "linktype.pcap")}}
    (root / "labels.csv").write_text("pcap,label\n" + "".join(f"{p},{label}\n" for p, label in rows.items()))
    return root


def _cato(*args, cache: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "CATO_CACHE": str(cache), "COLUMNS": "400", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "cato", *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _lines_naming(stderr: str, name: str) -> str:
    return "\n".join(line for line in stderr.splitlines() if name in line)


def test_extract_names_each_bad_capture_and_its_cause_and_keeps_the_rest(bad_corpus, tmp_path):
    out = tmp_path / "t.parquet"
    r = _cato("extract", bad_corpus, "-f", "orig_pkts,resp_port", "-n", 5, "-o", out, "-j", 1, cache=tmp_path)
    assert r.returncode == 0, r.stderr
    for name, cause in CAUSES.items():
        assert cause in _lines_naming(r.stderr, name), f"{name}: {r.stderr}"
    t = pd.read_parquet(out)
    per = t.groupby("capture").size()
    assert per["small.pcap"] == 5 and per["long.pcap"] >= 1 and per["truncated.pcap"] >= 1
    # Clock jumps neither stop Zeek nor shift the capture's rows into another's.
    assert per["clock.pcap"] >= 1 and set(t.loc[t["capture"] == "clock.pcap", "label"]) == {"b"}
    assert not set(CAUSES) - {"truncated.pcap"} & set(per.index)
    assert r.stderr.count("skipped:") >= 3


def test_profile_names_what_it_left_out_and_measures_the_rest(bad_corpus, tmp_path):
    r = _cato("profile", bad_corpus, "-f", "orig_pkts", "-n", 2, "-k", 1, "--json", cache=tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert "0 bytes" in data["left_out"]["empty.pcap"] and "not a pcap" in data["left_out"]["notes.pcap"]
    assert "empty.pcap" in r.stderr and "notes.pcap" in r.stderr
    assert data["connections"] >= 7 and data["cpu_s"] > 0


@pytest.fixture(scope="module")
def bad_study(bad_corpus, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    study = tmp_path_factory.mktemp("studies") / "s"
    # One model family: a dimension BO holds fixed (this once made every BO iteration's GP inputs NaN).
    r = _cato("tune", bad_corpus, "--study", study, "--budget", 3, "--initial", 2, "--max-depth", 3, "--models", "dt",
              "--folds", 2, "--no-baselines", "--model-seeds", 1, "-j", 1, "--deployment", "bare",
              cache=cache, timeout=600)  # bare: the bad captures are tested, not the deployment
    return study, cache, r


def test_tune_names_the_bad_captures_and_finishes(bad_study):
    study, _, r = bad_study
    assert r.returncode == 0, r.stderr
    for name, cause in CAUSES.items():
        assert cause in _lines_naming(r.stderr, name), f"{name}: {r.stderr}"
    import sqlite3
    with sqlite3.connect(study / "study.db") as con:
        states = [s for (s,) in con.execute("SELECT state FROM trials WHERE kind = 'search'")]
    assert states == ["complete"] * 3


@pytest.fixture(scope="module")
def bad_package(bad_study, tmp_path_factory):
    study, cache, r = bad_study
    assert r.returncode == 0, r.stderr
    pkg = tmp_path_factory.mktemp("pkg") / "p"
    c = _cato("compile", study, "-o", pkg, "--pick", "most-accurate", cache=cache)
    assert c.returncode == 0, c.stderr
    return pkg, cache


@pytest.mark.parametrize("name,cause", [("empty.pcap", "0 bytes"), ("notes.pcap", "not a pcap"),
                                        ("linktype.pcap", "link type 147")])
def test_replay_refuses_a_bad_capture_by_name(bad_package, bad_corpus, name, cause, tmp_path):
    pkg, cache = bad_package
    r = _cato("serve", pkg, "--replay", bad_corpus / name, "--out", tmp_path / "out", cache=cache, timeout=120)
    assert r.returncode != 0 and name in r.stderr and cause in r.stderr, r.stderr


@pytest.mark.parametrize("name", ["truncated.pcap", "clock.pcap"])
def test_replay_answers_what_a_damaged_capture_holds(bad_package, bad_corpus, name, tmp_path):
    pkg, cache = bad_package
    r = _cato("serve", pkg, "--replay", bad_corpus / name, "--out", tmp_path / "out", "--json", cache=cache,
              timeout=120)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["connections"] >= 1 and data["answered"] == data["connections"]
    if name == "truncated.pcap":  # Zeek itself stops with a fatal error at the cut, and writes no log
        assert "ends inside packet" in _lines_naming(r.stderr, name), r.stderr


# Labels -------------------------------------------------------------------------------------------


def test_a_capture_with_two_labels_is_left_out_by_name(tmp_path):
    for name in ("a.pcap", "b.pcap"):
        shutil.copy(TRACES / "small.pcap", tmp_path / name)
    (tmp_path / "labels.csv").write_text("pcap,label\na.pcap,x\na.pcap,y\nb.pcap,x\nb.pcap,x\n")
    corpus = load_corpus(tmp_path)
    assert corpus.captures == ["b.pcap"]
    assert any("conflicting labels" in p and "a.pcap" in p for p in corpus.problems)


def test_flow_labels_that_match_nothing_are_counted_by_capture(tmp_path):
    from cato.dataset.extract import extract
    from cato.features import resolve
    for name in ("small.pcap", "long.pcap"):
        shutil.copy(TRACES / name, tmp_path / name)
    (tmp_path / "labels.csv").write_text("pcap,label\nsmall.pcap,x\nlong.pcap,y\n")
    seen = extract(load_corpus(tmp_path), resolve("orig_pkts"), [1]).table
    real = seen[seen["capture"] == "small.pcap"].iloc[0]
    rows = ["pcap,label,proto,src_ip,src_port,dst_ip,dst_port",
            f"small.pcap,x,{real['proto']},{real['orig_h']},{real['orig_p']},{real['resp_h']},{real['resp_p']}",
            "small.pcap,x,udp,192.0.2.1,1,192.0.2.2,2",  # nothing like it in the capture
            "long.pcap,y,tcp,192.0.2.3,3,192.0.2.4,4"]  # a capture none of whose connections is labelled
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    result = extract(load_corpus(tmp_path), resolve("orig_pkts"), [1])
    problems = {p.capture: p for p in result.problems}
    assert "1 of its 2 labelled connections matched no connection" in problems["small.pcap"].reason
    assert "192.0.2.1" in problems["small.pcap"].reason and not problems["small.pcap"].skipped
    assert "none is labelled" in problems["long.pcap"].reason and problems["long.pcap"].skipped
    assert list(result.table["capture"]) == ["small.pcap"]


# Studies and packages -----------------------------------------------------------------------------


def test_a_study_refuses_its_corpus_changed_from_python_too(tmp_path):
    """The check lives in the study: Python callers (Study.corpus, run_study) meet it as the CLI does."""
    from cato.study import Study, StudyError, StudySettings
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(TRACES / "small.pcap", corpus / "a.pcap")
    (corpus / "labels.csv").write_text("pcap,label\na.pcap,web\n")
    study = Study.open(tmp_path / "study", StudySettings(str(corpus), max_depth=1))
    assert study.corpus().captures == ["a.pcap"]  # the first corpus is recorded
    (corpus / "labels.csv").write_text("pcap,label\na.pcap,mail\n")
    with pytest.raises(StudyError, match="changed since the study"):
        study.corpus()
    with pytest.raises(StudyError, match="changed since the study"):
        Study.open(tmp_path / "study").check_corpus(load_corpus(corpus))


def test_a_study_refuses_its_corpus_loaded_by_another_task(tmp_path):
    """A corpus loaded by another label column or least class size than the study's settings would be
    recorded as the study's own and score every trial on another task: refused, naming both."""
    from cato.study import Study, StudyError, StudySettings
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(TRACES / "small.pcap", corpus / "a.pcap")
    shutil.copy(TRACES / "small.pcap", corpus / "b.pcap")
    (corpus / "labels.csv").write_text("pcap,label,device_type\na.pcap,web,hub\nb.pcap,mail,hub\n")
    study = Study.open(tmp_path / "study", StudySettings(str(corpus), "device_type", max_depth=1))
    with pytest.raises(StudyError, match="label column 'label'.*classifies by 'device_type'"):
        study.check_corpus(load_corpus(corpus))
    with pytest.raises(StudyError, match="at least 2 row.*at least 1"):
        study.check_corpus(load_corpus(corpus, "device_type", min_class_size=2))
    assert study.storage.get("corpus_hash") is None, "a refused corpus is not recorded"
    study.check_corpus(study.settings.load_corpus())
    assert study.corpus().label_column == "device_type"


def test_a_study_resumes_only_on_its_own_unchanged_corpus(bad_study, tmp_path):
    import sqlite3
    study, cache, r = bad_study
    assert r.returncode == 0, r.stderr
    copy = tmp_path / "s"
    shutil.copytree(study, copy)
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(TRACES / "small.pcap", other / "x.pcap")
    (other / "labels.csv").write_text("pcap,label\nx.pcap,a\n")
    moved = _cato("tune", other, "--study", copy, "--budget", 4, "--resume", cache=cache)
    assert moved.returncode != 0 and "made on the corpus" in moved.stderr and str(other) in moved.stderr
    with sqlite3.connect(copy / "study.db") as con:  # as if a capture had changed since
        con.execute("UPDATE study SET value = '\"0000\"' WHERE key = 'corpus_hash'")
    settings = json.loads(sqlite3.connect(copy / "study.db").execute(
        "SELECT value FROM study WHERE key = 'settings'").fetchone()[0])
    changed = _cato("tune", settings["corpus"], "--study", copy, "--budget", 4, "--resume", cache=cache)
    assert changed.returncode != 0 and "changed since the study" in changed.stderr, changed.stderr
    with sqlite3.connect(copy / "study.db") as con:  # and nothing was added to it
        assert con.execute("SELECT count(*) FROM trials").fetchone()[0] == 3


def test_a_truncated_model_is_refused_by_name(bad_package, bad_corpus, tmp_path):
    pkg, cache = bad_package
    broken = tmp_path / "pkg"
    shutil.copytree(pkg, broken)
    model = broken / "model.onnx"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    r = _cato("serve", broken, "--replay", bad_corpus / "small.pcap", "--out", tmp_path / "out", cache=cache)
    assert r.returncode != 0 and "model.onnx" in r.stderr and "not a loadable ONNX model" in r.stderr, r.stderr
    assert not (tmp_path / "out" / "conn.log").exists()  # refused before Zeek was started


def test_tune_refuses_a_corpus_of_one_class(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    for name in ("small", "long"):
        shutil.copy(TRACES / f"{name}.pcap", corpus / f"{name}.pcap")
    (corpus / "labels.csv").write_text("pcap,label\nsmall.pcap,x\nlong.pcap,x\n")
    r = _cato("tune", corpus, "--study", tmp_path / "s", "--budget", 2, "--max-depth", 2, "-j", 1, cache=tmp_path)
    assert r.returncode != 0 and "one label (x)" in r.stderr and "nothing to tell apart" in r.stderr, r.stderr


def test_tune_refuses_a_misspelt_sampler_parameter_before_any_work(tmp_path):
    r = _cato("tune", tmp_path, "--study", tmp_path / "s", "--sampler-param", "depth_swep=false", cache=tmp_path)
    assert r.returncode != 0 and "no parameter depth_swep" in r.stderr and "depth_sweep" in r.stderr, r.stderr
    r = _cato("tune", tmp_path, "--study", tmp_path / "s", "--sampler-param", "depth_sweep", cache=tmp_path)
    assert r.returncode != 0 and "NAME=VALUE" in r.stderr, r.stderr
    assert not (tmp_path / "s").exists()
