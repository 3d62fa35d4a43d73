"""Zero-loss throughput of a live Zeek, plain and with cato packages (CATO's second headline metric).

Each configuration runs a live Zeek (``zeek -i af_packet::IF local [PACKAGE]``) in a private network
namespace (tests/livenet.py) and gets a corpus replayed to it by tcpreplay. For each, the highest
tcpreplay rate with zero loss is searched for, RFC 2544 style: one trial per rate, each held
``--seconds`` long, binary search (geometric) between ``--low`` and ``--high`` until the last pass and
the first fail are within ``--precision``; a failed trial's share of packets Zeek still received
proposes the next rate (MLRsearch's use of the receive rate), and the rate found is confirmed by a
second trial. Zero loss: Zeek's stats.log ``pkts_dropped`` (AF_PACKET ring drops) sums to 0, the
veth lost nothing, the kernel's backlog dropped nothing, Zeek received every packet tcpreplay sent,
tcpreplay sent at the rate asked (at least 98% of it) with no failed packet, and Zeek kept up: its
packet processing never fell more than ``--max-lag`` seconds behind the wall clock (stats.log
``pkt_lag``, a row per second). Zeek's AF_PACKET ring holds 128 MB, which absorbs a 20 s trial's
excess well above the rate Zeek sustains; kept up for longer, that backlog is loss. The lag bound
is a ring holding 2 s: it passes the corpus's bursts (about 1 s of lag in the heaviest stretch,
near Zeek's limit) and fails a sustained overload of about 10%.

Configurations: plain ``local``; ``local`` + the study's ALL@50 baseline package; ``local`` + a front
point's package (the cheapest within ``--within`` F1 of the study's best); each package with the
script engine and with the native engine (``--engines``; ``native-records``: the native engine publishing
records, not compact blocks). A package's worker (``cato serve``) runs beside Zeek in the
namespace. The study is made by ``cato tune`` unless ``--study`` names one that exists.

Traffic: the corpus's captures merged and rewritten into 198.18.0.0/15 (livenet.rewrite); as many
address blocks of it as a trial needs, so that no connection repeats within a trial.

Zeek's inactivity timeouts are set to ``--timeouts`` seconds in every configuration: the corpus is
replayed about a thousand times faster than it was recorded, and with Zeek's defaults (UDP 1 min, TCP
5 min) a 20 s trial would end before most connections are removed, so the vectors most connections
make at their end (and conn.log's rows) would fall outside the measurement.

CPUs: tcpreplay (and the kernel's receive path, which runs on the sender's CPU for a veth) and
``cato serve`` are pinned to ``--gen-cpu``, Zeek to ``--zeek-cpu`` (``--no-pin``: neither); Zeek and
tcpreplay run at ``--nice`` -15 (their own and their session's scheduling group's), so that other
work on a shared machine does not take their cores. A failed trial in which Zeek still waited for its
CPU more than 10% of the time (its own threads alone take about 5%, more when overloaded) while
others used that much of its core is run again.

    PYTHONPATH=. python benchmarks/throughput.py --corpus ../shared/corpora/iot-sentinel \\
        --study /tmp/tp-study --work /tmp/tp-work
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from livenet import (LiveNet, LiveNetError, process_cpu_seconds, rewrite, rewritten_info, unreplayable,  # noqa: E402
                     set_group_nice, wait_idle, zeek_stats)

from cato.deploy.manifest import Manifest  # noqa: E402
from cato.zeek import find_zeek, native_plugin_dir  # noqa: E402

import provenance  # noqa: E402

WEBSOCKET_PORT = 47760  # inside a fresh namespace every port is free
OUT = ROOT / "benchmarks" / "results" / "throughput.json"


@dataclass
class Config:
    name: str
    package: Path | None = None
    engine: str | None = None
    point: str | None = None  # all@50, front
    trial: int | None = None
    f1: float | None = None
    study_cpu_us: float | None = None  # the study's CPU per connection (its cost objective)
    features: int | None = None
    depth: int | None = None
    #: Cato::publish_max_wait of the package, ms (None: its default, 2 ms).
    max_wait_ms: float | None = None
    trials: list[dict] = field(default_factory=list)
    zero_loss_mbps: float | None = None
    common: dict | None = None


# -- study and packages -------------------------------------------------------------------------
def cato(*args: str | Path, capture: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-m", "cato", *map(str, args)], env=env, text=True,
                          capture_output=capture)
    if done.returncode != 0:
        raise SystemExit(f"cato {' '.join(map(str, args))} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def make_packages(args: argparse.Namespace, work: Path) -> list[Config]:
    study = args.study or work / "study"
    if not (study / "study.db").exists():
        print(f"tuning {args.corpus} into {study} (budget {args.budget}) ...", flush=True)
        cato("tune", args.corpus, "--study", study, "--budget", str(args.budget), capture=False)
    report = json.loads(cato("report", study, "--json", "--no-files").stdout)
    all_max = [b for b in report["baselines"] if b.get("name") == args.baseline]
    if not all_max:
        raise SystemExit(f"{study}: no baseline named {args.baseline}")
    points = {"all@50": all_max[0]["trial"]}
    # The front point: `cato compile --pick cheapest-within --within W`, as a user would pick it.
    front = cato("compile", study, "--pick", "cheapest-within", "--within", str(args.within), "-o",
                 work / "probe-pkg")
    shutil.rmtree(work / "probe-pkg", ignore_errors=True)
    points["front"] = int(re.search(r"trial (\d+):", front.stderr).group(1))
    for extra in filter(None, args.extra_trials.split(",")):
        points[f"trial {extra}"] = int(extra)
    measured = {p["trial"]: p for p in report["pareto"] + report["baselines"]}
    configs = [Config("local" if args.deployment == "default" else f"plain {args.deployment}")]
    for point, number in points.items():
        info = measured.get(number) or {}
        for engine in args.engines:
            pkg = work / "packages" / f"{point.replace('@', '').replace(' ', '')}-t{number}-{engine}"
            if not (pkg / "manifest.json").exists():
                shutil.rmtree(pkg, ignore_errors=True)
                print(f"compiling trial {number} ({point}) with the {engine} engine ...", flush=True)
                # "native-records": the native engine, its vectors in the records form (not compact).
                name, _, form = engine.partition("-")
                cato("compile", study, "--trial", str(number), "--engine", name, "-o", pkg,
                     *(["--vector-form", form] if form else []))
            for wait in args.max_waits or [None]:
                configs.append(Config(f"{point} {engine}" + (f" {wait:g}ms" if wait is not None else ""), pkg, engine,
                                      point, number, info.get("f1"), info.get("cpu"),
                                      len(info.get("features", [])) or None, info.get("depth"), wait))
    return configs


#: What Zeek runs beside the packages. ``bare`` keeps only what the measurement reads (conn.log for
#: coverage, stats.log for drops and lag): the packages' own cost, as CATO's pipelines are measured.
DEPLOYMENTS = {"default": ["local"], "bare": ["-b", "base/protocols/conn", "policy/misc/stats"]}


# -- traffic --------------------------------------------------------------------------------------
class Traffic:
    """The corpus merged and rewritten (block 0), and as many more address blocks of it as a trial needs
    (block k: block 0 rewritten again, into the k-th run of addresses). Cached in ``work/traffic``."""

    def __init__(self, corpus: Path, work: Path, max_blocks: int, sample: float, skip_unreplayable: bool = False
                 ) -> None:
        with open(corpus / "labels.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        by_label: dict[str, list[str]] = {}
        for row in rows:
            caps = by_label.setdefault(row["label"], [])
            if row["pcap"] not in caps:
                caps.append(row["pcap"])
        # A stratified subset keeps every class (at least one capture each).
        picked = sorted({p for caps in by_label.values() for p in caps[:max(1, math.ceil(len(caps) * sample))]})
        self.captures = [corpus / p for p in picked]
        if skip_unreplayable:  # (the study and its packages still see every capture)
            why = {c: unreplayable(c) for c in self.captures}
            self.skipped = {str(c): reason for c, reason in why.items() if reason}
            self.captures = [c for c in self.captures if not why[c]]
            print(f"replaying {len(self.captures)} captures; {len(self.skipped)} cannot go onto a veth as they are "
                  "(--skip-unreplayable)", flush=True)
        self.dir = work / "traffic"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_blocks = max_blocks
        self.first = self.dir / "block0.pcap"
        if not self._valid(self.first, [str(c) for c in self.captures], 0):
            for old in self.dir.glob("block*"):
                old.unlink()
            print(f"merging and rewriting {len(self.captures)} captures (address block 0) ...", flush=True)
            rewrite(self.captures, self.first)
        info = rewritten_info(self.first)
        self.packets, self.bytes = info["packets"], info["bytes"]

    @staticmethod
    def _valid(path: Path, sources: list[str], block: int) -> bool:
        try:
            info = rewritten_info(path)
        except (OSError, ValueError):
            return False
        return info["sources"] == sources and info["block"] == block and path.stat().st_size == info["size"]

    def block(self, k: int) -> Path:
        path = self.dir / f"block{k}.pcap"
        if k == 0 or self._valid(path, [str(self.first)], k):
            return self.first if k == 0 else path
        print(f"rewriting address block {k} ...", flush=True)
        return rewrite(self.first, path, block=k)

    def files_for(self, mbps: float, seconds: float) -> list[Path]:
        """Blocks enough for ``seconds`` at ``mbps`` without repeating one (up to max_blocks; past it the
        replay loops over them)."""
        need = math.ceil(mbps * 1e6 / 8 * seconds / self.bytes)
        return [self.block(k) for k in range(min(max(need, 1), self.max_blocks))]


# -- one trial ------------------------------------------------------------------------------------
def _read_log(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    fields: list[str] = []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            values = line.split("\t")
            if len(values) == len(fields):  # a row being written is skipped
                rows.append(dict(zip(fields, values)))
    return rows


def _cpu_busy() -> list[float]:
    """Busy seconds of each CPU so far (/proc/stat: everything but idle and iowait)."""
    tick = os.sysconf("SC_CLK_TCK")
    busy = []
    for line in Path("/proc/stat").read_text().splitlines():
        if re.match(r"cpu\d+ ", line):
            v = [int(x) for x in line.split()[1:]]
            busy.append((sum(v[:8]) - v[3] - v[4]) / tick)
    return busy


def _runqueue_wait(pid: int) -> float:
    """Seconds the main thread of ``pid`` has waited, runnable, for a CPU (/proc/PID/schedstat)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _wait_for(predicate, what: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise LiveNetError(f"{what}: the process exited ({proc.returncode})")
        time.sleep(0.1)
    raise LiveNetError(f"{what}: not within {timeout:.0f}s")


def _listening(net: LiveNet, port: int) -> bool:
    out = subprocess.run(["ip", "netns", "exec", net.name, "cat", "/proc/net/tcp", "/proc/net/tcp6"],
                         capture_output=True, text=True).stdout
    return any(f[1].endswith(f":{port:04X}") and f[3] == "0A" for f in (line.split() for line in out.splitlines()[1:])
               if len(f) > 3)


def run_trial(cfg: Config, mbps: float, args: argparse.Namespace, traffic: Traffic, work: Path, zeek: Path) -> dict:
    logs = work / "runs" / f"{cfg.name.replace(' ', '-').replace('@', '')}-{mbps:.1f}-{len(cfg.trials)}"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    files = traffic.files_for(mbps, args.seconds)
    pin = (lambda cpu: ["taskset", "-c", str(cpu)]) if args.pin else (lambda cpu: [])
    # Zeek and tcpreplay above everything else on this shared machine (others' work on Zeek's core would
    # show as Zeek's lag); cato serve at the ordinary priority.
    nice = ["nice", "-n", str(args.nice)] if args.nice else []
    timeouts = [f"{t}_inactivity_timeout={args.timeouts}sec" for t in ("tcp", "udp", "icmp")] if args.timeouts else []
    # A stats.log row each second: its pkt_lag says how far behind its packets Zeek is.
    argv = [*nice, *pin(args.zeek_cpu), zeek, "-i", "af_packet::" + LiveNet.capture_iface,
            *DEPLOYMENTS[args.deployment], *timeouts, "Stats::report_interval=1sec"]
    env = dict(os.environ)
    if cfg.package:
        argv += [cfg.package / "scripts", f"Cato::websocket_port={WEBSOCKET_PORT}/tcp"]
        if cfg.max_wait_ms is not None:  # in the package's own module
            module = Manifest.read(cfg.package).module
            argv.append(f"{module}::publish_max_wait={cfg.max_wait_ms:g}msec")
        if cfg.engine.startswith("native"):
            plugin = native_plugin_dir()
            if plugin is None:
                raise SystemExit("the native engine needs cato's plugin built (make plugin)")
            env["ZEEK_PLUGIN_PATH"] = str(plugin)
    record: dict = {"config": cfg.name, "mbps_asked": round(mbps, 2), "seconds": args.seconds, "logs": str(logs),
                    "loadavg_before": os.getloadavg()[0]}
    with LiveNet() as net:
        with open(logs / "zeek.stderr", "w") as err:
            z = net.popen(argv, cwd=logs, stdout=err, stderr=err, env=env)
        if args.nice:
            set_group_nice(z.pid, args.nice)
        net.wait_capturing(z)
        worker = None
        if cfg.package:
            _wait_for(lambda: _listening(net, WEBSOCKET_PORT), "Zeek's WebSocket listener", 60, z)
            with open(logs / "worker.stderr", "w") as werr:
                worker = net.popen([*pin(args.gen_cpu), sys.executable, "-m", "cato", "serve", cfg.package,
                                    "--url", f"ws://127.0.0.1:{WEBSOCKET_PORT}"], stdout=werr, stderr=werr,
                                   env=dict(env, PYTHONPATH=str(ROOT)))
            _wait_for(lambda: "connected to Zeek" in (logs / "worker.stderr").read_text(), "cato serve connecting",
                      120, worker)
        wait_idle(z)  # start-up done: the CPU measured from here is the traffic's
        cpu0, busy0, t0 = process_cpu_seconds(z.pid), _cpu_busy(), time.monotonic()
        wait0 = _runqueue_wait(z.pid)
        sent = net.replay(files, mbps=mbps, loop=0, duration=args.seconds, cpu=args.gen_cpu if args.pin else None,
                          nice=args.nice or None, timer="nano", timeout=args.seconds * 4 + 60)
        record["busy_after_s"] = round(wait_idle(z, timeout=600), 2)  # ring read, connections removed
        cpu1, busy1, t1 = process_cpu_seconds(z.pid), _cpu_busy(), time.monotonic()
        # Time Zeek's main thread was ready to run but had no CPU: others' work (or Zeek's own threads).
        record["zeek_waited_s"] = round(_runqueue_wait(z.pid) - wait0, 3)
        snapshot: set[str] = set()
        if cfg.package:
            # Connections time out, are removed and decided; their verdicts come back. conn.log as it is
            # now holds the connections decided before shutdown (those removed at shutdown get no verdict).
            time.sleep(args.timeouts + 3 if args.timeouts else 3)
            snapshot = {r["uid"] for r in _read_log(logs / "conn.log") if r["proto"] in ("tcp", "udp")}
            time.sleep(1.5)
        z.send_signal(signal.SIGTERM)
        z.wait(timeout=300)
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        drops = net.drops(logs, sent["packets"])
    # How far behind the wall clock Zeek's packet processing fell, at most (its ring holds 128 MB, so a
    # trial can end before a Zeek that cannot keep up drops anything).
    record["lag_s"] = round(zeek_stats(logs)["max_pkt_lag"], 3)
    record.update({
        "sent_packets": sent["packets"], "sent_mbps": sent["mbps"], "sent_pps": sent["pps"],
        "sent_seconds": sent["seconds"], "replay_failed": sent["failed"], "files": len(files),
        "drops": asdict(drops), "zeek_returncode": z.returncode,
        "zeek_cpu_s": round(cpu1 - cpu0, 3), "window_s": round(t1 - t0, 2),
        "zeek_cpu_per_s": round((cpu1 - cpu0) / max(sent["seconds"], 1e-9), 3),
        "cpu_busy_s": [round(b1 - b0, 2) for b0, b1 in zip(busy0, busy1)],
    })
    if args.pin:
        # CPU time others took on Zeek's CPU meanwhile, some of it while Zeek had no work (the machine is shared).
        record["others_on_zeek_cpu_s"] = round(record["cpu_busy_s"][args.zeek_cpu] - record["zeek_cpu_s"], 2)
    generator_ok = sent["failed"] == 0 and sent["mbps"] >= 0.98 * mbps
    record["generator_ok"] = generator_ok
    record["kept_up"] = record["lag_s"] <= args.max_lag
    record["zero_loss"] = generator_ok and record["kept_up"] and drops.total == 0 and z.returncode == 0
    if cfg.package:
        conns = [r for r in _read_log(logs / "conn.log") if r["proto"] in ("tcp", "udp")]
        verdicts = _read_log(logs / "cato_verdict.log")
        answered = {v["uid"] for v in verdicts}
        lat = sorted(float(v["latency"]) * 1000 for v in verdicts if v.get("latency", "-") != "-")
        worker_summary = re.findall(r"received \d+, scored \d+, dropped \d+.*", (logs / "worker.stderr").read_text())
        record.update({
            "connections": len(conns), "connections_decided_before_shutdown": len(snapshot),
            "verdicts": len(verdicts),
            "coverage": round(len(snapshot & answered) / len(snapshot), 4) if snapshot else None,
            "coverage_all": round(len({c["uid"] for c in conns} & answered) / len(conns), 4) if conns else None,
            "latency_ms_p50": round(statistics.median(lat), 2) if lat else None,
            "latency_ms_p99": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 2) if lat else None,
            "worker": worker_summary[-1] if worker_summary else None,
        })
    if not args.keep_logs:
        for big in ("conn.log", "cato_verdict.log", "files.log", "dns.log", "ssl.log", "x509.log", "http.log"):
            (logs / big).unlink(missing_ok=True)
    return record


