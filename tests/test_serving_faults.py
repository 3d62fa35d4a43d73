"""Faults while serving (#19): the worker killed and restarted under a running Zeek, and a flood of
vectors faster than the worker takes them. Real Zeek, a real `cato serve` process, real sockets."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cato.deploy.compile import compile_config
from cato.deploy.replay import free_port
from cato.model import ModelSpec
from cato.search.space import Config
from cato.study import Study, StudySettings
from cato.zeek import read_zeek_log
from conftest import in_package
from synthetic import write_udp_connections

pytestmark = pytest.mark.zeek
TRACES = Path(__file__).parent / "btest" / "Traces"
T0 = 1_700_000_000


@pytest.fixture(scope="module")
def package(zeek, tmp_path_factory) -> Path:
    """A package deciding at a connection's first packet (depth 1), from a two-capture corpus."""
    work = tmp_path_factory.mktemp("pkg")
    corpus = work / "corpus"
    corpus.mkdir()
    shutil.copy(TRACES / "small.pcap", corpus / "a.pcap")
    shutil.copy(TRACES / "long.pcap", corpus / "b.pcap")
    (corpus / "labels.csv").write_text("pcap,label\na.pcap,web\nb.pcap,other\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CATO_CACHE", str(work / "cache"))
        study = Study.open(work / "study", StudySettings(str(corpus), max_depth=1))
        config = Config(("orig_port", "resp_port", "ip_proto"), 1, ModelSpec("dt", 1, 4))
        return compile_config(study, config, work / "p").path


def _udp_capture(path: Path, rate: int, seconds: float) -> int:
    return write_udp_connections(path, rate, seconds, start_s=T0)


def _serve(package: Path, port: int, log: Path, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cato", "serve", str(package), "--url", f"ws://127.0.0.1:{port}",
                             *map(str, args)], stdout=subprocess.PIPE, stderr=open(log, "w"), text=True,
                            env={**os.environ, "COLUMNS": "300"})


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _stop(zeek_proc: subprocess.Popen, worker: subprocess.Popen) -> dict:
    """Stop Zeek (which must exit cleanly), then the worker; the worker's --json statistics."""
    zeek_proc.send_signal(signal.SIGTERM)
    assert zeek_proc.wait(timeout=60) == 0
    worker.send_signal(signal.SIGTERM)
    return json.loads(worker.communicate(timeout=30)[0])


def _kill(*procs: subprocess.Popen | None) -> None:
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.kill()


