"""`cato tune` and `cato report` end to end: real Zeek, real captures, a real SQLite study, kill -9."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cato.corpus import load_corpus
from cato.dataset import Dataset, load_dataset
from cato.model import ModelSpec, cross_val_f1, fit, grouped_folds, macro_f1, to_onnx

from conftest import DEVICES

pytestmark = [pytest.mark.zeek, pytest.mark.corpora, pytest.mark.slow]

def _env(cache: Path) -> dict:
    # (Without COLUMNS: cato's output off a terminal is what is under test, not the caller's terminal.)
    return {**{k: v for k, v in os.environ.items() if k != "COLUMNS"}, "CATO_CACHE": str(cache)}


def _cato(*args, cache: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cato", *map(str, args)], env=_env(cache), capture_output=True,
                          text=True, **kw)


def test_dataset_rows_match_every_depth(zeek, mini_corpus, cache):
    ds = load_dataset(load_corpus(mini_corpus), 5, cache)
    assert sorted(ds.classes) == sorted(DEVICES)
    assert ds.connections > 50
    # Depth-1 packet counts never exceed 1 per direction; depth 5 sees more packets on some connection.
    d1 = ds.matrix(["orig_pkts", "resp_pkts"], 1)
    d5 = ds.matrix(["orig_pkts", "resp_pkts"], 5)
    assert d1.sum(axis=1).max() <= 1 and (d5.sum(axis=1) > 1).any()
    # A cache hit gives the same dataset.
    again = load_dataset(load_corpus(mini_corpus), 5, cache)
    assert again.key == ds.key and np.array_equal(again.matrix(ds.features, 3), ds.matrix(ds.features, 3))
    # A damaged cache entry (a file cut short, or its metadata) is extracted again, with a warning naming it.
    entry = cache / "datasets" / ds.key[:32]
    for damaged in ("x003.npy", "meta.json"):
        (entry / damaged).write_bytes((entry / damaged).read_bytes()[:100])
        with pytest.warns(UserWarning, match=entry.name):
            fresh = load_dataset(load_corpus(mini_corpus), 5, cache)
        assert np.array_equal(fresh.matrix(ds.features, 3), ds.matrix(ds.features, 3))


def test_two_processes_fill_one_cache_at_once(zeek, mini_corpus, tmp_path):
    # Two studies on one corpus started together once raced on the dataset file and one died.
    code = ("import sys; from pathlib import Path; from cato.corpus import load_corpus; "
            "from cato.dataset import load_dataset; from cato.zeek.profiling import corpus_streams; "
            "c = load_corpus(sys.argv[1]); cache = Path(sys.argv[2]); "
            "paths, packets = corpus_streams(c, cache, c.content_hash()); "
            "ds = load_dataset(c, 3, cache); print(ds.key, ds.connections, packets, len(paths))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(mini_corpus), str(tmp_path / "cache")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    assert outs[0][0] == outs[1][0] and outs[0][0].strip()
    assert not list((tmp_path / "cache").rglob("*.tmp")), "a private file was left behind"


def test_grouped_folds_never_split_a_group(zeek, mini_corpus, cache):
    ds = load_dataset(load_corpus(mini_corpus), 5, cache)
    for train, test in grouped_folds(ds.y, ds.groups, 3, seed=0):
        assert not set(ds.groups[train]) & set(ds.groups[test])


@pytest.mark.parametrize("family", ["dt", "rf", "gbt"])
def test_models_score_and_export_to_onnx(zeek, mini_corpus, cache, family):
    import onnxruntime as ort
    ds: Dataset = load_dataset(load_corpus(mini_corpus), 5, cache)
    feats = ["orig_size_mean", "resp_size_mean", "orig_port", "resp_port", "ip_proto"]
    x = ds.matrix(feats, 5)
    spec = ModelSpec(family, 20, 6)
    score = cross_val_f1(x, ds.y, grouped_folds(ds.y, ds.groups, 3, 0), spec)
    # Ports and sizes tell these devices apart: well above always answering the largest class.
    majority = np.full_like(ds.y, np.bincount(ds.y).argmax())
    assert score["f1"] > macro_f1(ds.y, majority) + 0.2 and len(score["f1_folds"]) == 3
    model = fit(x, ds.y, spec)
    sess = ort.InferenceSession(to_onnx(model, feats, ds.classes))
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta["cato_features"] == ",".join(feats)
    labels = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert (labels == model.predict(x)).mean() > 0.99


def test_f1_is_the_mean_over_model_seeds(zeek, mini_corpus, cache):
    ds: Dataset = load_dataset(load_corpus(mini_corpus), 5, cache)
    x = ds.matrix(["orig_size_mean", "resp_size_mean", "orig_port", "resp_port", "ip_proto"], 5)
    folds = grouped_folds(ds.y, ds.groups, 3, 0)
    forest = ModelSpec("rf", 5, 3)
    singles = [cross_val_f1(x, ds.y, folds, forest, s)["f1"] for s in (4, 5, 6)]
    averaged = cross_val_f1(x, ds.y, folds, forest, 4, model_seeds=3)
    assert averaged["f1_seeds"] == pytest.approx(singles)
    assert averaged["f1"] == pytest.approx(np.mean(singles))
    # LightGBM without bagging ignores its seed: one fit stands for all.
    boosted = ModelSpec("gbt", 10, 3)
    assert (fit(x, ds.y, boosted, 0).predict(x) == fit(x, ds.y, boosted, 1).predict(x)).all()
    assert len(cross_val_f1(x, ds.y, folds, boosted, 0, model_seeds=3)["f1_seeds"]) == 1


def _complete(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        try:
            return con.execute("SELECT number, kind, config, objective_values FROM trials "
                               "WHERE state = 'complete' ORDER BY number").fetchall()
        except sqlite3.OperationalError as e:  # polled between the file's creation and its schema
            if "no such table" in str(e):
                return []
            raise


def test_tune_survives_kill_9_and_resumes(zeek, mini_corpus, cache, tmp_path):
    study = tmp_path / "study"
    args = ["tune", mini_corpus, "--study", study, "--budget", 6, "--max-depth", 5, "--folds", 3,
            "--models", "dt,rf", "--initial", 3, "--seed", 1, "--model-seeds", 2, "--profile-repeat", 2,
            "--deployment", "bare",  # what is tested is the resume (tests/test_deployment.py: default)
            "--sampler-param", "depth_sweep=false"]  # kept by the study: the resumed search proposes as it began
    proc = subprocess.Popen([sys.executable, "-m", "cato", *map(str, args)], env=_env(cache),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    db = study / "study.db"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if db.exists() and sum(k == "search" for _, k, _, _ in _complete(db)) >= 4:
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"the study ended before it could be killed: {proc.stderr.read().decode()}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _complete(db)
    assert sum(k == "search" for _, k, _, _ in before) >= 4

    again = _cato(*args, cache=cache)
    assert again.returncode != 0 and "--resume" in again.stderr  # never overwrites a study

    resumed = _cato(*args, "--resume", cache=cache, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    after = _complete(db)
    assert after[:len(before)] == before, "a finished trial was lost or changed"
    search = [json.loads(c) for _, k, c, _ in after if k == "search"]
    assert len(search) == 6
    assert len({json.dumps(c, sort_keys=True) for c in search}) == 6, "a finished trial was repeated"

    rep = _cato("report", study, "--json", cache=cache)
    assert rep.returncode == 0, rep.stderr
    data = json.loads(rep.stdout)
    assert data["objectives"] == ["f1", "cpu"] and data["model_seeds"] == 2 and data["profile_repeat"] == 2
    # Each cost is the median of two Zeek runs.
    from cato.study import load_study
    assert {len(t.details["cpu_s_runs"]) for t in load_study(study).trials()} == {2}
    from cato.study import Study
    assert Study.open(study).settings.sampler_params == {"depth_sweep": False}
    # Off a terminal (a pipe here) the tables are whole, not cut at 80 columns, and a point of many
    # features has them listed.
    text = _cato("report", study, cache=cache)
    assert text.returncode == 0 and "…" not in text.stdout, text.stdout
    for p in data["pareto"]:
        if len(p["features"]) > 6:
            assert f"trial {p['trial']} features ({len(p['features'])}): {', '.join(p['features'])}" in text.stdout
    assert data["pareto"] and {"trial", "features", "depth", "model", "f1", "cpu"} <= set(data["pareto"][0])
    assert {b["name"] for b in data["baselines"]} == {"all@5", "mi10@5", "rfe10@5"}
    assert (study / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Pareto front" in (study / "report.html").read_text()
    # The front is non-dominated: no trial has both higher F1 and lower cost than a front point.
    trials = [json.loads(v) for _, k, _, v in after if k == "search"]
    for p in data["pareto"]:
        assert not any(t["f1"] > p["f1"] and t["cpu"] < p["cpu"] for t in trials)
    # Bayesian optimization ran after the initial design and recorded its overhead.
    overhead = data["timing_s"]["bo_overhead_median"]
    assert isinstance(overhead, float) and 0 < overhead < 600, overhead


def test_tune_names_a_missing_corpus(tmp_path, cache):
    r = _cato("tune", tmp_path / "nowhere", "--study", tmp_path / "s", "--budget", 1, cache=cache)
    assert r.returncode != 0 and "nowhere" in r.stderr


def test_report_names_a_missing_study(tmp_path, cache):
    r = _cato("report", tmp_path / "nothing", cache=cache)
    assert r.returncode != 0 and "nothing" in r.stderr


def test_evaluator_measures_all_three_objectives(zeek, mini_corpus, cache):
    from cato.search.evaluator import Evaluator
    from cato.search.space import SearchSpace
    corpus = load_corpus(mini_corpus)
    ds = load_dataset(corpus, 5, cache)
    ev = Evaluator(corpus, ds, ("f1", "cpu", "latency"), folds=3, cache_dir=cache)
    space = SearchSpace(tuple(ds.features), 5)
    feats = ["orig_size_mean", "resp_size_mean", "resp_port"]
    shallow, d1 = ev.evaluate(space.config(feats, 1, ModelSpec("rf", 10, 6)))
    deep, d5 = ev.evaluate(space.config(feats, 5, ModelSpec("rf", 10, 6)))
    assert set(shallow) == {"f1", "cpu", "latency"}
    assert d1["inference_ms"]["p50"] > 0 and d1["connections"] == d5["connections"] > 0
    # Waiting for the 5th packet takes longer than deciding on the first: network time dominates.
    assert d1["time_to_decision_ms"]["mean"] == 0.0 < d5["time_to_decision_ms"]["mean"]
    assert deep["latency"] > shallow["latency"]
    # A second evaluation comes from the caches (quality by configuration, cost by script hash).
    _, again = ev.evaluate(space.config(feats, 5, ModelSpec("rf", 10, 6)))
    assert again["quality_cached"] and again["profile_cached"]
    # With -O ZAM the cost is measured again, not taken from the interpreter's cache.
    zam = Evaluator(corpus, ds, ("f1", "cpu", "latency"), folds=3, cache_dir=cache, zam=True)
    _, compiled = zam.evaluate(space.config(feats, 5, ModelSpec("rf", 10, 6)))
    assert compiled["zam"] and not d5["zam"] and not compiled["profile_cached"]
    assert compiled["connections"] == d5["connections"]


def test_tune_searches_the_deadline_when_time_to_decision_is_an_objective(zeek, mini_corpus, cache, tmp_path):
    study = tmp_path / "study"
    r = _cato("tune", mini_corpus, "--study", study, "--budget", 5, "--max-depth", 5, "--folds", 3,
              "--models", "rf", "--initial", 4, "--seed", 2, "--model-seeds", 1, "--cost", "latency",
              "--deployment", "bare", cache=cache, timeout=900)  # bare: the deadline is tested, not the deployment
    assert r.returncode == 0, r.stderr
    rep = _cato("report", study, "--json", cache=cache)
    assert rep.returncode == 0, rep.stderr
    data = json.loads(rep.stdout)
    points = data["pareto"] + data["baselines"]
    assert all(b["deadline_s"] is None for b in data["baselines"])
    with sqlite3.connect(study / "study.db") as con:
        rows = [(json.loads(c), json.loads(d)) for c, d in con.execute(
            "SELECT config, details FROM trials WHERE kind = 'search' AND state = 'complete'")]
    timed = [(c, d) for c, d in rows if c.get("deadline") is not None]
    assert timed, "no search trial had a deadline"
    for config, details in timed:
        # No connection waits for its vector beyond the deadline.
        assert details["time_to_decision_ms"]["max"] <= config["deadline"] * 1000 + 1e-6
    for p in points:
        assert set(p["time_to_decision_ms"]) == {"mean", "p50", "p95", "max"}
    page = (study / "report.html").read_text()
    assert "<th>deadline</th>" in page and "time-to-decision ms mean / p50 / p95 / max" in page