# -- the search -----------------------------------------------------------------------------------
def search(cfg: Config, args: argparse.Namespace, trial, save) -> None:
    """Sets ``cfg.zero_loss_mbps``: the highest rate that passed, confirmed by a second pass (0: none did)."""
    def run(mbps: float) -> dict:
        for _ in range(3):
            rec = trial(cfg, mbps)
            cfg.trials.append(rec)
            # A failure while something else ran on Zeek's CPU is not Zeek's: measured again.
            # (Zeek also waits for its own threads, more so when overloaded: others must have run too.)
            limit = args.max_disturbance * rec["window_s"]
            rec["disturbed"] = (not rec["zero_loss"] and rec["zeek_waited_s"] > limit
                                and rec.get("others_on_zeek_cpu_s", 0) > limit)
            d = rec["drops"]
            print(f"  {cfg.name:16s} {mbps:7.1f} Mbps asked, {rec['sent_mbps']:7.1f} sent: "
                  f"{'PASS' if rec['zero_loss'] else 'fail'} (ring {d['zeek']}, unseen {d['unseen']}, veth "
                  f"{d['interfaces']}, softnet {d['softnet']}; lag {rec['lag_s']} s; Zeek "
                  f"{rec['zeek_cpu_per_s']:.2f} CPU s/s"
                  + (f"; coverage {rec['coverage']}, p99 {rec['latency_ms_p99']} ms" if cfg.package else "") + ")"
                  + (f" disturbed: Zeek waited {rec['zeek_waited_s']} s for its CPU; again"
                     if rec["disturbed"] else ""), flush=True)
            save()
            if not rec["disturbed"]:
                break
        return rec

    def capacity_guess(rec: dict) -> float:
        # What an overloaded Zeek still took estimates what it can take (MLRsearch's use of the receive
        # rate): the share of packets it received, and one CPU second per second over what it used.
        received = 1 - max(rec["drops"]["unseen"], 0) / max(rec["sent_packets"], 1)
        cpu_share = 1 / max(rec["zeek_cpu_per_s"], 1.0)
        return rec["sent_mbps"] * min(received, cpu_share) * 0.97

    passed, failed = 0.0, math.inf
    rate = args.start
    while sum(not t.get("disturbed") for t in cfg.trials) < args.max_trials:
        rec = run(rate)
        if rec["zero_loss"]:
            passed = rate
        else:
            failed = rate
        if passed >= args.high or failed <= args.low or failed <= passed * (1 + args.precision):
            break
        if failed == math.inf:
            rate = min(args.high, rate * 2)
            continue
        # Nothing passed yet: down by steps of 0.7, not halfway (in log) to --low.
        mid = math.sqrt(passed * failed) if passed else failed * 0.7
        guess = capacity_guess(rec) if not rec["zero_loss"] else mid
        lo_edge = max(passed, args.low / (1 + args.precision)) * (1 + args.precision)
        rate = guess if lo_edge < guess < failed / (1 + args.precision) else mid
        rate = max(rate, args.low)
    # Confirm: the rate found must pass a second time; a failed confirmation lowers it one step.
    for _ in range(3):
        if passed <= 0 or run(passed)["zero_loss"]:
            break
        passed = passed / (1 + args.precision) if passed / (1 + args.precision) >= args.low else 0.0
    cfg.zero_loss_mbps = round(passed, 1)


