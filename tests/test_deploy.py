"""cato compile on a real study point: the package's files, its ONNX model, and its verdict side in Zeek."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import CORPORA, in_package

from cato.codegen import generate
from cato.corpus import load_corpus
from cato.dataset import extract, load_dataset
from cato.deploy.compile import (
    VOCABULARIES_NAME,
    CompileError,
    compile_config,
    compile_package,
    package_vocabularies,
    pick_trial,
)
from cato.deploy.manifest import Manifest, ManifestError, schema_hash
from cato.deploy.replay import replay
from cato.deploy.serve import ServeError, Worker
from cato.deploy.zeek_side import zeek_string
from cato.features import resolve
from cato.model import ModelSpec, OnnxModel, fit
from cato.search.space import Config
from cato.study import Study, StudySettings
from cato.zeek import read_zeek_log, run_zeek, static_load_script

pytestmark = [pytest.mark.zeek, pytest.mark.corpora]

# Not in catalog order: the package must order them as its script's vectors carry them.
FEATURES = ("orig_port", "resp_port", "ip_proto", "orig_size_mean", "resp_size_mean", "orig_iat_mean")
#: What a site prints of a package at exit (in its module: see conftest.in_package).
PRINT_PUBLISHED = "event zeek_done() { print Cato::schema, Cato::vectors_published; }"
IN_CATALOG_ORDER = ["ip_proto", "orig_port", "resp_port", "orig_size_mean", "resp_size_mean", "orig_iat_mean"]


@pytest.fixture(scope="module")
def study(mini_corpus, cache, tmp_path_factory) -> Study:
    """A study of the mini corpus holding two measured points (compile does not care how they were measured),
    for a deployment that runs Zeek's default scripts."""
    study = Study.open(tmp_path_factory.mktemp("study") / "s", StudySettings(str(mini_corpus), max_depth=5,
                                                                           deployment="default"))
    for config, values in ((Config(FEATURES, 5, ModelSpec("rf", 20, 8)), {"f1": 0.91, "cpu": 80.0}),
                           (Config(FEATURES[:3], 5, ModelSpec("dt", 1, 6)), {"f1": 0.905, "cpu": 30.0})):
        number = study.storage.start_trial("search", config.to_dict())
        study.storage.finish_trial(number, values, {})
    return study


