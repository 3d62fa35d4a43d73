"""The cost of every catalog feature alone, at several depths, on each corpus (`cato profile` figures).

    python benchmarks/feature_costs.py --corpus ../shared/corpora/iot-sentinel \
        --corpus ../shared/corpora/ndpi [--depths 1,10,50] [--repeat 1]

Whole-process Zeek CPU with the feature's generated script against bare `zeek -b` (the baseline is
measured once per corpus), marginal CPU per connection, and time-to-decision. Results go to
benchmarks/results/feature_costs.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cato.codegen import generate
from cato.corpus import load_corpus
from cato.features import resolve
from cato.zeek.profiling import profile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", action="append", type=Path, required=True)
    ap.add_argument("--depths", default="1,10,50")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--features", default="all", help="Subset of the catalog to measure.")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "feature_costs.json")
    args = ap.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    feats = resolve(args.features)
    out: dict = {"depths": depths, "repeat": args.repeat, "corpora": {}}
    for corpus_dir in args.corpus:
        corpus = load_corpus(corpus_dir)
        rows = []
        for f in feats:
            for d in depths:
                r = profile(corpus, generate([f], [d]), repeat=args.repeat, attribute=False)
                rows.append({"feature": f.name, "group": f.group, "depth": d, "strategy": r.strategy,
                             "cpu_ratio": r.cpu_ratio, "marginal_cpu_us_per_conn": r.marginal_cpu_us_per_conn,
                             "ttd_p50_ms": r.time_to_decision_ms["p50"], "ttd_p95_ms": r.time_to_decision_ms["p95"],
                             "connections": r.connections, "baseline_cpu_s": r.baseline_cpu_s})
                print(f"{corpus_dir.name:14s} {f.name:18s} @{d:<3d} {r.strategy:10s} {r.cpu_ratio:5.2f}x "
                      f"{r.marginal_cpu_us_per_conn:8.2f} µs/conn", flush=True)
        out["corpora"][corpus_dir.name] = rows
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    names = list(out["corpora"])
    header = "| feature | " + " | ".join(f"{n} @{d}" for n in names for d in depths) + " |"
    print("\nCPU ratio against bare zeek -b (marginal µs per connection)\n")
    print(header)
    print("|---|" + "---|" * (len(names) * len(depths)))
    for f in feats:
        cells = []
        for n in names:
            for d in depths:
                r = next(x for x in out["corpora"][n] if x["feature"] == f.name and x["depth"] == d)
                cells.append(f"{r['cpu_ratio']:.2f}x ({r['marginal_cpu_us_per_conn']:.1f})")
        print(f"| {f.name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
