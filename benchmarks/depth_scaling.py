"""Cost against depth and flow length: does a generated script do work past packet N?

Synthesises two corpora of the same 300 TCP connections (tests/btest/Traces/make_traces.py's
conversation), one with 100-packet flows and one with 1,000-packet flows, and measures Zeek CPU
(user+sys, median of --repeat runs) with each strategy at several depths, against bare `zeek -b`.
The marginal cost per connection should not grow with flow length past the depth.

    python benchmarks/depth_scaling.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import dpkt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "btest" / "Traces"))
import make_traces  # noqa: E402

from cato.codegen import generate  # noqa: E402
from cato.features import resolve  # noqa: E402
from cato.zeek import find_zeek, static_load_script  # noqa: E402
from cato.zeek.profiling import zeek_cpu  # noqa: E402

SELECTIONS = {"5 per-packet": "orig_size_mean,resp_size_mean,flow_iat_mean,orig_syn_cnt,tcp_rtt", "all 97": "all,-needs:analyzer"}


def synth(path: Path, conns: int, rounds: int) -> int:
    packets = []
    for i in range(conns):
        packets += make_traces.tcp_conversation(1_700_000_000.0 + i * 0.05, "10.0.%d.%d" % (i // 200, i % 200 + 2),
                                                "93.184.216.34", 20000 + i, rounds=rounds, gap=0.001)
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
        for ts, frame in sorted(packets, key=lambda p: p[0]):
            w.writepkt(frame, ts=ts)
    return len(packets)


def cpu(pcap: Path, scripts: list[Path], work: Path, repeat: int, zeek: Path) -> float:
    runs = [zeek_cpu([pcap], scripts, work / str(r), zeek=zeek) for r in range(repeat)]
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--conns", type=int, default=300)
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "depth_scaling.json")
    args = ap.parse_args()
    zeek = find_zeek()
    rows = []
    with tempfile.TemporaryDirectory(prefix="cato-depth-") as t:
        tmp = Path(t)
        corpora = {}
        for label, rounds in (("100-packet flows", 48), ("1000-packet flows", 498)):
            p = tmp / f"{rounds}.pcap"
            corpora[label] = (p, synth(p, args.conns, rounds))
        for label, (pcap, npkts) in corpora.items():
            base = cpu(pcap, [], tmp / "base", args.repeat, zeek)
            rows.append({"flows": label, "config": "bare zeek -b", "cpu_s": base, "packets": npkts})
            confs = [("flowmeter-style (all, whole flows)", generate(resolve("all,-needs:analyzer"), [10**9], "new_packet"))]
            for sel_name, sel in SELECTIONS.items():
                for depth in (1, 10, 50):
                    for strat in ("new_packet", "thresholds"):
                        confs.append((f"{sel_name} @{depth} {strat}", generate(resolve(sel), [depth], strat)))
            for name, script in confs:
                path = tmp / "gen.zeek"
                path.write_text(script.text)
                c = cpu(pcap, [static_load_script(), path], tmp / "run", args.repeat, zeek)
                rows.append({"flows": label, "config": name, "cpu_s": c, "packets": npkts,
                             "ratio": c / base, "marginal_us_per_conn": (c - base) / args.conns * 1e6})
                print(f"{label:18s} {name:40s} {c:7.3f}s {c / base:6.2f}x", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1))
    labels = list(dict.fromkeys(r["flows"] for r in rows))
    print("\n| configuration | " + " | ".join(f"{lab}: CPU s (×bare; marginal µs/conn)" for lab in labels) + " |")
    print("|---|" + "---|" * len(labels))
    for name in dict.fromkeys(r["config"] for r in rows):
        cells = []
        for lab in labels:
            r = next(x for x in rows if x["flows"] == lab and x["config"] == name)
            cells.append(f"{r['cpu_s']:.2f}" + (f" ({r['ratio']:.2f}x; {r['marginal_us_per_conn']:.0f})" if "ratio" in r else ""))
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