def _listening(port: int, zeek: subprocess.Popen) -> bool:
    if zeek.poll() is not None:
        raise AssertionError(f"Zeek exited ({zeek.returncode}) before listening")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def test_a_killed_worker_loses_only_its_own_vectors_and_a_new_one_takes_over(package, zeek, tmp_path):
    rate, seconds = 200, 12
    n = _udp_capture(tmp_path / "traffic.pcap", rate, seconds)
    port = free_port()
    out = tmp_path / "zeek"
    out.mkdir()
    # The traffic waits for the test's steps, never the test for the traffic (a busy machine only
    # slows both): it starts with the first worker, pauses at 4.5 s until that worker is gone, and at
    # 8 s until a second one has come. Zeek marks each pause, and the traffic's end, with a file.
    (tmp_path / "site.zeek").write_text(in_package(f"""
redef exit_only_after_terminate = T;
redef Cato::websocket_port = {port}/tcp;
redef Cato::verdict_wait = 1sec;
redef Cato::missing_report_interval = 1sec;
global clients = 0;
global first: time;
global seen = 0;
global pause_at: vector of interval = vector(4.5sec, 8sec);
global paused = F;

function mark(name: string) {{ system(fmt("touch %s/%s", "{out}", name)); }}

event zeek_init() {{ suspend_processing(); }}

event Cluster::websocket_client_added(endpoint: Cluster::EndpointInfo, subscriptions: string_vec)
	{{
	if ( ++clients == 1 )
		continue_processing();
	}}

event Cluster::websocket_client_lost(endpoint: Cluster::EndpointInfo, code: count, reason: string)
	{{
	if ( --clients == 0 && paused )
		{{
		paused = F;
		continue_processing();
		}}
	}}

event new_connection(c: connection)
	{{
	if ( ++seen == 1 )
		first = c$start_time;
	if ( seen == {n} )
		mark("done");
	if ( |pause_at| > 0 && c$start_time - first >= pause_at[0] )
		{{
		# First for the worker to go (it is there), then for one to come (none is).
		paused = clients > 0;
		pause_at = pause_at[1:];
		suspend_processing();
		mark(paused ? "paused-for-loss" : "paused-for-worker");
		}}
	}}
""", package))
    zeek_proc = subprocess.Popen([str(zeek), "-b", "-C", "-r", str(tmp_path / "traffic.pcap"), "--pseudo-realtime=1",
                                  "base/protocols/conn", str(package / "scripts"), str(tmp_path / "site.zeek")],
                                 cwd=out, stdout=open(out / "stdout", "w"), stderr=open(out / "stderr", "w"))
    second = None
    try:
        _wait_for(lambda: _listening(port, zeek_proc), 30, "Zeek to listen")
        first = _serve(package, port, tmp_path / "worker1.log")
        _wait_for(lambda: (out / "paused-for-loss").exists(), 120, "4.5 s of traffic with the first worker")
        time.sleep(1)  # the last verdicts come back
        first.send_signal(signal.SIGKILL)  # no goodbye, no flush
        first.wait()
        _wait_for(lambda: (out / "paused-for-worker").exists(), 120, "the traffic without a worker")
        assert zeek_proc.poll() is None, "Zeek stopped with its worker"
        second = _serve(package, port, tmp_path / "worker2.log", "--json")
        _wait_for(lambda: (out / "done").exists(), 120, "the rest of the traffic")
        time.sleep(3)  # verdicts of the last connections, made at their first packet
        second.send_signal(signal.SIGTERM)
        stats = json.loads(second.communicate(timeout=30)[0])
        zeek_proc.send_signal(signal.SIGTERM)
        assert zeek_proc.wait(timeout=60) == 0
    finally:
        _kill(zeek_proc, second)
    conns = read_zeek_log(out / "conn.log")
    verdicts = read_zeek_log(out / "cato_verdict.log")
    assert len(conns) == n, "Zeek kept reading and logging every connection"
    answered = set(verdicts["uid"])
    ts = conns.set_index("uid")["ts"]
    start = ts - ts.min()  # when each connection came, in seconds of traffic (pacing moves Zeek's clock)
    early = start[start.index.isin(answered) & (start < 2)]
    late = start[start.index.isin(answered) & (start > seconds - 3)]
    gap = start[(start > 5) & (start < 6)]
    assert len(early) > 0.9 * 2 * rate, "the first worker answered"
    assert len(late) > 0.9 * 3 * rate, "the second worker answered the new connections"
    assert not gap.index.isin(answered).any(), "no one answered while no worker ran"
    assert stats["received"] == stats["scored"] > 0 and stats["dropped"] == 0
    stderr = (out / "stderr").read_text()
    # Counted and reported while Zeek ran (Reporter warnings), and in all at exit.
    running = [int(m) for m in re.findall(r"cato: (\d+) more vector\(s\) got no verdict", stderr)]
    assert running and sum(running) >= len(gap)
    (counts,) = re.findall(r"cato: \d+ vector\(s\) published; no verdict: (\d+) timed out .*?, (\d+) at shutdown, "
                           r"(\d+) shed .*?, (\d+) with no inference worker", stderr)
    timed_out, at_shutdown, shed, no_worker = map(int, counts)
    assert timed_out + at_shutdown + shed + no_worker == n - len(answered), \
        "every vector without a verdict is counted, once"
    # Zeek knew at once that no worker was there: the gap's vectors were counted, not published.
    assert no_worker >= 0.9 * len(gap), counts


