"""cato profile on real Zeek: figures present, ordered the way they must be, cached."""

import json
import shutil
import statistics
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cato.cli import app
from cato.codegen import generate
from cato.corpus import load_corpus
from cato.features import resolve
from cato.zeek import profiling
from cato.zeek.profiling import machine_identity, machine_key, profile, profiled_handler_cpu

pytestmark = pytest.mark.zeek
TRACES = Path(__file__).parent / "btest" / "Traces"
KEYS = {"connections", "packets", "cpu_s", "baseline_cpu_s", "cpu_ratio", "script_cpu_us_per_conn",
        "marginal_cpu_us_per_conn", "peak_rss_mb", "time_to_decision_ms", "steady_cpu_us_per_conn",
        "startup_cpu_s", "streams"}


def _copies(tmp_path: Path, trace: str, n: int):
    """A corpus of ``n`` copies of one of the btests' traces, one label."""
    root = tmp_path / "c"
    root.mkdir()
    for i in range(n):
        shutil.copy(TRACES / trace, root / f"t{i}.pcap")
    (root / "labels.csv").write_text("pcap,label\n" + "".join(f"t{i}.pcap,a\n" for i in range(n)))
    return load_corpus(root)


def test_profile_cheap_and_expensive(zeek, tmp_path, monkeypatch):
    monkeypatch.setenv("CATO_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "c"
    root.mkdir()
    for i in range(20):  # enough packets for CPU differences to show
        shutil.copy(TRACES / "long.pcap", root / f"l{i}.pcap")
        shutil.copy(TRACES / "small.pcap", root / f"s{i}.pcap")
    (root / "labels.csv").write_text("pcap,label\n" + "".join(f"l{i}.pcap,a\ns{i}.pcap,b\n" for i in range(20)))
    runner = CliRunner()

    def profile(*args):
        out = runner.invoke(app, ["profile", str(root), "--repeat", "1", "--json", *args])
        assert out.exit_code == 0, out.output
        return json.loads(out.stdout)

    cheap = profile("--features", "orig_pkts", "--depth", "1")
    full = profile("--features", "all,-needs:analyzer", "--depth", "50")
    assert KEYS <= set(cheap) and {"p50", "p95"} <= set(cheap["time_to_decision_ms"])
    assert cheap["connections"] == full["connections"] == 20 * 6
    assert cheap["packets"] == 20 * (82 + 21)
    assert cheap["script_cpu_us_per_conn"] < full["script_cpu_us_per_conn"]
    assert cheap["time_to_decision_ms"]["p95"] <= full["time_to_decision_ms"]["p95"]
    assert full["time_to_decision_ms"]["p95"] > 0
    # Each round ran its own baseline: the ratio is the median of the per-round ratios.
    for result in (cheap, full):
        assert result["paired"] and len(result["cpu_ratio_runs"]) == len(result["baseline_cpu_s_runs"]) == 1
        assert result["cpu_ratio"] == pytest.approx(result["cpu_s_runs"][0] / result["baseline_cpu_s_runs"][0])
    # Steady state leaves out one start-up per Zeek run: less than the whole, and still ordered. (On this
    # tiny corpus a start-up is most of a run, so it is not compared with one.)
    assert cheap["streams"] >= 1 and cheap["startup_cpu_s"] > 0
    assert cheap["steady_cpu_us_per_conn"] < cheap["cpu_s"] / cheap["connections"] * 1e6
    # The script's marginal CPU is clipped at 0, so steady state never drops below the shared baseline. On
    # this tiny corpus (repeat 1) the marginal CPU is noise, so cheap and full are not ordered by it; the
    # profiler's attribution above carries the ordering, and the benchmarks measure it on real corpora.
    for result in (cheap, full):
        assert result["baseline_steady_cpu_us_per_conn"] <= result["steady_cpu_us_per_conn"]
    again = profile("--features", "all,-needs:analyzer", "--depth", "50")
    assert again["cached"] and again["cpu_s"] == full["cpu_s"]
    # -O ZAM is measured on its own, baseline included, and the profiler still attributes our scripts.
    zam = profile("--features", "all,-needs:analyzer", "--depth", "50", "--zam")
    assert zam["zam"] and not full["zam"] and not zam["cached"]
    assert zam["connections"] == full["connections"] and zam["script_cpu_us_per_conn"] > 0
    assert zam["paired"] and len(zam["cpu_ratio_runs"]) == 1


def test_unpaired_profiles_share_one_cached_baseline(zeek, tmp_path):
    """What a study does: every trial against one baseline, measured once per corpus and cached."""
    root = tmp_path / "c"
    root.mkdir()
    shutil.copy(TRACES / "small.pcap", root / "a.pcap")
    (root / "labels.csv").write_text("pcap,label\na.pcap,x\n")
    corpus, cache = load_corpus(root), tmp_path / "cache"
    runs = [profile(corpus, generate(resolve(f), [d]), repeat=2, attribute=False, cache_dir=cache, paired=False)
            for f, d in (("orig_pkts", 1), ("all,-needs:analyzer", 50))]
    # Shared, unless the second script's runs came out below it (then measured again: the next test).
    if statistics.median(runs[1].cpu_s_runs) >= statistics.median(runs[0].baseline_cpu_s_runs):
        assert runs[0].baseline_cpu_s_runs == runs[1].baseline_cpu_s_runs
        assert runs[0].baseline_steady_cpu_us_per_conn == runs[1].baseline_steady_cpu_us_per_conn
    assert len(runs[1].baseline_cpu_s_runs) == 2
    (cached,) = (cache / "baselines").glob("*.json")
    assert json.loads(cached.read_text())["cpu_s_runs"] == runs[1].baseline_cpu_s_runs
    for r in runs:
        assert not r.paired and r.cpu_ratio_runs == [c / r.baseline_cpu_s for c in r.cpu_s_runs]
    zam = profile(corpus, generate(resolve("orig_pkts"), [1]), repeat=2, attribute=False, cache_dir=cache,
                  paired=False, zam=True)
    assert zam.zam and len(list((cache / "baselines").glob("*-zam.json"))) == 1


def test_a_cached_baseline_above_a_script_is_measured_again(zeek, tmp_path):
    """A baseline cached while the machine was busier (here: its runs made 10x slower in the cache) sits
    above a script's runs, which a script cannot do, since it only adds work: the next profile measures
    the baseline again, replaces the cache, and its marginal CPU is no longer clamped against it."""
    corpus, cache = _copies(tmp_path, "small.pcap", 3), tmp_path / "cache"
    first = profile(corpus, generate(resolve("orig_pkts"), [1]), repeat=1, attribute=False, cache_dir=cache,
                    paired=False)
    (cached,) = (cache / "baselines").glob("*.json")
    data = json.loads(cached.read_text())
    stale = [10 * c for c in data["cpu_s_runs"]]
    cached.write_text(json.dumps({**data, "cpu_s_runs": stale}))
    second = profile(corpus, generate(resolve("orig_pkts,resp_pkts"), [1]), repeat=1, attribute=False,
                     cache_dir=cache, paired=False)
    assert second.baseline_cpu_s_runs != stale and second.baseline_cpu_s < 10 * first.baseline_cpu_s / 2
    assert json.loads(cached.read_text())["cpu_s_runs"] == second.baseline_cpu_s_runs
    assert second.marginal_cpu_us_per_conn > -second.baseline_cpu_s / second.connections * 1e6


def test_each_node_normalises_by_its_own_baseline(zeek, tmp_path, monkeypatch):
    """Under Ray a trial runs on any node: its unpaired baseline is measured and cached per node, and each
    trial, evaluated as a Ray task evaluates it (``evaluate_trial``), is normalised by its own node's."""
    import pandas as pd

    from cato.dataset import Dataset
    from cato.executors import evaluate_trial
    from cato.model import ModelSpec
    from cato.search.evaluator import Evaluator
    from cato.search.space import Config

    here = machine_identity(zeek)
    assert here["host"] and here["cpu"] and here["cpus"] > 0 and here["zeek"][0] == str(Path(zeek).resolve())
    assert machine_key(here) == machine_key(machine_identity(zeek))
    root = tmp_path / "c"
    root.mkdir()
    shutil.copy(TRACES / "small.pcap", root / "a.pcap")
    (root / "labels.csv").write_text("pcap,label\na.pcap,x\n")
    corpus, cache = load_corpus(root), tmp_path / "cache"
    nodes = {name: {**here, "host": name} for name in ("node-a", "node-b")}

    def on(name):  # the identity the node measuring reports: another host, the same Zeek
        monkeypatch.setattr(profiling, "machine_identity", lambda zeek=None: nodes[name])

    first = {}
    for name, feats in (("node-a", "orig_pkts"), ("node-b", "orig_pkts,orig_size_sum")):
        on(name)
        first[name] = profile(corpus, generate(resolve(feats), [2]), repeat=1, attribute=False, cache_dir=cache,
                              paired=False)
        assert first[name].machine == machine_key(nodes[name]) and not first[name].cached
    files = {json.loads(f.read_text())["machine"]["host"]: f for f in (cache / "baselines").glob("*.json")}
    assert sorted(files) == ["node-a", "node-b"] and len(list((cache / "baselines").glob("*.json"))) == 2
    for name, result in first.items():
        assert result.baseline_cpu_s_runs == json.loads(files[name].read_text())["cpu_s_runs"]
    # Node b is faster: its baseline takes a third of node a's CPU (a slower one's would sit above this
    # machine's script runs, and be measured again as stale).
    fast = json.loads(files["node-b"].read_text())
    fast["cpu_s_runs"] = [c / 3 for c in first["node-a"].baseline_cpu_s_runs]
    files["node-b"].write_text(json.dumps(fast))

    rows = [{"capture": f"c{i % 6}.pcap", "uid": f"C{i}", "ts": float(i), "proto": "udp", "orig_h": "10.0.0.1",
             "orig_p": 1000 + i, "resp_h": "10.0.0.2", "resp_p": 53, "depth": d, "label": "ab"[i % 2],
             "group": f"c{i % 6}.pcap", "orig_pkts": d, "resp_pkts": d, "orig_size_sum": 60.0 * d + 10 * (i % 2)}
            for i in range(24) for d in (1, 2)]
    evaluator = Evaluator(corpus, Dataset.from_table(pd.DataFrame(rows), 2), ("f1", "cpu"), folds=3,
                          cache_dir=cache, zeek=zeek, model_seeds=1)
    for name, feats in (("node-b", ("orig_pkts", "resp_pkts")), ("node-a", ("resp_pkts", "orig_size_sum"))):
        on(name)
        outcome = evaluate_trial(evaluator, Config(feats, 2, ModelSpec("dt", 1, 4)))
        assert outcome.error is None, outcome.traceback
        details, base = outcome.details, json.loads(files[name].read_text())["cpu_s_runs"][0]
        assert not details["profile_cached"] and details["baseline_cpu_s"] == base
        assert details["cpu_ratio"] == pytest.approx(details["cpu_s"] / base)
    assert len(list((cache / "baselines").glob("*.json"))) == 2


def test_profiled_handler_cpu_counts_only_the_scripts_own_work(zeek, tmp_path):
    """Zeek's script profiler alone: per-packet features cost more than one read from the connection
    record, and a script that handles no packets is charged little, unlike the whole process."""
    corpus, cache = _copies(tmp_path, "long.pcap", 5), tmp_path / "cache"
    counter, sizes = (
        profiled_handler_cpu(corpus, generate(resolve(f), [50]), tmp_path / f, cache_dir=cache)
        for f in ("orig_pkts", "orig_size_mean,resp_size_mean,orig_iat_mean,resp_iat_mean"))
    assert counter.connections == sizes.connections == 5 * 1
    assert 0 < counter.cpu_s < sizes.cpu_s
    # The calls are exact: a per-packet script handles the packets up to its depth, one event each;
    # a script that reads the connection record is called once per connection.
    assert sum(counter.event_calls.values()) < sum(sizes.event_calls.values())
    again = profiled_handler_cpu(corpus, generate(resolve("orig_pkts"), [50]), tmp_path / "again", cache_dir=cache)
    assert again.event_calls == counter.event_calls
    whole = profile(corpus, generate(resolve("orig_pkts"), [50]), repeat=1, attribute=False, cache_dir=cache,
                    paired=False)
    assert counter.cpu_s < whole.cpu_s


def linear_model(path: Path, features: list[str]) -> Path:
    """A small real ONNX classifier (scores = xW + b, label = argmax) with cato's feature metadata."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = len(features)
    w = numpy_helper.from_array(np.arange(n * 3, dtype=np.float32).reshape(n, 3) / 10, "W")
    b = numpy_helper.from_array(np.array([0.5, -0.5, 0.0], dtype=np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["scores"]),
         helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0)],
        "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, n])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [None])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    helper.set_model_props(model, {"cato_features": ",".join(features)})
    onnx.save(model, path)
    return path


def test_profile_times_onnx_inference(zeek, tmp_path, monkeypatch):
    monkeypatch.setenv("CATO_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "c"
    root.mkdir()
    shutil.copy(TRACES / "small.pcap", root / "a.pcap")
    (root / "labels.csv").write_text("pcap,label\na.pcap,x\n")
    model = linear_model(tmp_path / "m.onnx", ["orig_pkts", "resp_pkts"])
    runner = CliRunner()
    out = runner.invoke(app, ["profile", str(root), "-f", "orig_pkts,resp_pkts", "-n", "5", "--repeat", "1",
                              "--json", "--model", str(model)])
    assert out.exit_code == 0, out.output
    inference = json.loads(out.stdout)["inference_ms"]
    assert 0 < inference["p50"] <= inference["p95"] and inference["samples"] == 1000
    # A model trained on other features is refused, naming the file.
    out = runner.invoke(app, ["profile", str(root), "-f", "orig_pkts,tcp_rtt", "-n", "5", "--repeat", "1",
                              "--model", str(model)])
    assert out.exit_code == 2 and "m.onnx" in out.output and "trained on features" in out.output
    out = runner.invoke(app, ["profile", str(root), "-f", "orig_pkts", "--model", str(tmp_path / "none.onnx")])
    assert out.exit_code == 2 and "not found" in out.output