#: Where the traffic went, as every result file says.
NETWORK = ("live traffic only inside an `ip netns` of the benchmark's own (veth pair inside it, no route out), "
           "addresses rewritten into 198.18.0.0/15 (tests/livenet.py)")


# -- report ---------------------------------------------------------------------------------------
def zero_loss_trial(cfg: Config) -> dict | None:
    ok = [t for t in cfg.trials if t["zero_loss"] and cfg.zero_loss_mbps and
          abs(t["mbps_asked"] - cfg.zero_loss_mbps) < 0.01 * cfg.zero_loss_mbps + 0.06]
    return ok[-1] if ok else None


def table(configs: list[Config], common_mbps: float | None) -> list[dict]:
    plain = next((c.zero_loss_mbps for c in configs if c.package is None), None) or math.nan
    rows = []
    for c in configs:
        zl = zero_loss_trial(c)
        base = next((b for b in configs if b.point == "all@50" and b.engine == c.engine), None)
        rows.append({
            "config": c.name, "trial": c.trial, "f1": c.f1, "study_cpu_us": c.study_cpu_us,
            "zero_loss_mbps": c.zero_loss_mbps,
            "zero_loss_kpps": round(zl["sent_pps"] / 1000, 1) if zl else None,
            # Unrounded: the table rounds once (61.2 / 72.4 prints 0.85x, its round(.., 3), 0.845, 0.84x).
            "vs_local": (c.zero_loss_mbps / plain
                         if c.zero_loss_mbps is not None and not math.isnan(plain) else None),
            "vs_all50": (c.zero_loss_mbps / base.zero_loss_mbps
                         if c.point not in (None, "all@50") and c.zero_loss_mbps is not None and base
                         and base.zero_loss_mbps else None),
            "zeek_cpu_at_common": c.common["zeek_cpu_per_s"] if c.common else None,
            "common_zero_loss": c.common["zero_loss"] if c.common else None,
            "coverage": zl.get("coverage") if zl else None,
            "latency_ms_p99": zl.get("latency_ms_p99") if zl else None,
        })
    return rows


