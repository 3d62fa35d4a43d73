"""Time-to-decision with and without a decision deadline, on the front `cato tune` finds.

For each corpus and seed: two studies on macro-F1 and mean time-to-decision (``--cost latency``), one
searching feature subset x depth x model, one also searching the decision deadline T (1 ms .. the
corpus's span, or none). Reports each front (F1 against mean time-to-decision, with T), and for the
point of least mean time-to-decision within 0.01 macro-F1 of ALL@max (F1 averaged over model seeds,
as the study does) its mean and p95 time-to-decision and its CPU against ALL@max's.

Then a sweep that tells what limits it: ALL@max's own features, depth and model at deadlines from
10 s down to 1 ms (F1 from the derived vectors, time-to-decision and CPU measured in Zeek).

Studies live in --studies (resumable: run the script again after an interruption).

    python benchmarks/deadline_tune.py --corpus ../shared/corpora/iot-sentinel --corpus ../shared/corpora/ndpi \
        --seed 0 --seed 1 --budget 30
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from cato.cache import default_cache_dir
from cato.corpus import load_corpus
from cato.dataset import load_dataset
from cato.search.objectives import F1_TOLERANCE
from cato.study import Study, StudySettings, best_within, run_study

ROOT = Path(__file__).resolve().parent
OBJECTIVES = ("f1", "latency")
SWEEP_S = (10.0, 3.0, 1.0, 0.3, 0.1, 0.03, 0.01, 0.001)
#: Zeek's shortest wait between a connection's last packet and its removal (tcp_close_delay and
#: tcp_reset_delay; UDP and ICMP wait a minute of inactivity, TCP otherwise five).
SHORTEST_REMOVAL_S = 5.0


def run_one(corpus_path: Path, seed: int, deadline_search: bool, budget: int, studies: Path) -> tuple[Study, float]:
    name = f"{corpus_path.resolve().name}-{'deadline' if deadline_search else 'depth'}-s{seed}"
    settings = StudySettings(str(corpus_path.resolve()), objectives=OBJECTIVES, seed=seed,
                             deadline_search=deadline_search)
    directory = studies / name
    study = Study.open(directory, settings, resume=(directory / "study.db").exists())
    if len(study.trials("search")) >= budget:
        return study, sum(t.details.get("eval_s", 0) + t.details.get("bo_overhead_s", 0) for t in study.trials())
    corpus = load_corpus(corpus_path)
    dataset = load_dataset(corpus, study.settings.max_depth, default_cache_dir())
    t0 = time.perf_counter()
    run_study(study, dataset, study.evaluator(corpus, dataset), budget,
              lambda msg, n, total, front: print(f"\r{name}: {n}/{total} {msg[:60]:60}", end="", file=sys.stderr))
    print(file=sys.stderr)
    return study, time.perf_counter() - t0


def _point(t) -> dict:
    ttd = t.details["time_to_decision_ms"]
    return {"trial": t.number, "name": t.name, "features": len(t.config.features), "depth": t.config.depth,
            "deadline_s": t.config.deadline, "model": str(t.config.model), "f1": t.values["f1"],
            "latency_ms": t.values["latency"], "ttd_mean_ms": ttd["mean"], "ttd_p95_ms": ttd["p95"],
            "ttd_max_ms": ttd.get("max"), "cpu_us": t.details["baseline_steady_cpu_us_per_conn"]
            + max(t.details["marginal_cpu_us_per_conn"], 0.0)}


def summarize(study: Study, elapsed: float) -> dict:
    all_max = next(t for t in study.trials("baseline") if t.name == f"all@{study.settings.max_depth}")
    search = study.trials("search")
    out = {"trials": len(search), "wall_s": elapsed, "all_max": _point(all_max),
           "front": [_point(t) for t in study.pareto()]}
    match = best_within(search, all_max.values["f1"])
    if match is not None:
        m, a = _point(match), out["all_max"]
        out["within_tolerance"] = {**m, "ttd_mean_ratio": a["ttd_mean_ms"] / max(m["ttd_mean_ms"], 1e-9),
                                   "ttd_p95_ratio": a["ttd_p95_ms"] / max(m["ttd_p95_ms"], 1e-9),
                                   "cpu_ratio": a["cpu_us"] / m["cpu_us"]}
    return out


def removal_bound(dataset, depth: int) -> dict:
    """Time-to-decision without a deadline as a live Zeek delivers it, at the least: a vector of a
    connection that ends before ``depth`` comes when Zeek removes the connection, at least
    SHORTEST_REMOVAL_S after its last packet (the study counts it at the last packet)."""
    after_ms = dataset.decided_after_us(depth) / 1e3
    ended = ~dataset.reached(depth)
    live = after_ms + ended * SHORTEST_REMOVAL_S * 1e3
    return {"ended_before_depth": float(ended.mean()), "at_last_packet_mean_ms": float(after_ms.mean()),
            "at_last_packet_p95_ms": float(np.percentile(after_ms, 95)), "removal_bound_mean_ms": float(live.mean()),
            "removal_bound_p95_ms": float(np.percentile(live, 95))}


def sweep(study: Study) -> list[dict]:
    """ALL@max's configuration at each deadline of SWEEP_S: F1, time-to-decision and CPU."""
    from dataclasses import replace
    corpus = study.settings.load_corpus()
    dataset = load_dataset(corpus, study.settings.max_depth, default_cache_dir())
    evaluator = study.evaluator(corpus, dataset)
    all_max = next(t for t in study.trials("baseline") if t.name == f"all@{study.settings.max_depth}")
    rows = [{"deadline_s": None, **_point(all_max), **removal_bound(dataset, all_max.config.depth)}]
    for deadline in SWEEP_S:
        config = replace(all_max.config, deadline=deadline)
        values, details = evaluator.evaluate(config)
        ttd = details["time_to_decision_ms"]
        rows.append({"deadline_s": deadline, "f1": values["f1"], "ttd_mean_ms": ttd["mean"], "ttd_p95_ms": ttd["p95"],
                     "cpu_us": details["baseline_steady_cpu_us_per_conn"] + max(details["marginal_cpu_us_per_conn"], 0)})
        print(f"sweep {Path(study.settings.corpus).name} T={deadline}: F1 {values['f1']:.3f}", file=sys.stderr)
    return rows