def test_a_flood_is_dropped_counted_and_reported_on_both_sides(package, zeek, tmp_path):
    """Vectors arrive in a burst far beyond the worker's queue: the queue stays bounded, the worker counts
    what it drops, Zeek counts the same vectors as missing, and both keep running."""
    port = free_port()
    burst, batch = 200, 100
    (tmp_path / "flood.zeek").write_text(in_package(f"""
module Cato;  # to read its private table of vectors awaiting a verdict

redef exit_only_after_terminate = T;
redef Cato::websocket_port = {port}/tcp;
redef Cato::verdict_wait = 3sec;
redef table_expire_interval = 100msec;
global flood_answered = 0;

event flood_report()
	{{
	print fmt("published %d answered %d missing %d waiting %d late %d", Cato::vectors_published, flood_answered,
	          Cato::unanswered[Cato::TIMEOUT], |Cato::published|, Cato::late_verdicts);
	terminate();
	}}

event Cluster::websocket_client_added(endpoint: Cluster::EndpointInfo, subscriptions: string_vec)
	{{
	local i = 0;
	while ( i < {burst} )
		{{
		local vs: vector of Cato::Info = vector();
		local j = 0;
		while ( j < {batch} )
			{{
			local k = i * {batch} + j;
			local id = conn_id($orig_h=10.0.0.1, $orig_p=count_to_port(1024 + k % 60000, tcp), $resp_h=10.0.0.2,
			                   $resp_p=80/tcp, $proto=6);
			local info = Cato::Info($ts=network_time(), $uid=fmt("Cflood%d", k), $id=id, $proto=tcp, $depth=1,
			                        $pkts_seen=1, $decided_after=0secs, $decided_by=Cato::DEPTH);
			if ( Cato::admit(info$uid, F) )  # as emit() asks: awaited from now on
				vs += info;
			++j;
			}}
		Cluster::publish(Cato::vector_topic, Cato::vector_batch, vs);
		Cato::vectors_published += {batch};
		++i;
		}}
	schedule 6sec {{ flood_report() }};
	}}

event Cato::verdicts(model_schema: string, batch: vector of Cato::VerdictMessage) &priority=-10
	{{
	flood_answered += |batch|;
	}}
""", package))
    out = tmp_path / "zeek"
    out.mkdir()
    zeek_proc = subprocess.Popen([str(zeek), "-b", str(package / "scripts"), str(tmp_path / "flood.zeek")], cwd=out,
                                 stdout=open(out / "stdout", "w"), stderr=open(out / "stderr", "w"))
    try:
        _wait_for(lambda: _listening(port, zeek_proc), 30, "Zeek to listen")
        worker = _serve(package, port, tmp_path / "worker.log", "--queue", 64, "--batch", 8, "--json")
        assert zeek_proc.wait(timeout=60) == 0
        # The worker outlives its Zeek (it waits for the next one) until told to stop.
        time.sleep(0.5)
        assert worker.poll() is None
        worker.send_signal(signal.SIGTERM)
        stats = json.loads(worker.communicate(timeout=30)[0])
    finally:
        if zeek_proc.poll() is None:
            zeek_proc.kill()
    published, answered, missing, waiting, late = map(int, re.findall(r"\d+", (out / "stdout").read_text())[:5])
    assert published == burst * batch == stats["received"]
    assert stats["dropped"] > 0 and stats["received"] == stats["scored"] + stats["dropped"] + stats["unreadable"]
    # A verdict that comes after Cato::verdict_wait (a busy machine) counts its vector missing and
    # itself late: each side still counts the same loss.
    assert answered == stats["scored"] and missing + waiting == stats["dropped"] + late, "each side counts the same loss"