def _label(c: Config, first: bool) -> str:
    """A configuration as RESULTS.md names it; the first row of a point also gives its study figures."""
    if c.package is None:
        return f"plain `{c.name.removeprefix('plain ')}`"
    short = (c.point.upper() if c.point.startswith("all@") else "front point" if c.point == "front"
             else f"{c.features} features @{c.depth}")
    if first:
        short += (f", {c.features} features @{c.depth}" if c.point == "front" else "") + \
            f" ({c.f1:.3f}; {c.study_cpu_us:.0f})"
    return f"{short}, {c.engine}" + (f", max wait {c.max_wait_ms:g} ms" if c.max_wait_ms is not None else "")


def markdown(runs: list[dict]) -> str:
    """RESULTS.md's table of runs (results files, as ``main`` saves them): each figure of the first run, then
    of the later runs that measured it too, after a slash (one figure where they print alike)."""
    configs = [[Config(**c) for c in run["configs"]] for run in runs]
    rows = [{r["config"]: r for r in table(cs, run["common_mbps"])} for cs, run in zip(configs, runs)]
    common = runs[0]["common_mbps"]
    plain = next((c.name.removeprefix("plain ") for c in configs[0] if c.package is None), "local")
    each_run = f", run {' / '.join(str(i + 1) for i in range(len(runs)))}" if len(runs) > 1 else ""

    def cell(name: str, key: str, template: str) -> str:
        figures = [template.format(r[name][key]) for r in rows if name in r and r[name][key] is not None]
        return " / ".join(dict.fromkeys(figures)) or "–"  # dict.fromkeys: each figure once, in run order

    lines = [f"| configuration (study F1; CPU µs/conn) | zero-loss Mbps{each_run} | × `{plain}` | × ALL@50, same engine "
             f"| Zeek CPU s per s at {common or '?'} Mbps{each_run} | coverage; verdict p99 ms |",
             "|---|---|---|---|---|---|"]
    points: set[str | None] = set()
    for c in configs[0]:
        first = rows[0][c.name]
        loss = "" if first["common_zero_loss"] in (None, True) else " (loss)"
        verdicts = ("–" if first["coverage"] is None else
                    f"{first['coverage']:.3f}; " + ("–" if first["latency_ms_p99"] is None
                                                     else f"{first['latency_ms_p99']:.0f}"))
        lines.append(f"| {_label(c, c.point not in points)} | {cell(c.name, 'zero_loss_mbps', '{:.1f}')} | "
                     f"{cell(c.name, 'vs_local', '{:.2f}x')} | {cell(c.name, 'vs_all50', '{:.2f}x')} | "
                     f"{cell(c.name, 'zeek_cpu_at_common', '{:.2f}')}{loss} | {verdicts} |")
        points.add(c.point)
    return "\n".join(lines)