@pytest.fixture(scope="module")
def package(study, cache, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CATO_CACHE", str(cache))
        chosen = pick_trial(study, pick="most-accurate")
        return compile_package(study, chosen, tmp_path_factory.mktemp("out") / "iot-model", alert_labels=["Aria"])


def test_a_model_is_named_for_its_study_and_point_not_its_folder(package, study):
    # (-o build/pkg used to name every model "pkg", in every verdict, Notice and zkg.)
    trial = pick_trial(study, pick="most-accurate").number
    name = f"{study.directory.name}-trial{trial}"
    model = (package.path / "scripts" / "model.zeek").read_text()
    assert f'redef {package.manifest.module}::model_name = "{name}";' in model
    assert name in (package.path / "zkg.meta").read_text()


def test_picks_name_a_measured_trial(study):
    assert pick_trial(study, pick="most-accurate").values["f1"] == 0.91
    assert pick_trial(study, pick="cheapest-within", within=0.01).values["cpu"] == 30.0
    assert pick_trial(study, pick="cheapest-within", within=0.001).values["cpu"] == 80.0
    with pytest.raises(CompileError, match="no completed trial 99"):
        pick_trial(study, trial=99)


def test_the_package_is_a_git_repo_with_its_parts(package):
    path, manifest = package.path, package.manifest
    for part in ("zkg.meta", "manifest.json", "model.onnx", "scripts/__load__.zeek", "scripts/features.zeek",
                 "scripts/verdicts.zeek"):
        assert (path / part).is_file(), part
    log = subprocess.run(["git", "-C", str(path), "log", "--oneline"], capture_output=True, text=True, check=True)
    assert len(log.stdout.splitlines()) == 1
    assert not subprocess.run(["git", "-C", str(path), "status", "--porcelain"], capture_output=True,
                              text=True).stdout
    assert Manifest.read(path) == manifest
    assert manifest.features == IN_CATALOG_ORDER and manifest.depth == 5 and manifest.alert_labels == ["Aria"]
    assert manifest.extra["deployment"] == "default", "the package says what it was trained under"
    assert "script_dir = scripts" in (path / "zkg.meta").read_text()


def test_onnx_predicts_what_the_fitted_model_predicts(package, mini_corpus, cache):
    ds = load_dataset(load_corpus(mini_corpus), 5, cache, deployment="default")  # what the package trained on
    x = ds.matrix(IN_CATALOG_ORDER, 5)
    model = fit(x, ds.y, package.trial.config.model, 0)
    onnx_model = OnnxModel.load(package.path / "model.onnx")
    assert onnx_model.features == IN_CATALOG_ORDER and onnx_model.classes == package.manifest.labels == ds.classes
    np.testing.assert_array_equal(onnx_model.predict(x), model.predict(x))


def test_verdicts_come_back_as_a_log_and_notices(package, mini_corpus, zeek, tmp_path):
    """Zeek with cato and the package loaded: every vector is published; verdicts raised for them (here
    by Zeek itself, as the worker would send them) are logged, alert labels raise a Notice, and a
    verdict with another schema hash is refused and counted."""
    driver = tmp_path / "driver.zeek"
    driver.write_text(in_package("""
global vectors = 0;

event Cato::vector_ready(info: Cato::Info)
	{
	local label = ++vectors % 2 == 0 ? "Aria" : "HueSwitch";
	event Cato::verdict(info$uid, info$id, label, 0.75, Cato::schema);
	event Cato::verdict(info$uid, info$id, label, 0.75, "not-this-schema");
	}

# After the package's own handler: the count so far (zeek_done comes before the last connections' events).
event Cato::verdict(uid: string, id: conn_id, label: string, score: double, model_schema: string) &priority=-10
	{
	print "refused", Cato::refused_verdicts;
	}
""", package.path))
    corpus = load_corpus(mini_corpus)
    capture = corpus.path_of(corpus.captures[0])
    run = run_zeek(capture, [static_load_script(), package.path / "scripts", driver], workdir=tmp_path / "run",
                   zeek=zeek)
    verdicts = read_zeek_log(run.log("cato_verdict"))
    assert not (tmp_path / "run" / "cato.log").exists(), "a package publishes vectors, it does not log them"
    refused = int((tmp_path / "run" / "zeek.stdout").read_text().split()[-1])
    assert refused == len(verdicts) > 0
    # Each verdict was awaited (its latency measured, below Cato::verdict_wait) and none joined mid-stream
    # (a trace read whole).
    latency = verdicts["latency"].astype(float)
    assert set(verdicts["label"]) == {"Aria", "HueSwitch"} and latency.between(0, 60).all(), latency
    assert (verdicts["midstream"].astype(str).isin(["F", "False"])).all()
    notices = read_zeek_log(run.log("notice"))
    assert list(notices["note"].unique()) == ["Cato::Alert"]
    _assert_one_notice_per_host_and_label(verdicts, notices, ["Aria"])


def _assert_one_notice_per_host_and_label(verdicts, notices, alert_labels, min_score: float = 0.5) -> None:
    """An alert verdict at Cato::alert_min_score or above raises a Notice, one per originator and label
    (Zeek's suppression), for a connection whose verdict it is."""
    alerts = verdicts[verdicts["label"].isin(alert_labels) & (verdicts["score"].astype(float) >= min_score)]
    pairs = set(zip(alerts["id.orig_h"].astype(str), alerts["label"]))
    assert set(zip(notices["id.orig_h"].astype(str), notices["sub"])) == pairs
    assert set(notices["uid"]) <= set(alerts["uid"])
    # Again for the same host and label only after Cato::alert_suppress_for (1 h) of network time.
    for _, times in notices.groupby([notices["id.orig_h"].astype(str), "sub"])["ts"]:
        assert (times.sort_values().diff().dropna() >= 3600).all(), times


def test_compile_refuses_an_unknown_alert_label_and_an_existing_directory(study, package, cache, monkeypatch):
    monkeypatch.setenv("CATO_CACHE", str(cache))
    chosen = pick_trial(study, pick="most-accurate")
    with pytest.raises(CompileError, match="Nope"):
        compile_package(study, chosen, package.path.with_name("other"), alert_labels=["Nope"])
    with pytest.raises(CompileError, match="already exists"):
        compile_package(study, chosen, package.path)


def test_a_manifest_edited_by_hand_is_refused(package, tmp_path):
    data = json.loads((package.path / "manifest.json").read_text())
    data["depth"] = 7
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="schema hash"):
        Manifest.read(tmp_path)
    data["format"] = 99
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="newer"):
        Manifest.read(tmp_path)


def test_user_strings_cannot_inject_zeek_code():
    hostile = 'x"; print "pwned"; #\\\n\u00e9'
    literal = zeek_string(hostile)
    assert literal.count('"') - literal.count('\\"') == 2 and "\n" not in literal


def _offline_predictions(package, capture, tmp_path, deployment: str = "bare") -> pd.DataFrame:
    """What the package's model predicts on the features `cato extract --deployment` gives for ``capture``."""
    corpus_dir = tmp_path / "one"
    corpus_dir.mkdir(exist_ok=True)
    if not (corpus_dir / capture.name).exists():
        (corpus_dir / capture.name).symlink_to(capture.resolve())
    (corpus_dir / "labels.csv").write_text(f"pcap,label\n{capture.name},any\n")
    manifest = package.manifest
    table = extract(load_corpus(corpus_dir), resolve(",".join(manifest.features)), [manifest.depth], jobs=1,
                    deployment=deployment).table
    model = OnnxModel.load(package.path / "model.onnx")
    table["predicted"] = [manifest.labels[i] for i in model.predict(model.matrix(table, manifest.features))]
    return table


