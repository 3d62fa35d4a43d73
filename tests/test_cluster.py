"""A compiled package on a live Zeek cluster: a manager, a logger, a proxy and two workers (nodes started
with ``CLUSTER_NODE`` and a cluster layout), on ZeroMQ and on Broker, capturing a replay with AF_PACKET
fanout in a namespace of their own (tests/livenet.py).

Two ``cato serve`` processes share the cluster, one per worker node (``--zeek-node``), both connected to
the one listener, on the manager. Every TCP/UDP connection gets exactly one verdict row, logged once
through the logger; every alert is one Notice; the verdict log's ``midstream`` agrees with conn.log's
history; and each worker's accounting of its vectors adds up. And what one worker remembers of a host
(its DHCP), every worker does.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from cato.codegen import generate
from cato.corpus.pcapio import read_capture, write_packet, write_pcap_header
from cato.deploy.compile import compile_config
from cato.features import resolve
from cato.model import ModelSpec
from cato.search.space import Config
from cato.study import Study, StudySettings
from cato.zeek import read_zeek_log
from conftest import corpus_path, in_package
from livenet import BENCH_NET_V4, BENCH_NET_V6, rewrite, wait_idle
from test_livenet import net  # noqa: F401 (fixture: a namespace of the test's own)

pytestmark = [pytest.mark.zeek, pytest.mark.corpora, pytest.mark.slow]

#: Every 5-tuple once (a live replay compresses minutes into seconds: no two connections may merge),
#: TCP and UDP, some of it joined mid-stream.
CAPTURE = "pcaps/HueBridge/Setup-C-13-STA.pcap"
WORKERS = ("worker-1", "worker-2")
NODES = ("manager", "logger", "proxy-1", *WORKERS)
#: Ports inside the test's namespace (its own): zeekctl's usual ones, beside cato's listener default.
FIRST_PORT, WEBSOCKET_PORT = 27760, 21760


@pytest.fixture(scope="module")
def package(mini_corpus, tmp_path_factory) -> Path:
    """A depth-3 package trained on four IoT Sentinel devices, alerting on one of them."""
    work = tmp_path_factory.mktemp("cluster-pkg")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CATO_CACHE", str(work / "cache"))
        study = Study.open(work / "study", StudySettings(str(mini_corpus), max_depth=3))
        config = Config(("orig_port", "resp_port", "ip_proto"), 3, ModelSpec("dt", 1, 4))
        return compile_config(study, config, work / "model", alert_labels=["HueSwitch"]).path


def _layout(names: tuple[str, ...] = NODES) -> str:
    nodes = []
    for i, name in enumerate(names):
        kind = {"manager": "MANAGER", "logger": "LOGGER", "proxy-1": "PROXY"}.get(name, "WORKER")
        manager = "" if name == "manager" else ', $manager="manager"'
        nodes.append(f'\t["{name}"] = [$node_type=Cluster::{kind}, $ip=127.0.0.1, $p={FIRST_PORT + i}/tcp{manager}],')
    logger = "logger" in names
    return f"redef Cluster::manager_is_logger = {'F' if logger else 'T'};\nredef Cluster::nodes = {{\n" \
        + "\n".join(nodes) + "\n};\n"


def _zeromq_ports() -> str:
    """The ZeroMQ proxy's ports (its own defaults, 5555-5556, would do as well in the namespace)."""
    return f"""
redef Cluster::Backend::ZeroMQ::listen_xpub_endpoint = "tcp://127.0.0.1:{FIRST_PORT + 10}";
redef Cluster::Backend::ZeroMQ::listen_xsub_endpoint = "tcp://127.0.0.1:{FIRST_PORT + 11}";
redef Cluster::Backend::ZeroMQ::connect_xpub_endpoint = "tcp://127.0.0.1:{FIRST_PORT + 11}";
redef Cluster::Backend::ZeroMQ::connect_xsub_endpoint = "tcp://127.0.0.1:{FIRST_PORT + 10}";
"""