#: RESULTS.md's tables of this benchmark: block name -> results file (``--json``).
RESULTS_BLOCKS = {"throughput": OUT.name}


def results_tables(results: Path) -> dict[str, str]:
    """This benchmark's RESULTS.md tables, by block name, from its results files under ``results``."""
    tables = {}
    for block, name in RESULTS_BLOCKS.items():
        data = provenance.load(name, results)
        tables[block] = (f"Measured {provenance.measured(name, results=results)}.\n\n"
                         + markdown([data, *([data["repeat"]] if "repeat" in data else [])]))
    return tables


def _first_line(argv: list) -> str:
    done = subprocess.run(list(map(str, argv)), capture_output=True, text=True)
    return (done.stdout + done.stderr).strip().splitlines()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpora" / "iot-sentinel")
    ap.add_argument("--study", type=Path, help="an existing study directory (else one is tuned into --work)")
    ap.add_argument("--budget", type=int, default=20, help="cato tune's budget when the study is made here")
    ap.add_argument("--deployment", choices=tuple(DEPLOYMENTS), default="default",
                    help="Zeek's own scripts beside the packages: local (default), or bare (zeek -b, conn and stats logs)")
    ap.add_argument("--skip-unreplayable", action="store_true",
                    help="replay only the captures that fit a veth as they are (Ethernet, IPv4, frames within the MTU)")
    ap.add_argument("--baseline", default="all@50", help="the study's baseline compared against")
    ap.add_argument("--within", type=float, default=0.02, help="the front point: cheapest within this F1 of the best")
    ap.add_argument("--engines", default="script,native", type=lambda s: s.split(","),
                    help="script, native (compact form), native-records (the native engine, records form)")
    ap.add_argument("--only", action="append", help="run only configurations with this name (repeatable)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/cato-throughput"))
    ap.add_argument("--sample", type=float, default=1.0, help="share of each class's captures replayed")
    ap.add_argument("--seconds", type=float, default=20.0, help="how long each trial rate is held")
    ap.add_argument("--timeouts", type=int, default=5, help="Zeek's TCP/UDP/ICMP inactivity timeouts, s (0: Zeek's)")
    ap.add_argument("--max-lag", type=float, default=2.0, help="a trial passes only if Zeek's packet processing "
                    "never fell this many seconds behind (a growing backlog is loss in a longer run)")
    ap.add_argument("--start", type=float, default=50.0, help="first rate tried, Mbps")
    ap.add_argument("--low", type=float, default=2.0, help="lowest rate tried, Mbps")
    ap.add_argument("--high", type=float, default=400.0, help="highest rate tried, Mbps")
    ap.add_argument("--precision", type=float, default=0.05, help="search until pass and fail are this close")
    ap.add_argument("--max-trials", type=int, default=9, help="search trials per configuration, at most")
    ap.add_argument("--common-rate", type=float, help="rate at which Zeek's CPU is compared (default: 80%% of the "
                    "lowest zero-loss rate)")
    ap.add_argument("--max-disturbance", type=float, default=0.1, help="a failed trial is run again when Zeek "
                    "waited for its CPU more than this share of the time")
    ap.add_argument("--max-waits", type=lambda s: [float(w) for w in s.split(",")],
                    help="each package also with these Cato::publish_max_wait, ms (comma-separated; default: its own)")
    ap.add_argument("--extra-trials", default="", help="more study trials to compile and measure (comma-separated)")
    ap.add_argument("--max-blocks", type=int, default=40, help="address blocks of the corpus, at most")
    ap.add_argument("--gen-cpu", type=int, default=0)
    ap.add_argument("--zeek-cpu", type=int, default=1)
    ap.add_argument("--no-pin", dest="pin", action="store_false")
    ap.add_argument("--nice", type=int, default=-15, help="priority of Zeek and tcpreplay (0: unchanged)")
    ap.add_argument("--keep-logs", action="store_true")
    ap.add_argument("--json", type=Path, default=OUT)
    ap.add_argument("--resume", action="store_true", help="keep the searches --json already holds (same "
                    "configuration names); run the others and the common-rate trials")
    args = ap.parse_args()
    # A SIGTERM (or SIGINT, which a background job ignores) ends the run through the LiveNets' cleanup.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    zeek = find_zeek()

    configs = make_packages(args, work)
    if args.only:
        configs = [c for c in configs if c.name in args.only]
    traffic = Traffic(args.corpus, work, args.max_blocks, args.sample, args.skip_unreplayable)
    packets, nbytes = traffic.packets, traffic.bytes
    meta = {
        "network": NETWORK,
        **provenance.stamp(zeek=_first_line([zeek, "--version"]), tcpreplay=_first_line(["tcpreplay", "-V"])),
        "corpus": str(args.corpus), "captures": len(traffic.captures),
        "skipped_captures": getattr(traffic, "skipped", {}), "packets_per_block": packets,
        "bytes_per_block": nbytes,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    common: list[float] = []

    def results() -> dict:
        return {**meta, "common_mbps": common[0] if common else None,
                "table": table(configs, common[0] if common else None),
                "configs": [{**{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(c).items()}}
                            for c in configs]}

    def save() -> None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results(), indent=1) + "\n")

    trial = lambda cfg, mbps: run_trial(cfg, mbps, args, traffic, work, zeek)  # noqa: E731
    if args.resume and args.json.exists():
        done = {c["name"]: c for c in json.loads(args.json.read_text())["configs"] if c["zero_loss_mbps"] is not None}
        for cfg in configs:
            if cfg.name in done:
                cfg.trials, cfg.zero_loss_mbps = done[cfg.name]["trials"], done[cfg.name]["zero_loss_mbps"]
                print(f"{cfg.name}: {cfg.zero_loss_mbps} Mbps, from {args.json}", flush=True)
    for cfg in configs:
        if cfg.zero_loss_mbps is not None:
            continue
        print(f"{cfg.name}: searching the zero-loss rate ({args.seconds:g} s per trial)", flush=True)
        search(cfg, args, trial, save)
        save()
    found = [c.zero_loss_mbps for c in configs if c.zero_loss_mbps]
    common.append(args.common_rate or (round(0.8 * min(found), 1) if found else args.low))
    for cfg in configs:
        cfg.common = run_trial(cfg, common[0], args, traffic, work, zeek)
        print(f"  {cfg.name}: at {common[0]} Mbps Zeek uses {cfg.common['zeek_cpu_per_s']:.2f} CPU s/s "
              f"({'no loss' if cfg.common['zero_loss'] else 'LOSS'})", flush=True)
        save()
    print("\n" + markdown([results()]))
    print(f"\nraw: {args.json}")


if __name__ == "__main__":
    main()
