"""cato serve under a flood: vectors published faster than the worker scores them.

    python benchmarks/serve_flood.py [--rates 5000,20000,40000,80000] [--seconds 3]

A Zeek with a small package (3 features, a decision tree, depth 1) publishes synthetic vectors at a
fixed rate (batches of 100 every 10 ms of wall-clock time) to a real `cato serve` over Zeek's WebSocket
API on loopback; afterwards both sides' counts and peak memory (VmHWM) are printed as a markdown table.
Zeek pauses publishing while Cato::max_in_flight (50,000) vectors await a verdict and counts what it
sheds meanwhile; the worker drops what finds its queue (100,000) full. The flood point is the lowest
rate at which either loses vectors.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cato.deploy.compile import compile_config
from cato.deploy.manifest import Manifest
from cato.deploy.replay import free_port
from cato.deploy.zeek_side import for_package
from cato.model import ModelSpec
from cato.search.space import Config
from cato.study import Study, StudySettings
from cato.zeek import find_zeek

TRACES = Path(__file__).resolve().parent.parent / "tests" / "btest" / "Traces"

DRIVER = """
module Cato;
redef exit_only_after_terminate = T;
redef Cato::websocket_port = {port}/tcp;
redef Cato::verdict_wait = 5sec;
redef table_expire_interval = 100msec;
global answered = 0;
global made = 0;
global started: time;

event flood_report()
	{{
	print fmt("published %d answered %d missing %d waiting %d seconds %.3f shed %d", vectors_published, answered,
	          unanswered[TIMEOUT], |published|, interval_to_double(current_time() - started), unanswered[SHED]);
	terminate();
	}}

event tick()
	{{
	local due = double_to_count(interval_to_double(current_time() - started) * {rate});
	while ( made < due && made < {total} )
		{{
		# As emit() does: each vector goes out if the package admits it (it counts it as awaiting a
		# verdict, or as shed).
		local vs: vector of Info = vector();
		local j = 0;
		while ( j < 100 )
			{{
			local k = made + j;
			local id = conn_id($orig_h=10.0.0.1, $orig_p=count_to_port(1024 + k % 60000, tcp), $resp_h=10.0.0.2,
			                   $resp_p=80/tcp, $proto=6);
			local info = Info($ts=network_time(), $uid=fmt("Cf%d", k), $id=id, $proto=tcp, $depth=1, $pkts_seen=1,
			                  $decided_after=0secs, $decided_by=DEPTH);
			if ( admit(info$uid, F) )
				vs += info;
			++j;
			}}
		if ( |vs| > 0 )
			{{
			Cluster::publish(vector_topic, vector_batch, vs);
			vectors_published += |vs|;
			}}
		made += 100;
		}}
	if ( made < {total} )
		schedule 10msec {{ tick() }};
	else
		schedule 6sec {{ flood_report() }};
	}}

event Cluster::websocket_client_added(endpoint: Cluster::EndpointInfo, subscriptions: string_vec)
	{{
	started = current_time();
	event tick();
	}}

event Cato::verdicts(model_schema: string, batch: vector of VerdictMessage) &priority=-10
	{{
	answered += |batch|;
	}}
"""


def peak_kb(pid: int) -> int:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def package(work: Path) -> Path:
    corpus = work / "corpus"
    corpus.mkdir()
    shutil.copy(TRACES / "small.pcap", corpus / "a.pcap")
    shutil.copy(TRACES / "long.pcap", corpus / "b.pcap")
    (corpus / "labels.csv").write_text("pcap,label\na.pcap,web\nb.pcap,other\n")
    study = Study.open(work / "study", StudySettings(str(corpus), max_depth=1))
    config = Config(("orig_port", "resp_port", "ip_proto"), 1, ModelSpec("dt", 1, 4))
    return compile_config(study, config, work / "pkg").path


def flood(pkg: Path, rate: int, seconds: float, work: Path) -> dict:
    port = free_port()
    work.mkdir()
    driver = DRIVER.format(port=port, rate=rate, total=int(rate * seconds) // 100 * 100)
    (work / "driver.zeek").write_text(for_package(driver, Manifest.read(pkg)))
    zeek = subprocess.Popen([str(find_zeek()), "-b", str(pkg / "scripts"), str(work / "driver.zeek")], cwd=work,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    worker = subprocess.Popen([sys.executable, "-m", "cato", "serve", str(pkg), "--url", f"ws://127.0.0.1:{port}",
                               "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    zeek_kb = worker_kb = 0
    while zeek.poll() is None:
        zeek_kb, worker_kb = max(zeek_kb, peak_kb(zeek.pid)), max(worker_kb, peak_kb(worker.pid))
        time.sleep(0.05)
    worker_kb = max(worker_kb, peak_kb(worker.pid))
    worker.send_signal(signal.SIGTERM)
    stats = json.loads(worker.communicate(timeout=60)[0])
    nums = re.findall(r"[\d.]+", zeek.stdout.read())
    published, answered, missing, waiting = map(int, nums[:4])
    return {"rate": rate, "offered": int(rate * seconds) // 100 * 100, "shed": int(nums[5]), "published": published, "publish_s": float(nums[4]) - 6.0, "answered": answered,
            "zeek_missing": missing + waiting, "worker_received": stats["received"], "worker_dropped": stats["dropped"],
            "zeek_peak_mb": zeek_kb / 1024, "worker_peak_mb": worker_kb / 1024}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="5000,20000,40000,80000")
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pkg = package(Path(tmp))
        rows = [flood(pkg, int(r), args.seconds, Path(tmp) / f"r{r}") for r in args.rates.split(",")]
    print("| offered vectors/s | offered | Zeek shed | published | in s | answered | worker dropped | Zeek missing "
          "| Zeek peak MB | worker peak MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['rate']:,} | {r['offered']:,} | {r['shed']:,} | {r['published']:,} | {r['publish_s']:.2f} | "
              f"{r['answered']:,} | "
              f"{r['worker_dropped']:,} | {r['zeek_missing']:,} | {r['zeek_peak_mb']:.0f} | {r['worker_peak_mb']:.0f} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