#: On every node: logs stay unrotated where the logger writes them; connections end soon after their
#: last packet, so that each is decided and logged before the test stops the cluster. Workers report
#: whether they are served, what they have open, and their accounting at exit.
SITE = """
redef Log::default_rotation_interval = 0secs;
redef tcp_inactivity_timeout = 1sec;
redef udp_inactivity_timeout = 1sec;
redef icmp_inactivity_timeout = 1sec;
redef unknown_ip_inactivity_timeout = 1sec;
redef Cato::verdict_wait = 10min;

module Cato;

# Vectors made, and those of the replay's connections (its addresses are the benchmarking range's).
global made = 0;
global made_replayed = 0;

event report_state()
	{
	local stats = get_conn_stats();
	print fmt("state served=%s open=%d awaiting=%d replayed=%d", served, stats$current_conns, |published|,
	          made_replayed);
	schedule 200msec { report_state() };
	}

event zeek_init()
	{
	if ( Cluster::local_node_type() == Cluster::WORKER )
		schedule 200msec { report_state() };
	}

event vector_ready(info: Info)
	{
	++made;
	if ( info$id$orig_h in 198.18.0.0/15 || info$id$orig_h in [2001:2::]/48 )
		++made_replayed;
	}

event zeek_done() &priority=-20
	{
	if ( Cluster::local_node_type() == Cluster::WORKER )
		print fmt("accounting made=%d made_replayed=%d published=%d timeout=%d shutdown=%d shed=%d no_worker=%d "
		          + "late=%d", made, made_replayed, vectors_published, unanswered[TIMEOUT], unanswered[SHUTDOWN],
		          unanswered[SHED], unanswered[NO_WORKER], late_verdicts);
	}
"""


def _joined_midstream(capture: Path, out: Path, every: int = 3) -> Path:
    """``capture`` with the SYN and SYN-ACK of every ``every``-th TCP connection left out: Zeek joins
    those mid-stream, as it does the connections open when it starts."""
    connections: dict[tuple, int] = {}
    with open(out, "wb") as f:
        packets = read_capture(capture).packets
        write_pcap_header(f, packets[0].linktype)
        for p in packets:
            d = p.data
            if p.linktype == 1 and len(d) >= 54 and d[12:14] == b"\x08\x00" and d[23] == 6:
                ihl = (d[14] & 0x0F) * 4
                tcp = 14 + ihl
                ends = sorted([(d[26:30], d[tcp:tcp + 2]), (d[30:34], d[tcp + 2:tcp + 4])])
                n = connections.setdefault(tuple(ends), len(connections))
                if d[tcp + 13] & 0x02 and n % every == 0:  # SYN
                    continue
            write_packet(f, p.ts_ns, d, p.orig_len)
    return out


def _last_state(stdout: Path) -> dict[str, str]:
    complete = stdout.read_text().rpartition("\n")[0] if stdout.exists() else ""
    lines = re.findall(r"state (.*)", complete)
    return dict(kv.split("=") for kv in lines[-1].split()) if lines else {}