def test_a_stuck_worker_makes_zeek_shed_vectors_not_buffer_them(package, zeek, tmp_path):
    """The worker stops reading (SIGSTOP) while traffic goes on: Zeek holds at most max_in_flight vectors
    awaiting a verdict, sheds and counts the rest, and resumes when the worker does."""
    rate, seconds, cap = 2000, 8, 1000
    n = _udp_capture(tmp_path / "traffic.pcap", rate, seconds)
    port = free_port()
    (tmp_path / "site.zeek").write_text(in_package(f"""
module Cato;  # to watch its private table of vectors awaiting a verdict
redef exit_only_after_terminate = T;
redef Cato::websocket_port = {port}/tcp;
redef Cato::verdict_wait = 1min;
redef Cato::max_in_flight = {cap};
global most_waiting = 0;
global answered = 0;
event zeek_init() {{ suspend_processing(); }}
event Cluster::websocket_client_added(endpoint: Cluster::EndpointInfo, subscriptions: string_vec)
	{{ continue_processing(); }}
event Cato::vector_ready(info: Info) &priority=-10
	{{ most_waiting = |published| > most_waiting ? |published| : most_waiting; }}
global seen = 0;
event new_connection(c: connection)
	{{ ++seen; }}
event Cato::verdicts(model_schema: string, batch: vector of VerdictMessage) &priority=-10
	{{
	answered += |batch|;
	if ( seen == {n} && |published| == 0 )  # the traffic's end, every vector answered or shed
		system("touch {tmp_path / 'zeek' / 'drained'}");
	}}
event zeek_done()
	{{ print fmt("vectors %d published %d answered %d shed %d waiting %d most %d", vectors_published + unanswered[SHED],
	             vectors_published, answered, unanswered[SHED], |published|, most_waiting); }}
""", package))
    out = tmp_path / "zeek"
    out.mkdir()
    zeek_proc = subprocess.Popen([str(zeek), "-b", "-C", "-r", str(tmp_path / "traffic.pcap"), "--pseudo-realtime=1",
                                  str(package / "scripts"), str(tmp_path / "site.zeek")],
                                 cwd=out, stdout=open(out / "stdout", "w"), stderr=open(out / "stderr", "w"))
    worker = None
    try:
        _wait_for(lambda: _listening(port, zeek_proc), 30, "Zeek to listen")
        worker = _serve(package, port, tmp_path / "worker.log", "--json")
        _wait_for(lambda: "connected to Zeek" in (tmp_path / "worker.log").read_text() or worker.poll() is not None,
                  60, "the worker to connect")
        time.sleep(2)
        worker.send_signal(signal.SIGSTOP)  # stuck: reads nothing, answers nothing
        time.sleep(3)
        worker.send_signal(signal.SIGCONT)
        _wait_for(lambda: (out / "drained").exists() or zeek_proc.poll() is not None, 120 + seconds,
                  "the traffic's end with every vector answered or shed")
        stats = _stop(zeek_proc, worker)
    finally:
        _kill(zeek_proc, worker)
    counts = {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", (out / "stdout").read_text())}
    assert counts["vectors"] == n
    assert counts["shed"] > 0 and counts["most"] <= cap + 100, "Zeek held at most max_in_flight (and one batch)"
    assert counts["answered"] + counts["waiting"] + counts["shed"] == n, "every vector is answered or counted"
    assert counts["answered"] == stats["scored"] > 0 and stats["dropped"] == 0
    stderr = (out / "stderr").read_text()
    assert "publishing paused" in stderr and "publishing resumed" in stderr
    # Verdicts came again after the worker resumed: the last second of traffic was answered.
    verdicts = read_zeek_log(out / "cato_verdict.log")
    assert len(verdicts) == counts["answered"]
    assert (verdicts["ts"] >= verdicts["ts"].max() - 1).sum() > 0.5 * rate


def test_a_replay_through_a_full_queue_waits_instead_of_dropping(package, zeek, tmp_path):
    """Zeek ends a replay when every vector it published has its verdict: a vector dropped in a full
    queue once stalled the replay until its time limit. Now the worker waits for room."""
    from cato.deploy.replay import replay
    n = _udp_capture(tmp_path / "burst.pcap", 20_000, 0.15)  # read at full speed: a burst
    result = replay(package, tmp_path / "burst.pcap", tmp_path / "out", zeek=zeek, default_scripts=False,
                    queue_size=1, timeout=60)
    assert result.stats.dropped == 0 and result.stats.scored == n
    assert result.connections == n and result.coverage == 1.0