@pytest.mark.parametrize("corpus_name", ["iot-sentinel", "ndpi"])
def test_replay_answers_every_connection_as_the_model_does_offline(package, corpus_name, tmp_path):
    """cato serve --replay: real Zeek, the real worker over Zeek's WebSocket API, a real capture of each
    dev corpus. Every TCP/UDP connection of conn.log gets a verdict, alerts reach notice.log, and each
    verdict is the label the same model gives offline to the connection's features from cato extract."""
    root = CORPORA / corpus_name
    captures = sorted((root / "pcaps").rglob("*.pcap"), key=lambda p: p.stat().st_size)
    capture = captures[len(captures) * 3 // 4]  # a capture of some size, the same one every run
    # As deployed (Zeek's default scripts): every connection answered.
    deployed = replay(package.path, capture, tmp_path / "deployed", timeout=300)
    assert deployed.zeek_returncode == 0 and deployed.connections > 0
    assert deployed.coverage >= 0.99, (deployed.answered, deployed.connections)
    # As extracted (zeek -b): the protocol analyzers of the default scripts can flip a connection's roles,
    # and with them its per-direction features; bare, Zeek sees the connections cato extract sees.
    result = replay(package.path, capture, tmp_path / "out", timeout=300, default_scripts=False)
    assert result.zeek_returncode == 0 and result.coverage >= 0.99, (result.answered, result.connections)
    # Quiet as it should be: no probe of cato's own made Zeek's WebSocket server log a bad request.
    for run in ("deployed", "out"):
        assert "HTTP status" not in (tmp_path / run / "zeek.stderr").read_text()
    assert result.stats.dropped == 0 and result.stats.scored == result.stats.received == result.verdicts

    # Each replay against the extraction of its own deployment: the verdicts are the model's offline
    # predictions on the vectors cato extract --deployment gives, connection for connection.
    for run, deployment in (("out", "bare"), ("deployed", "default")):
        verdicts = read_zeek_log(tmp_path / run / "cato_verdict.log")
        conns = read_zeek_log(tmp_path / run / "conn.log")[["uid", "ts"]]
        online = verdicts.drop(columns=["ts"]).merge(conns, on="uid")  # the connection's start, not the arrival
        key = ["ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"]
        offline = _offline_predictions(package, capture, tmp_path, deployment).rename(
            columns={"orig_h": "id.orig_h", "orig_p": "id.orig_p", "resp_h": "id.resp_h", "resp_p": "id.resp_p"})
        for col in ("id.orig_h", "id.resp_h"):
            online[col], offline[col] = online[col].astype(str), offline[col].astype(str)
        # cato extract maps times back from its merged streams: equal to well under a microsecond.
        joined = online.merge(offline[key + ["predicted"]], on=key[1:], how="inner")
        joined = joined[(joined["ts_x"] - joined["ts_y"]).abs() < 1e-5]
        assert len(joined) >= 0.99 * len(online) and joined["uid"].is_unique, (deployment, len(joined), len(online))
        agree = (joined["label"] == joined["predicted"]).mean()
        assert agree >= 0.99, (deployment, joined.loc[joined["label"] != joined["predicted"],
                                                      key[1:] + ["label", "predicted"]].head())
    verdicts = read_zeek_log(tmp_path / "deployed" / "cato_verdict.log")
    if (tmp_path / "deployed" / "notice.log").exists():
        notices = read_zeek_log(tmp_path / "deployed" / "notice.log")
        _assert_one_notice_per_host_and_label(verdicts, notices[notices["note"] == "Cato::Alert"],
                                              package.manifest.alert_labels)


#: Flow statistics and what Zeek's analyzers tell (strings as learned codes and lengths), of the
#: connection's own events and remembered from earlier ones (a host's DHCP, a client's DNS answers).
ANALYZED = ("resp_port", "orig_size_mean", "service_code", "dns_query_code", "dns_query_len", "dns_qtype",
            "http_user_agent_code", "http_host_code", "dhcp_param_list_code", "dhcp_host_name_len",
            "orig_host_dhcp_param_list_code", "orig_host_dhcp_host_name_shape_code", "resp_dns_domain_code")


def test_analyzer_features_are_served_as_trained(study, mini_corpus, cache, monkeypatch, tmp_path):
    """A package of analyzer features: its vocabularies ship in its script, Zeek codes each string with
    them, and every verdict of a replay (Zeek's default scripts, as trained) is the model's offline
    prediction on cato extract's feature table, whose raw strings are coded here in Python."""
    monkeypatch.setenv("CATO_CACHE", str(cache))
    package = compile_config(study, Config(ANALYZED, 5, ModelSpec("rf", 20, 8)), tmp_path / "analyzed")
    vocabularies = json.loads((package.path / VOCABULARIES_NAME).read_text())
    assert set(vocabularies) == {"service_code", "dns_query_code", "http_user_agent_code", "http_host_code",
                                 "dhcp_param_list_code", "orig_host_dhcp_param_list_code",
                                 "orig_host_dhcp_host_name_shape_code", "resp_dns_domain_code"}
    assert "dns" in vocabularies["service_code"] and len(vocabularies["dns_query_code"]) >= 3
    assert package.manifest.extra["vocabularies"]["dns_query_code"] == len(vocabularies["dns_query_code"])
    script = (package.path / "scripts" / "features.zeek").read_text()
    assert "const vocabulary_dns_query_code: table[string] of count = { [" in script
    assert "dns_query: string &log" not in script, "its vectors carry numbers only, never the strings"

    labels = pd.read_csv(mini_corpus / "labels.csv")
    capture = mini_corpus / labels["pcap"].iloc[0]
    result = replay(package.path, capture, tmp_path / "deployed", timeout=300)
    assert result.zeek_returncode == 0 and result.coverage >= 0.99, (result.answered, result.connections)

    # Offline: cato extract's table keeps each string beside its columns; coded by the package's vocabulary.
    one = tmp_path / "one"
    one.mkdir()
    (one / capture.name).symlink_to(capture.resolve())
    (one / "labels.csv").write_text(f"pcap,label\n{capture.name},any\n")
    table = extract(load_corpus(one), resolve(",".join(package.manifest.features)), [5], jobs=1,
                    deployment="default").table
    assert {"service", "dns_query", "http_user_agent", "dhcp_param_list"} <= set(table.columns)
    assert table["dns_query"].notna().any()
    for feature, words in vocabularies.items():
        source = feature.removesuffix("_code")
        codes = {w: i for i, w in enumerate(words, 1)}
        table[feature] = [float("nan") if pd.isna(v) else codes.get(v, 0) for v in table[source]]
    # The package's own codes, from Zeek: the same.
    as_packaged = extract(load_corpus(one), resolve(",".join(package.manifest.features)), [5], jobs=1,
                          deployment="default", vocabularies=package_vocabularies(package.path)).table
    key5 = ["ts", "orig_h", "orig_p", "resp_h", "resp_p"]
    a, b = (t.sort_values(key5).reset_index(drop=True) for t in (table, as_packaged))
    pd.testing.assert_frame_equal(a[list(vocabularies)], b[list(vocabularies)], check_dtype=False)
    assert (b["dns_query_code"] > 0).any() and (b["orig_host_dhcp_param_list_code"] > 0).mean() > 0.5
    model = OnnxModel.load(package.path / "model.onnx")
    table["predicted"] = [package.manifest.labels[i] for i in model.predict(model.matrix(table, package.manifest.features))]
    verdicts = read_zeek_log(tmp_path / "deployed" / "cato_verdict.log")
    conns = read_zeek_log(tmp_path / "deployed" / "conn.log")[["uid", "ts"]]
    online = verdicts.drop(columns=["ts"]).merge(conns, on="uid")
    key = ["id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"]
    offline = table.rename(columns={"orig_h": "id.orig_h", "orig_p": "id.orig_p", "resp_h": "id.resp_h",
                                    "resp_p": "id.resp_p"})
    for col in ("id.orig_h", "id.resp_h"):
        online[col], offline[col] = online[col].astype(str), offline[col].astype(str)
    joined = online.merge(offline[key + ["ts", "predicted"]], on=key, how="inner")
    joined = joined[(joined["ts_x"] - joined["ts_y"]).abs() < 1e-5]
    assert len(joined) >= 0.99 * len(online) and joined["uid"].is_unique, (len(joined), len(online))
    assert (joined["label"] == joined["predicted"]).all(), joined.loc[joined["label"] != joined["predicted"]].head()


def test_a_package_whose_model_and_manifest_disagree_is_refused(package, tmp_path):
    edited = tmp_path / "edited"
    shutil.copytree(package.path, edited)
    data = json.loads((edited / "manifest.json").read_text())
    data["features"] = list(reversed(data["features"]))
    data["schema"] = schema_hash(data["features"], data["depth"], data["cato_version"])
    (edited / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ServeError, match="refused"):
        Worker(edited)
    (edited / "model.onnx").write_bytes(b"\x08\x07 not onnx")
    with pytest.raises(ServeError, match="model.onnx"):
        Worker(edited)


def test_zkg_installs_cato_and_a_compiled_package_and_zeek_runs_them(package, zeek, tmp_path):
    """zkg (a temporary state) installs this repository and a compiled package, running the package's
    btests; Zeek then runs with both loaded, whichever comes first."""
    root = Path(__file__).resolve().parent.parent
    clone = tmp_path / "cato"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
    config = tmp_path / "zkg.cfg"
    config.write_text(f"[sources]\n[paths]\nstate_dir = {tmp_path}/state\nscript_dir = {tmp_path}/scripts\n"
                      f"plugin_dir = {tmp_path}/plugins\nbin_dir = {tmp_path}/bin\nzeek_dist =\n")
    env = {**os.environ, "PATH": f"{zeek.parent}:{Path(sys.executable).parent}:{os.environ['PATH']}"}
    zkg = [str(Path(sys.executable).parent / "zkg"), "--configfile", str(config)]
    # cato's own btests run in make test; the package's run here, as zkg install runs them.
    for argv in (["install", "--force", "--skiptests", str(clone)], ["install", "--force", str(package.path)]):
        run = subprocess.run(zkg + argv, capture_output=True, text=True, env=env, timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr
    loaded = (tmp_path / "scripts" / "packages" / "packages.zeek").read_text()
    assert "@load ./cato" in loaded and f"@load ./{package.path.name}" in loaded
    work = tmp_path / "run"
    work.mkdir()
    zeekpath = subprocess.run([str(zeek.parent / "zeek-config"), "--zeekpath"], capture_output=True, text=True,
                              check=True).stdout.strip()
    run = subprocess.run([str(zeek), "-r", str(Path(__file__).parent / "btest" / "Traces" / "small.pcap"),
                          "packages", "-e", in_package(PRINT_PUBLISHED, package.path)],
                         cwd=work, capture_output=True, text=True, env={**env, "ZEEKPATH": f"{zeekpath}:{tmp_path}/scripts"})
    assert run.returncode == 0 and "error" not in run.stderr.lower(), run.stderr
    schema, published = run.stdout.split(", ")
    assert schema == package.manifest.schema and int(published) == len(read_zeek_log(work / "conn.log")) > 0


def test_a_default_deployment_keeps_its_logs_with_the_package(package, zeek, tmp_path):
    """zeek local, then zeek local plus the package: every log the deployment wrote is the same."""
    capture = Path(__file__).parent / "btest" / "Traces" / "small.pcap"
    logs = {}
    for name, extra in (("plain", []), ("with", [str(package.path / "scripts")])):
        work = tmp_path / name
        run_zeek(capture, ["local", *extra], workdir=work, bare=False, zeek=zeek)
        logs[name] = {p.name: _canonical(p) for p in work.glob("*.log")}
    # The package adds no log of its own without a worker. Logs about the Zeek process itself change, as they
    # must: loaded_scripts.log lists its scripts, stats.log and telemetry.log count Zeek's events, timers,
    # CPU and log writes.
    assert set(logs["with"]) == set(logs["plain"]) and {"conn.log", "dns.log", "http.log"} <= set(logs["plain"])
    for log in sorted(set(logs["plain"]) - {"loaded_scripts.log", "stats.log", "telemetry.log"}):
        assert logs["with"][log] == logs["plain"][log], log


def _canonical(path: Path) -> list[str]:
    """The log's rows without what changes from run to run: open/close times, Zeek's random connection and file
    IDs, the order of set elements, and the wall-clock time packet_filter.log is stamped with."""
    ids = re.compile(r"\b[CF][0-9A-Za-z]{14,18}\b")
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith(("#open", "#close")):
            continue
        fields = [",".join(sorted(f.split(","))) for f in ids.sub("ID", line).split("\t")]
        rows.append(fields[1:] if path.name == "packet_filter.log" else fields)
    return rows


def _listening_zeek(zeek, package, port: int, workdir: Path, broker: bool = False, site: str = "") -> subprocess.Popen:
    """A Zeek with the package (and ``site``'s redefs) that listens for the worker, sends it one vector
    once it subscribes (or peers, over Broker), and terminates when the verdict comes back."""
    workdir.mkdir()
    driver = workdir / "driver.zeek"
    listen = (f"redef Cato::websocket_listen = F;\nredef Cato::broker_listen = T;\nredef Cato::broker_port = {port}/tcp;"
              if broker else f"redef Cato::websocket_port = {port}/tcp;") + "\n" + site
    joined = ("Broker::peer_added(endpoint: Broker::EndpointInfo, msg: string)" if broker else
              "Cluster::websocket_client_added(endpoint: Cluster::EndpointInfo, subscriptions: string_vec)")
    driver.write_text(in_package(f"""
redef exit_only_after_terminate = T;
{listen}

event {joined}
	{{
	local id = conn_id($orig_h=10.0.0.1, $orig_p=40000/tcp, $resp_h=10.0.0.2, $resp_p=80/tcp, $proto=6);
	local info = Cato::Info($ts=network_time(), $uid="Cworker" + cat(getpid()), $id=id, $proto=tcp, $depth=5,
	                        $pkts_seen=5, $decided_after=10msec, $decided_by=Cato::DEPTH);
	Cluster::publish(Cato::vector_topic, Cato::vector_batch, vector(info));
	}}

event Cato::verdicts(model_schema: string, batch: vector of Cato::VerdictMessage) &priority=-10
	{{
	print "verdict", batch[0]$uid, batch[0]$label;
	terminate();
	}}
""", package.path))
    return subprocess.Popen([str(zeek), "-b", str(package.path / "scripts"), str(driver)], cwd=workdir,
                            stdout=open(workdir / "stdout", "w"), stderr=subprocess.STDOUT)


@contextlib.contextmanager
def _running(worker: Worker):
    """``worker`` running in a thread of its own until the block ends."""
    import asyncio
    import threading
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=lambda: loop.run_until_complete(worker.run()), daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        loop.call_soon_threadsafe(worker.stop.set)
        thread.join(timeout=30)


def test_the_worker_reconnects_when_zeek_restarts(package, zeek, tmp_path):
    from cato.deploy.replay import free_port
    port = free_port()
    with _running(Worker(package.path, f"ws://127.0.0.1:{port}")) as worker:
        for i in range(2):  # the worker waits for the first Zeek, then for the second after the first is gone
            proc = _listening_zeek(zeek, package, port, tmp_path / f"zeek{i}")
            assert proc.wait(timeout=60) == 0
            assert "verdict, Cworker" in (tmp_path / f"zeek{i}" / "stdout").read_text()
    assert worker.stats.connections == 2 and worker.stats.verdicts_sent == 2 == worker.stats.scored


def test_cato_serve_reports_its_counts_on_sigusr1_and_on_exit(package, tmp_path):
    import signal
    import threading
    import time

    from cato.deploy.replay import free_port
    proc = subprocess.Popen([sys.executable, "-m", "cato", "serve", str(package.path), "--url",
                             f"ws://127.0.0.1:{free_port()}"], stderr=subprocess.PIPE, text=True)
    # No Zeek there: the worker keeps trying to connect. Its first "reconnecting" says its loop, and
    # with it the signal handlers, is running (a signal before that, on a busy machine, kills it).
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120

    def wait_for(text: str) -> None:
        while not any(text in line for line in list(lines)) and time.monotonic() < deadline:
            assert proc.poll() is None, "".join(lines)
            time.sleep(0.1)

    wait_for("reconnecting")
    proc.send_signal(signal.SIGUSR1)
    wait_for("received 0, scored 0, dropped 0")
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    reader.join(timeout=30)
    err = "".join(lines)
    assert proc.returncode == 0, err
    assert err.count("received 0, scored 0, dropped 0") == 2 and "reconnecting" in err


def test_the_worker_answers_over_broker(package, zeek, tmp_path):
    """--transport broker: the same worker through Broker's Python bindings (they come with Zeek)."""
    from cato.deploy.replay import free_port
    port = free_port()
    proc = _listening_zeek(zeek, package, port, tmp_path / "zeek", broker=True)
    try:
        with _running(Worker(package.path, f"tcp://127.0.0.1:{port}")) as worker:
            assert proc.wait(timeout=60) == 0
            assert "verdict, Cworker" in (tmp_path / "zeek" / "stdout").read_text()
    finally:
        proc.kill()
    assert worker.stats.connections >= 1 and worker.stats.verdicts_sent == 1 == worker.stats.scored


def test_the_worker_takes_its_topics_from_the_package_or_the_site(package, zeek, tmp_path):
    from cato.deploy.links import Topics
    from cato.deploy.replay import free_port
    recorded = Topics.of(package.manifest)
    assert Worker(package.path, "ws://127.0.0.1:1").topics == recorded
    # Its own topics and module: another package's worker takes none of its vectors.
    assert recorded.module == package.manifest.module != "Cato" and recorded.vectors != Topics().vectors
    model = (package.path / "scripts" / "model.zeek").read_text()
    assert f'redef {recorded.module}::topic = "{recorded.vectors}";' in model
    # A site that moved its topics: the worker told so answers there.
    port = free_port()
    proc = _listening_zeek(zeek, package, port, tmp_path / "zeek",
                           site='redef Cato::topic = "site/v";\nredef Cato::verdict_topic = "site/r";')
    try:
        with _running(Worker(package.path, f"ws://127.0.0.1:{port}", topics=Topics.of(package.manifest, "site/v",
                                                                                         "site/r"))) as worker:
            assert proc.wait(timeout=60) == 0
            assert "verdict, Cworker" in (tmp_path / "zeek" / "stdout").read_text()
    finally:
        proc.kill()
    assert worker.stats.verdicts_sent == 1


def test_two_packages_run_in_one_zeek_each_with_its_own_worker(study, package, mini_corpus, cache, zeek, monkeypatch,
                                                              tmp_path):
    """Each package is in a module of its own, with its own topics: two packages (two models of one study)
    run in one Zeek beside one listener, each answered by its own worker, which takes its package's
    vectors only. Every TCP/UDP connection gets one verdict of each model in cato_verdict.log, and each
    package's alert label raises its own Notices."""
    from cato.deploy.replay import free_port
    monkeypatch.setenv("CATO_CACHE", str(cache))
    second = compile_package(study, pick_trial(study, pick="cheapest-within"), tmp_path / "second", name="second",
                             alert_labels=["HueSwitch"])
    first_m, second_m = package.manifest.module, second.manifest.module
    assert first_m != second_m and package.manifest.extra["topics"] != second.manifest.extra["topics"]
    corpus = load_corpus(mini_corpus)
    capture = corpus.path_of(corpus.captures[0])
    port = free_port()
    # Both workers connect before Zeek reads a packet; the connections still open when the capture ends
    # are decided then (as cato serve --replay does), and Zeek ends once both models answered everything.
    done = " && ".join(f"{m}::verdicts_received >= {m}::vectors_published" for m in (first_m, second_m))
    # In each package's module: what a package keeps to itself.
    finish = "".join(f"module {m};\nevent Pcap::file_done(path: string) &priority=5\n\t{{\n"
                     "\tfor ( _, id in ::open_conns )\n\t\tif ( connection_exists(id) )\n"
                     "\t\t\tfinish(lookup_connection(id), T, END, lookup_connection(id)$duration);\n"
                     "\tflush_vectors();\n\t}\n" for m in (first_m, second_m))
    answered = "".join(f"event {m}::verdicts(model_schema: string, batch: vector of {m}::VerdictMessage) &priority=-10\n"
                       "\t{\n\tmaybe_done();\n\t}\n" for m in (first_m, second_m))
    (tmp_path / "driver.zeek").write_text(f"""
redef exit_only_after_terminate = T;
redef Cato::websocket_port = {port}/tcp;
global workers = 0;
global input_done = F;
global open_conns: table[string] of conn_id;
function maybe_done()
	{{
	if ( input_done && {done} )
		terminate();
	}}
event zeek_init() {{ suspend_processing(); }}
event Cluster::websocket_client_added(endpoint: Cluster::EndpointInfo, subscriptions: string_vec)
	{{
	if ( ++workers == 2 )
		continue_processing();
	}}
event new_connection(c: connection) {{ open_conns[c$uid] = c$id; }}
event connection_state_remove(c: connection) {{ delete open_conns[c$uid]; }}
event Pcap::file_done(path: string)
	{{
	input_done = T;
	maybe_done();
	}}
{finish}module GLOBAL;
{answered}""")
    out = tmp_path / "run"
    out.mkdir()
    proc = subprocess.Popen([str(zeek), "-b", "-C", "-r", str(capture), "base/protocols/conn",
                             str(package.path / "scripts"), str(second.path / "scripts"), str(tmp_path / "driver.zeek")],
                            cwd=out,
                            stdout=open(out / "stdout", "w"), stderr=open(out / "stderr", "w"))
    try:
        with _running(Worker(package.path, f"ws://127.0.0.1:{port}")) as one, \
                _running(Worker(second.path, f"ws://127.0.0.1:{port}")) as two:
            assert proc.wait(timeout=120) == 0, (out / "stderr").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "error" not in (out / "stderr").read_text().lower()
    verdicts = read_zeek_log(out / "cato_verdict.log")
    conns = read_zeek_log(out / "conn.log")
    conns = set(conns.loc[conns["proto"].isin(["tcp", "udp"]), "uid"])
    names = {first_m: verdicts.loc[verdicts["model"] != "second", "model"].iloc[0], second_m: "second"}
    for manifest, worker in ((package.manifest, one), (second.manifest, two)):
        rows = verdicts[verdicts["model"] == names[manifest.module]]
        # One verdict of each model per connection, from its own worker, which refused nothing of the other's.
        assert set(rows["uid"]) == conns and rows["uid"].is_unique and set(rows["label"]) <= set(manifest.labels)
        assert worker.stats.scored == worker.stats.verdicts_sent == len(rows) and worker.stats.refused == 0
    notices = read_zeek_log(out / "notice.log") if (out / "notice.log").exists() else pd.DataFrame(columns=["msg"])
    for manifest in (package.manifest, second.manifest):
        alerting = verdicts[(verdicts["model"] == names[manifest.module]) & verdicts["label"].isin(manifest.alert_labels)
                            & (verdicts["score"] >= 0.5)]
        raised = notices[notices["msg"].str.endswith(f"model {names[manifest.module]})")]
        assert (len(raised) > 0) == (len(alerting) > 0) and set(raised["sub"]) <= set(manifest.alert_labels)


def test_a_second_package_of_the_same_module_stands_aside(package, zeek, tmp_path):
    """Two packages compiled with one name share a module: the second warns and stands aside, and the
    first works."""
    second = tmp_path / "second"
    shutil.copytree(package.path, second)
    run = run_zeek(Path(__file__).parent / "btest" / "Traces" / "small.pcap",
                   [package.path / "scripts", second / "scripts"], workdir=tmp_path / "run", zeek=zeek)
    assert "is not loaded" in run.stderr and "error" not in run.stderr.lower()


def test_a_package_compiled_with_a_deadline_carries_it(study, cache, monkeypatch, tmp_path):
    monkeypatch.setenv("CATO_CACHE", str(cache))
    package = compile_package(study, pick_trial(study, pick="most-accurate"), tmp_path / "timed", deadline=0.25)
    assert package.manifest.deadline == 0.25 and Manifest.read(package.path).deadline == 0.25
    assert "redef decision_deadline = 250000usec;" in (package.path / "scripts" / "features.zeek").read_text()


def test_hostile_labels_and_names_reach_zeek_as_data(zeek, tmp_path):
    """Labels, alert labels and a package name with quotes, newlines, backslashes and non-ASCII become
    Zeek string literals: Zeek parses the verdict script, runs none of it as code, and holds them exactly."""
    from cato.deploy.zeek_side import load_script, model_script, serving_script
    hostile = ['x"; print "pwned"; #', "new\nline", "back\\slash", "é∂"]
    manifest = Manifest(features=["orig_pkts"], depth=3, labels=hostile, model={"family": "dt"}, alert_labels=hostile,
                        trial=0, values={"f1": 1.0}, corpus="c", label_column="label", strategy="counters")
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "__load__.zeek").write_text(load_script('pkg"; print "pwned"; #', "Cato"))
    (scripts / "common.zeek").write_text(serving_script("common.zeek").read_text())
    (scripts / "features.zeek").write_text(generate(resolve("orig_pkts"), 3).text)
    model_name = 'model"; print "pwned"; #'
    (scripts / "verdicts.zeek").write_text(serving_script("verdicts.zeek").read_text())
    (scripts / "model.zeek").write_text(model_script(manifest, model_name))
    probe = tmp_path / "probe.zeek"
    probe.write_text("event zeek_init() &priority=-10 {\n"
                     + "".join(f"print {zeek_string(h)} in Cato::alert_labels;\n" for h in hostile)
                     + f"print |Cato::alert_labels|, Cato::model_name == {zeek_string(model_name)};\n}}\n")
    run = run_zeek(None, [scripts, probe], workdir=tmp_path / "run", zeek=zeek)
    out = (tmp_path / "run" / "zeek.stdout").read_text()
    assert "pwned" not in out and out.split() == ["T"] * len(hostile) + ["4,", "T"], out


def test_a_native_package_depends_on_cato_and_runs_on_its_plugin(study, cache, zeek, monkeypatch, tmp_path):
    """compile --engine native: the package's features are computed by cato's plugin, so it needs cato
    installed; zkg installs both (the package's btests run on the plugin) and Zeek publishes its vectors."""
    monkeypatch.setenv("CATO_CACHE", str(cache))
    package = compile_package(study, pick_trial(study, pick="most-accurate"), tmp_path / "native-model",
                              engine="native")
    assert package.manifest.extra["engine"] == "native" and package.manifest.strategy == "native"
    assert "@load-plugin Cato::Native" in (package.path / "scripts" / "features.zeek").read_text()
    assert "zkg install cato before this package" in (package.path / "zkg.meta").read_text()
    # cato serve --replay runs it on the checkout's plugin: every connection answered.
    capture = Path(__file__).parent / "btest" / "Traces" / "small.pcap"
    result = replay(package.path, capture, tmp_path / "replay", timeout=300, default_scripts=False)
    assert result.zeek_returncode == 0 and result.coverage >= 0.99, (result.answered, result.connections)
    # The plugin serves one package per Zeek: a second native package says so and makes no vectors, and the
    # first runs on (a script-engine package beside it runs: test_two_packages_run_in_one_zeek_...).
    other = compile_package(study, pick_trial(study, pick="most-accurate"), tmp_path / "other", engine="native",
                            name="other")
    probe = tmp_path / "probe.zeek"
    probe.write_text(in_package("event zeek_done() &priority=-20 { print Cato::vectors_published; }\n", package.path)
                     + in_package("event zeek_done() &priority=-20 { print Cato::vectors_published; }\n", other.path))
    both = run_zeek(capture, [package.path / "scripts", other.path / "scripts", probe], workdir=tmp_path / "both",
                    zeek=zeek, native=True)
    assert "serves one cato package per Zeek" in both.stderr and "error" not in both.stderr.lower()
    first, second = map(int, (tmp_path / "both" / "zeek.stdout").read_text().split())
    assert first > 0 and second == 0
    root = Path(__file__).resolve().parent.parent
    clone = tmp_path / "cato"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
    config = tmp_path / "zkg.cfg"
    config.write_text(f"[sources]\n[paths]\nstate_dir = {tmp_path}/state\nscript_dir = {tmp_path}/scripts\n"
                      f"plugin_dir = {tmp_path}/plugins\nbin_dir = {tmp_path}/bin\nzeek_dist =\n")
    env = {**os.environ, "PATH": f"{zeek.parent}:{Path(sys.executable).parent}:{os.environ['PATH']}"}
    zkg = [str(Path(sys.executable).parent / "zkg"), "--configfile", str(config)]
    # Zeek finds zkg's plugins where zkg puts them (usually inside its own plugin directory; here a
    # temporary one, so named): the package's btests, which zkg runs, load cato's plugin from there.
    env["ZEEK_PLUGIN_PATH"] = f"{tmp_path}/plugins"
    for argv in (["install", "--force", "--skiptests", str(clone)], ["install", "--force", str(package.path)]):
        run = subprocess.run(zkg + argv, capture_output=True, text=True, env=env, timeout=900)
        assert run.returncode == 0, run.stdout + run.stderr
    work = tmp_path / "run"
    work.mkdir()
    zeekpath = subprocess.run([str(zeek.parent / "zeek-config"), "--zeekpath"], capture_output=True, text=True,
                              check=True).stdout.strip()
    run = subprocess.run([str(zeek), "-r", str(Path(__file__).parent / "btest" / "Traces" / "small.pcap"),
                          "packages", "-e", in_package(PRINT_PUBLISHED, package.path)],
                         cwd=work, capture_output=True, text=True, env={**env, "ZEEKPATH": f"{zeekpath}:{tmp_path}/scripts"})
    assert run.returncode == 0 and "error" not in run.stderr.lower(), run.stderr
    schema, published = run.stdout.split(", ")
    assert schema == package.manifest.schema and int(published) == len(read_zeek_log(work / "conn.log")) > 0