def _wait(what: str, ok, procs: dict[str, subprocess.Popen], timeout: float = 120.0,
          explain: Callable[[], str] | None = None) -> None:
    """Wait until ``ok()``, failing when a process of ``procs`` exits; a timeout's message ends with
    ``explain()``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited ({proc.returncode}) while waiting for {what}")
        if ok():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}" + (f"; {explain()}" if explain else ""))


def _tail(path: Path, lines: int = 8) -> list[str]:
    return path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("backend", ["zeromq", "broker"])
def test_a_package_on_a_live_cluster_answers_each_connection_once(backend, package, zeek, net, tmp_path):  # noqa: F811
    pcap = rewrite(_joined_midstream(corpus_path("iot-sentinel") / CAPTURE, tmp_path / "cut.pcap"),
                   tmp_path / "traffic.pcap")
    config = tmp_path / "config"
    config.mkdir()
    (config / "cluster-layout.zeek").write_text(_layout())
    (config / "site.zeek").write_text(in_package(SITE, package) + (_zeromq_ports() if backend == "zeromq" else ""))
    zeekpath = subprocess.run([str(zeek.parent / "zeek-config"), "--zeekpath"], capture_output=True, text=True,
                              check=True).stdout.strip()
    env = {**os.environ, "ZEEKPATH": f"{zeekpath}:{config}"}
    backend_scripts = (["policy/frameworks/cluster/backend/zeromq", "policy/frameworks/cluster/backend/zeromq/connect"]
                       if backend == "zeromq" else [])
    procs: dict[str, subprocess.Popen] = {}
    for name in NODES:
        work = tmp_path / name
        work.mkdir()
        capture = ["-i", f"af_packet::{net.capture_iface}"] if name in WORKERS else []
        procs[name] = net.popen([str(zeek), "-b", *capture, *backend_scripts, "base/protocols/conn",
                                 str(package / "scripts"), str(config / "site.zeek")],
                                cwd=work, env={**env, "CLUSTER_NODE": name},
                                stdout=open(work / "stdout", "w"), stderr=open(work / "stderr", "w"))
    serving = {}
    try:
        for name in WORKERS:
            net.wait_capturing(procs[name])
        for name in WORKERS:  # one worker process per node: none scores a vector twice
            serving[name] = net.popen([sys.executable, "-m", "cato", "serve", str(package), "--url",
                                       f"ws://127.0.0.1:{WEBSOCKET_PORT}", "--zeek-node", name, "--json"],
                                      stdout=subprocess.PIPE, stderr=open(tmp_path / f"serve-{name}.log", "w"),
                                      text=True)
        _wait("both workers served", lambda: all(_last_state(tmp_path / w / "stdout").get("served") == "T"
                                                 for w in WORKERS), procs)
        sent = net.replay(pcap, mbps=20)
        assert sent["packets"] > 0
        for name in WORKERS:
            wait_idle(procs[name])
        # (A state from before the replay would say the same: one that counts replayed vectors cannot.)
        _wait("every connection of the replay ended and answered",
              lambda: all(_last_state(tmp_path / w / "stdout").get("open") == "0" and
                          _last_state(tmp_path / w / "stdout").get("awaiting") == "0" and
                          _last_state(tmp_path / w / "stdout").get("replayed", "0") != "0" for w in WORKERS),
              {**procs, **{f"cato serve --zeek-node {w}": p for w, p in serving.items()}},
              explain=lambda: repr({**{w: _last_state(tmp_path / w / "stdout") for w in WORKERS},
                                    **{f"{w} stderr": _tail(tmp_path / w / "stderr") for w in (*WORKERS, "manager")},
                                    **{f"serve {w}": _tail(tmp_path / f"serve-{w}.log") for w in WORKERS}}))
        served = {}
        for name, worker in serving.items():
            worker.send_signal(signal.SIGTERM)
            out, _ = worker.communicate(timeout=60)
            served[name] = json.loads(out)
        for name in (*WORKERS, "proxy-1", "manager", "logger"):  # as zeekctl stops a cluster
            _stop(procs[name])
    finally:
        for proc in (*procs.values(), *serving.values()):
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    logs = tmp_path / "logger"
    everything = read_zeek_log(logs / "conn.log")
    verdicts = read_zeek_log(logs / "cato_verdict.log")
    assert verdicts["uid"].is_unique, "each verdict is logged once"
    assert set(verdicts["uid"]) <= set(everything["uid"]), "every verdict is of a connection"
    # The replay's TCP/UDP connections. (A worker's AF_PACKET socket takes every interface's packets
    # until it binds to its own: the cluster's first packets on the loopback count too, before any
    # inference worker is there.)
    replayed = everything["id.orig_h"].map(lambda a: ipaddress.ip_address(a) in BENCH_NET_V4 or
                                            ipaddress.ip_address(a) in BENCH_NET_V6)
    conns = everything[replayed & everything["proto"].isin(["tcp", "udp"])]
    assert len(conns) > 100 and set(conns["uid"]) <= set(verdicts["uid"]), \
        "every TCP/UDP connection of the replay has a verdict"
    # Both workers saw traffic (AF_PACKET fanout), and each worker process scored its own node's only.
    received = {name: int(s["received"]) for name, s in served.items()}
    assert all(n > 0 for n in received.values()) and sum(received.values()) == len(verdicts), received
    accounting = {}
    for name in WORKERS:
        (line,) = re.findall(r"accounting (.*)", (tmp_path / name / "stdout").read_text())
        accounting[name] = {k: int(v) for k, v in (kv.split("=") for kv in line.split())}
        counts = accounting[name]
        assert counts["published"] == received[name], (name, counts, received)
        assert counts["timeout"] == counts["shutdown"] == counts["shed"] == counts["late"] == 0, (name, counts)
        # Every vector is published or counted; only some made before a worker was there go unanswered.
        assert counts["made"] == counts["published"] + counts["no_worker"], (name, counts)
        assert counts["no_worker"] <= counts["made"] - counts["made_replayed"], (name, counts)
    replayed_verdicts = verdicts["uid"].isin(everything.loc[replayed, "uid"])
    assert sum(a["made_replayed"] for a in accounting.values()) == replayed_verdicts.sum(), \
        "each vector of the replay answered once"
    # An alert raises a Notice on the node that saw it, once per originator and label (Zeek's suppression,
    # which the manager spreads: two workers may each raise one before it has).
    alerts = verdicts[(verdicts["label"] == "HueSwitch") & (verdicts["score"].astype(float) >= 0.5)]
    notices = (read_zeek_log(logs / "notice.log") if (logs / "notice.log").exists()
               else pd.DataFrame({"note": [], "uid": [], "id.orig_h": [], "sub": [], "src": []}))
    # An Alerting_Host is of a host past Cato::alert_threshold alerting connections, once, from the manager.
    # (Whether it comes before the cluster stops depends on when SumStats' manager asks the workers for
    # their counts: the btest serving/alerting-host checks the threshold itself.)
    hosts = notices[notices["note"] == "Cato::Alerting_Host"]
    per_host = alerts.groupby([alerts["id.orig_h"].astype(str), "label"]).size()
    crossed = set(zip(hosts["src"].astype(str), hosts["sub"]))
    assert crossed <= set(per_host[per_host >= 10].index), per_host
    assert len(hosts) == len(set(zip(hosts["src"].astype(str), hosts["sub"])))
    notices = notices[notices["note"] == "Cato::Alert"]
    assert notices["uid"].is_unique and set(notices["uid"]) <= set(alerts["uid"]), "a Notice is of an alert"
    assert set(zip(notices["id.orig_h"].astype(str), notices["sub"])) == \
        set(zip(alerts["id.orig_h"].astype(str), alerts["label"])), "each alerting host and label has its Notice"
    assert len(notices) <= len(WORKERS) * len(set(alerts["id.orig_h"])), "suppressed per host and label"
    # Flagged mid-stream exactly where conn.log's history does not start with a SYN or SYN-ACK.
    tcp = conns[conns["proto"] == "tcp"].set_index("uid")["history"].astype(str).str.lstrip("^")
    expected = ~tcp.str[:1].isin(list("SsHh"))
    flagged = verdicts.set_index("uid")["midstream"].reindex(tcp.index).astype(str) == "T"
    assert expected.any() and (flagged == expected).all(), "midstream flags follow conn.log's history"
    for name in NODES:
        # (Broker retries a peer that is not up yet, and says so as an error.)
        errors = [line for line in (tmp_path / name / "stderr").read_text().splitlines()
                  if ("error" in line.lower() or "cannot listen" in line) and "PEER_UNAVAILABLE" not in line]
        assert not errors, (name, errors)


#: What each node says of the remembered values (the generated script's table of DHCP parameter
#: lists) and of the cluster, for test_remembered_values_reach_every_worker.
REMEMBERING_SITE = """
redef Log::default_rotation_interval = 0secs;
redef tcp_inactivity_timeout = 1sec;
redef udp_inactivity_timeout = 1sec;