def best_by_wait(front: list[dict], waits_ms=(float("inf"), 1000, 300, 30)) -> list[str]:
    """The most accurate front point of each mean time-to-decision bound: "F1 (T)"."""
    out = []
    for w in waits_ms:
        ok = [p for p in front if p["ttd_mean_ms"] <= w]
        best = max(ok, key=lambda p: p["f1"], default=None)
        t = "none" if best is None or best["deadline_s"] is None else f"{best['deadline_s'] * 1e3:g} ms"
        out.append("–" if best is None else f"{best['f1']:.3f} ({best['features']} @{best['depth']}, T {t})")
    return out


def tables(results: dict) -> str:
    """RESULTS.md tables from the JSON."""
    lines = ["| corpus, seed | search | best F1 | mean time-to-decision ≤ 1 s | ≤ 300 ms | ≤ 30 ms |",
             "|---|---|---|---|---|---|"]
    for corpus, entry in results.items():
        for run, r in sorted(entry["runs"].items(), key=lambda kv: (kv[0].split("-s")[1], kv[0])):
            front = [p for p in r["front"] if p["name"] is None]  # the search's own points
            lines.append(f"| {corpus}, {run.split('-s')[1]} | {run.split('-s')[0]} | " + " | ".join(best_by_wait(front)) + " |")
    lines += ["", "| corpus, seed | search | point within 0.01 F1 of ALL@50 | F1 | mean / p95 time-to-decision ms "
              "| × lower mean / p95 | CPU µs/conn (× lower) |", "|---|---|---|---|---|---|---|"]
    for corpus, entry in results.items():
        for run, r in sorted(entry["runs"].items(), key=lambda kv: (kv[0].split("-s")[1], kv[0])):
            a, w = r["all_max"], r.get("within_tolerance")
            head = f"| {corpus}, {run.split('-s')[1]} | {run.split('-s')[0]} |"
            if not w or w["name"]:
                lines.append(f"{head} none (ALL@50: F1 {a['f1']:.3f}) | | | | |")
                continue
            t = "" if w["deadline_s"] is None else f", T {w['deadline_s'] * 1e3:g} ms"
            ratio = lambda x: "∞ (first packet)" if x > 1e6 else f"{x:.1f}x"  # noqa: E731
            lines.append(f"{head} {w['features']} @{w['depth']}{t}, {w['model']} | {w['f1']:.3f} (ALL@50 {a['f1']:.3f}) | "
                         f"{w['ttd_mean_ms']:,.1f} / {w['ttd_p95_ms']:,.1f} | {ratio(w['ttd_mean_ratio'])} / "
                         f"{ratio(w['ttd_p95_ratio'])} | {w['cpu_us']:.1f} ({w['cpu_ratio']:.1f}x) |")
    for corpus, entry in results.items():
        if "sweep_all_max" not in entry:
            continue
        lines += ["", f"ALL@50 at a deadline, {corpus} (seed {entry.get('sweep_seed', '?')}):", "",
                  "| deadline | F1 | mean / p95 time-to-decision ms | CPU µs/conn |", "|---|---|---|---|"]
        for row in entry["sweep_all_max"]:
            t = "none" if row["deadline_s"] is None else f"{row['deadline_s'] * 1e3:g} ms"
            lines.append(f"| {t} | {row['f1']:.3f} | {row['ttd_mean_ms']:,.1f} / {row['ttd_p95_ms']:,.1f} | "
                         f"{row['cpu_us']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, action="append", required=True)
    ap.add_argument("--seed", type=int, action="append")
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--studies", type=Path, default=Path("deadline-studies"))
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "deadline_tune.json")
    ap.add_argument("--tables", action="store_true", help="Print the RESULTS.md tables of --out and stop.")
    args = ap.parse_args()
    if args.tables:
        print(tables(json.loads(args.out.read_text())))
        return
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for corpus in args.corpus:
        name = corpus.resolve().name
        entry = results.setdefault(name, {"tolerance": F1_TOLERANCE, "runs": {}})
        for seed in args.seed or [0]:
            for searched in (True, False):
                study, elapsed = run_one(corpus, seed, searched, args.budget, args.studies)
                entry["runs"][f"{'deadline' if searched else 'depth'}-s{seed}"] = summarize(study, elapsed)
                args.out.write_text(json.dumps(results, indent=1))
        if not args.no_sweep:
            entry["sweep_all_max"] = sweep(study)
            entry["sweep_seed"] = study.settings.seed
            args.out.write_text(json.dumps(results, indent=1))
    print(tables(results))


if __name__ == "__main__":
    main()