module Cato;

global workers_up = 0;

event report_state()
	{
	print fmt("state remembered=%d open=%d workers_up=%d", |remembered_host_dhcp_param_list|,
	          get_conn_stats()$current_conns, workers_up);
	flush_all();
	schedule 200msec { report_state() };
	}

event zeek_init()
	{
	schedule 200msec { report_state() };
	}

event Cluster::node_up(name: string, id: string)
	{
	if ( name in set("worker-1", "worker-2") )
		++workers_up;
	}
"""


def _dhcp_only(capture: Path, out: Path) -> Path:
    """The DHCP frames (UDP ports 67 and 68) of an Ethernet ``capture``."""
    packets = read_capture(capture).packets
    with open(out, "wb") as f:
        write_pcap_header(f, packets[0].linktype)
        for p in packets:
            d = p.data
            if len(d) >= 42 and d[12:14] == b"\x08\x00" and d[23] == 17:
                udp = 14 + (d[14] & 0x0F) * 4
                if {int.from_bytes(d[udp:udp + 2], "big"), int.from_bytes(d[udp + 2:udp + 4], "big")} <= {67, 68}:
                    write_packet(f, p.ts_ns, d, p.orig_len)
    return out


def test_remembered_values_reach_every_worker(zeek, net, tmp_path):  # noqa: F811
    """A device's DHCP reaches one worker (AF_PACKET fanout hashes flows), its connections both: what
    one worker remembers of it, every worker does (relayed by the manager), so each of the device's
    connections carries its DHCP parameter list, as one Zeek reading the capture gives it."""
    names = ("manager", *WORKERS)
    capture = corpus_path("iot-sentinel") / CAPTURE
    dhcp = rewrite(_dhcp_only(capture, tmp_path / "dhcp-cut.pcap"), tmp_path / "dhcp.pcap")
    traffic = rewrite(capture, tmp_path / "traffic.pcap")
    script = tmp_path / "remembering.zeek"
    script.write_text(generate(resolve("orig_host_dhcp_param_list,resp_host_dhcp_param_list,orig_pkts"), [3]).text)
    config = tmp_path / "config"
    config.mkdir()
    (config / "cluster-layout.zeek").write_text(_layout(names))
    (config / "site.zeek").write_text(REMEMBERING_SITE)
    zeekpath = subprocess.run([str(zeek.parent / "zeek-config"), "--zeekpath"], capture_output=True, text=True,
                              check=True).stdout.strip()
    env = {**os.environ, "ZEEKPATH": f"{zeekpath}:{config}"}
    procs: dict[str, subprocess.Popen] = {}
    state = {name: (lambda name=name: _last_state(tmp_path / name / "stdout")) for name in names}
    try:
        for name in names:
            work = tmp_path / name
            work.mkdir()
            iface = ["-i", f"af_packet::{net.capture_iface}"] if name in WORKERS else []
            procs[name] = net.popen([str(zeek), "-b", *iface, "base/protocols/conn", str(script),
                                     str(config / "site.zeek")], cwd=work, env={**env, "CLUSTER_NODE": name},
                                    stdout=open(work / "stdout", "w"), stderr=open(work / "stderr", "w"))
        for name in WORKERS:
            net.wait_capturing(procs[name])
        _wait("both workers up", lambda: state["manager"]().get("workers_up") == "2", procs)
        assert net.replay(dhcp)["packets"] > 0
        _wait("both workers remember the device", lambda: all(state[w]().get("remembered") == "1" for w in WORKERS),
              procs)
        assert net.replay(traffic, mbps=20)["packets"] > 0
        for name in WORKERS:
            wait_idle(procs[name])
        _wait("every connection ended", lambda: all(state[w]().get("open") == "0" for w in WORKERS), procs)
        for name in (*WORKERS, "manager"):
            _stop(procs[name])
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    offline = tmp_path / "offline"
    offline.mkdir()
    subprocess.run([str(zeek), "-b", "-C", "-r", str(traffic), "base/protocols/conn", str(script)], cwd=offline,
                   check=True, capture_output=True)

    def with_parameter_list(log: Path) -> set:
        v = read_zeek_log(log)
        v = v[v["orig_host_dhcp_param_list"].notna() | v["resp_host_dhcp_param_list"].notna()]
        return set(zip(*(v[c].astype(str) for c in ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"))))

    live, reference = with_parameter_list(tmp_path / "manager" / "cato.log"), with_parameter_list(offline / "cato.log")
    assert len(reference) > 20 and reference <= live, sorted(reference - live)[:5]
