"""Time-to-decision with and without a decision deadline, on the front `cato tune` finds.

For each corpus and seed: two studies on macro-F1 and mean time-to-decision (``--cost latency``), one
searching feature subset x depth x model, one also searching the decision deadline T (1 ms .. the
corpus's span, or none). Reports each front (F1 against mean time-to-decision, with T), and for the
point of least mean time-to-decision within 0.01 macro-F1 of ALL@max (F1 averaged over model seeds,
as the study does) its mean and p95 time-to-decision and its CPU against ALL@max's.

Then a sweep that tells what limits it: ALL@max's own features, depth and model at deadlines from
10 s down to 1 ms (F1 from the derived vectors, time-to-decision and CPU measured in Zeek).

``--task`` takes one of issue 20's protocol's tasks instead (``iot-device_type``, ``ndpi-protocol``, ...,
under ``--corpora``): a corpus with another label column, or only its classes of enough connections.

Studies live in --studies (resumable: run the script again after an interruption).

    python benchmarks/deadline_tune.py --corpus ../shared/corpora/iot-sentinel --corpus ../shared/corpora/ndpi \
        --seed 0 --seed 1 --budget 30

``--mechanism``: what the deadline itself costs, one scheduled event per connection: 5 per-packet features
@10 profiled over the corpus (bare, paired rounds) without and with a 250 ms deadline, as
``cato profile CORPUS -f ... -n 10 -k 5 --deployment bare --no-cache [--deadline 250ms]`` does
(``results/deadline_mechanism.json``):

    python benchmarks/deadline_tune.py --corpus ../shared/corpora/iot-sentinel --mechanism
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from cato.cache import default_cache_dir
from cato.codegen import generate
from cato.corpus import load_corpus
from cato.dataset import load_dataset
from cato.features import resolve
from cato.search.objectives import F1_TOLERANCE
from cato.search.pareto import hypervolume, reference
from cato.study import Study, StudySettings, best_within, run_study
from cato.zeek.profiling import profile

import provenance
from tune_protocol import TASKS

ROOT = Path(__file__).resolve().parent
OUT = ROOT / "results" / "deadline_tune.json"
MECHANISM_OUT = ROOT / "results" / "deadline_mechanism.json"
#: The mechanism's script: the "5 per-packet" features at depth 10, profiled over a bare Zeek.
MECHANISM_FEATURES = "orig_size_mean,resp_size_mean,flow_iat_mean,orig_syn_cnt,tcp_rtt"
MECHANISM_DEPTH = 10
MECHANISM_REPEAT = 5
#: Its deadlines, s, by their name in the results file (``cato profile --deadline``'s spelling).
MECHANISM_DEADLINES = {"none": None, "250ms": 0.25}
OBJECTIVES = ("f1", "latency")
SWEEP_S = (10.0, 3.0, 1.0, 0.3, 0.1, 0.03, 0.01, 0.001)
#: Zeek's shortest wait between a connection's last packet and its removal (tcp_close_delay and
#: tcp_reset_delay; UDP and ICMP wait a minute of inactivity, TCP otherwise five).
SHORTEST_REMOVAL_S = 5.0


def task_key(corpus_path: Path, label_column: str = "label", min_class_size: int = 1) -> str:
    """A task's name in the results file: the corpus folder for its ``label``, else as issue 20's protocol
    names it (``ndpi-protocol``)."""
    corpus = corpus_path.resolve().name
    if (label_column, min_class_size) == ("label", 1):
        return corpus
    named = (task for task, spec in TASKS.items() if spec == (corpus, label_column, min_class_size))
    return next(named, f"{corpus}-{label_column}-min{min_class_size}")


def run_one(corpus_path: Path, seed: int, deadline_search: bool, budget: int, studies: Path,
            label_column: str = "label", min_class_size: int = 1) -> tuple[Study, float]:
    name = f"{task_key(corpus_path, label_column, min_class_size)}-{'deadline' if deadline_search else 'depth'}-s{seed}"
    settings = StudySettings(str(corpus_path.resolve()), label_column, objectives=OBJECTIVES, seed=seed,
                             deadline_search=deadline_search, min_class_size=min_class_size)
    directory = studies / name
    study = Study.open(directory, settings, resume=(directory / "study.db").exists())
    if len(study.trials("search")) >= budget:
        return study, sum(t.details.get("eval_s", 0) + t.details.get("bo_overhead_s", 0) for t in study.trials())
    corpus = study.settings.load_corpus()  # its label column and least class size
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


def search_hypervolumes(studies: dict[str, Study]) -> dict[str, float]:
    """Each study's search trials' hypervolume on F1 and mean time-to-decision, against one reference
    point made from every trial of ``studies`` (the searches with and without the deadline dimension
    of one corpus and seed), as issue 20's protocol scores a sampler."""
    everything = [t.values for s in studies.values() for t in s.trials()]
    ref = reference(everything, OBJECTIVES)
    return {name: hypervolume([t.values for t in s.trials("search")], OBJECTIVES, ref)
            for name, s in studies.items()}


def best_within_wait(front: list[dict], wait_ms: float) -> dict | None:
    """The most accurate front point whose mean time-to-decision is at most ``wait_ms``."""
    return max((p for p in front if p["ttd_mean_ms"] <= wait_ms), key=lambda p: p["f1"], default=None)


def best_by_wait(front: list[dict], waits_ms=(float("inf"), 1000, 300, 30)) -> list[str]:
    """The most accurate front point of each mean time-to-decision bound: "F1 (T)"."""
    out = []
    for w in waits_ms:
        best = best_within_wait(front, w)
        t = "none" if best is None or best["deadline_s"] is None else f"{best['deadline_s'] * 1e3:g} ms"
        out.append("–" if best is None else f"{best['f1']:.3f} ({best['features']} @{best['depth']}, T {t})")
    return out


def search_front(run: dict) -> list[dict]:
    """A study's front without its baselines: the search's own points."""
    return [p for p in run["front"] if p["name"] is None]


def tables(results: dict) -> str:
    """Each study's figures from the JSON: best F1 by wait, the point within tolerance, the sweeps."""
    corpora = results["corpora"]
    lines = ["| corpus, seed | search | best F1 | mean time-to-decision ≤ 1 s | ≤ 300 ms | ≤ 30 ms |",
             "|---|---|---|---|---|---|"]
    for corpus, entry in corpora.items():
        for run, r in sorted(entry["runs"].items(), key=lambda kv: (kv[0].split("-s")[1], kv[0])):
            lines.append(f"| {corpus}, {run.split('-s')[1]} | {run.split('-s')[0]} | "
                         + " | ".join(best_by_wait(search_front(r))) + " |")
    lines += ["", "| corpus, seed | search | point within 0.01 F1 of ALL@50 | F1 | mean / p95 time-to-decision ms "
              "| × lower mean / p95 | CPU µs/conn (× lower) |", "|---|---|---|---|---|---|---|"]
    for corpus, entry in corpora.items():
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
    for corpus, entry in corpora.items():
        if "sweep_all_max" not in entry:
            continue
        lines += ["", f"ALL@50 at a deadline, {corpus} (seed {entry.get('sweep_seed', '?')}):", "",
                  "| deadline | F1 | mean / p95 time-to-decision ms | CPU µs/conn |", "|---|---|---|---|"]
        for row in entry["sweep_all_max"]:
            t = "none" if row["deadline_s"] is None else f"{row['deadline_s'] * 1e3:g} ms"
            lines.append(f"| {t} | {row['f1']:.3f} | {row['ttd_mean_ms']:,.1f} / {row['ttd_p95_ms']:,.1f} | "
                         f"{row['cpu_us']:.1f} |")
    return "\n".join(lines)


#: RESULTS.md's columns, by task (``task_key``): nDPI, which meets the target, first.
CORPUS_NAMES = {"ndpi": "nDPI `label`", "ndpi-protocol": "nDPI `protocol`", "ndpi-app": "nDPI `app`",
                "iot-sentinel": "IoT Sentinel `label`", "iot-device_type": "IoT Sentinel `device_type`"}
#: RESULTS.md's summary: the most accurate search point within this mean time-to-decision, ms, and
#: ALL@max's features at these deadlines, s, of the sweep (None: no deadline).
SUMMARY_WAIT_MS = 300
SUMMARY_SWEEP_S = (None, 10.0, 1.0, 0.3, 0.001)


def _span(values: list[float], fmt: str) -> str:
    """``lo-hi`` of ``values``, or one figure where both print alike."""
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return lo if lo == hi else f"{lo}-{hi}"


def _deadline_text(seconds: float | None) -> str:
    return "none" if seconds is None else f"{seconds:g} s" if seconds >= 1 else f"{seconds * 1e3:g} ms"


def _within_tolerance(runs: list[dict]) -> str:
    """The least time-to-decision within tolerance of ALL@max, over every study of a corpus."""
    points = [w for r in runs if (w := r.get("within_tolerance")) and not w["name"]]
    if points and all(w["ttd_mean_ms"] == 0 for w in points):
        return (f"F1 {_span([w['f1'] for w in points], '.2f')} at the first packet, "
                f"{_span([w['cpu_ratio'] for w in points], '.1f')}x lower CPU")
    # Without a deadline a point decides no sooner than its depth lets it: only a deadline can cut the wait.
    points = [w for w in points if w["deadline_s"] is not None]
    if not points:
        return "none with a deadline"
    return (f"F1 {_span([w['f1'] for w in points], '.2f')} at mean {_span([w['ttd_mean_ms'] for w in points], ',.0f')} "
            f"ms (T {', '.join(_deadline_text(w['deadline_s']) for w in points)}), "
            f"{_span([w['cpu_ratio'] for w in points], '.1f')}x lower CPU")


def _best_within_wait(by_search: dict[str, list[dict]]) -> str:
    """The most accurate search point within SUMMARY_WAIT_MS, with / without the deadline dimension: the
    range over the seeds where every study has one, else each seed's (a range cannot show a seed's none)."""
    best = {search: [best_within_wait(search_front(r), SUMMARY_WAIT_MS) for r in runs]
            for search, runs in by_search.items()}
    if all(p for points in best.values() for p in points):
        return " / ".join(_span([p["f1"] for p in points], ".2f") if points else "–" for points in best.values())
    return " / ".join(", ".join("none" if p is None else f"{p['f1']:.3f}" for p in points) or "–"
                      for points in best.values())


def summary(results: dict) -> str:
    """RESULTS.md's table of the searches with and without the deadline dimension, a column per corpus."""
    corpora = results["corpora"]
    names = [c for c in CORPUS_NAMES if c in corpora] + [c for c in corpora if c not in CORPUS_NAMES]
    cells: dict[str, list[str]] = {}
    all_max = "ALL@max"
    for name in names:
        entry = corpora[name]
        seeds = sorted({int(run.split("-s")[1]) for run in entry["runs"]})
        by_search = {search: [entry["runs"][run] for seed in seeds if (run := f"{search}-s{seed}") in entry["runs"]]
                     for search in ("deadline", "depth")}
        runs = [*by_search["deadline"], *by_search["depth"]]
        heads = [r["all_max"] for r in runs]
        all_max = f"ALL@{heads[0]['depth']}"
        sweep = {row["deadline_s"]: row for row in entry.get("sweep_all_max", [])}
        trials = {seed: max(r["trials"] for k, r in entry["runs"].items() if k.endswith(f"-s{seed}")) for seed in seeds}
        hv = [entry.get("hypervolume", {}).get(f"s{seed}") for seed in seeds]
        cells[name] = [
            f"{CORPUS_NAMES.get(name, name)} (seed, trials: {'; '.join(f'{s}, {n}' for s, n in trials.items())})",
            ", ".join(f"{h['deadline']:.3f} / {h['depth']:.3f} ({h['deadline'] / h['depth']:.2f}x)" for h in hv if h)
            or "not measured",
            f"{_span([a['f1'] for a in heads], '.3f')}, {_span([a['ttd_mean_ms'] for a in heads], ',.0f')} / "
            f"{_span([a['ttd_p95_ms'] for a in heads], ',.0f')}",
            _within_tolerance(runs),
            _best_within_wait(by_search),
            "F1 " + " / ".join(f"{sweep[t]['f1']:.3f}" for t in SUMMARY_SWEEP_S) if sweep else ""]
    sweep_seeds = sorted({str(corpora[n]["sweep_seed"]) for n in names if "sweep_seed" in corpora[n]})
    labels = ["hypervolume of the search trials, F1 × mean time-to-decision: with / without the deadline dimension",
              f"{all_max}: F1, mean / p95 time-to-decision ms",
              f"least time-to-decision within {F1_TOLERANCE:g} F1 of {all_max}",
              f"most accurate point with mean time-to-decision ≤ {SUMMARY_WAIT_MS} ms: with / without the deadline "
              "dimension",
              f"{all_max}'s features at T = {' / '.join(map(_deadline_text, SUMMARY_SWEEP_S))} "
              f"(seed {', '.join(sweep_seeds)})"]
    head = "| | " + " | ".join(cells[n][0] for n in names) + " |"
    rows = ["| " + " | ".join([label, *(cells[n][i + 1] for n in names)]) + " |" for i, label in enumerate(labels)]
    return "\n".join([head, "|---" * (len(names) + 1) + "|", *rows])


def mechanism(corpus: Path) -> dict[str, dict]:
    """``cato profile``'s figures of the mechanism's script, by deadline (MECHANISM_DEADLINES)."""
    corp = load_corpus(corpus)
    features = resolve(MECHANISM_FEATURES)
    return {name: profile(corp, generate(features, MECHANISM_DEPTH, deadline=deadline), baseline="bare",
                          repeat=MECHANISM_REPEAT, use_cache=False).to_dict()
            for name, deadline in MECHANISM_DEADLINES.items()}


def mechanism_table(results: dict) -> str:
    """RESULTS.md's table of the mechanism: a row per deadline."""
    profiles = results["profiles"]
    first = next(iter(profiles.values()))
    head = f"{len(first['features'])} per-packet features @{','.join(map(str, first['depths']))}"
    lines = [f"| {head} | marginal CPU µs/conn | ×bare | time-to-decision p50 / p95 / mean ms |", "|---|---|---|---|"]
    for name, p in profiles.items():
        ttd = p["time_to_decision_ms"]
        lines.append(f"| {'no deadline' if name == 'none' else f'`--deadline {name}`'} | "
                     f"{p['marginal_cpu_us_per_conn']:.2f} | {p['cpu_ratio']:.2f}x | "
                     f"{ttd['p50']:,.1f} / {ttd['p95']:,.1f} / {ttd['mean']:,.1f} |")
    return "\n".join(lines)


def results_tables(results: Path) -> dict[str, str]:
    """This benchmark's RESULTS.md tables, by block name, from its results files under ``results``."""
    def measured(name: str) -> str:
        return f"Measured {provenance.measured(name, results=results)}."

    return {"deadline-search": f"{measured(OUT.name)}\n\n{summary(provenance.load(OUT.name, results))}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, action="append", default=[], help="A corpus, by its label column.")
    ap.add_argument("--task", action="append", default=[], choices=list(TASKS),
                    help="A task of issue 20's protocol (corpus, label column, least class size), under --corpora.")
    ap.add_argument("--corpora", type=Path, default=ROOT.parent.parent / "shared" / "corpora")
    ap.add_argument("--seed", type=int, action="append")
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--studies", type=Path, default=Path("deadline-studies"))
    ap.add_argument("--no-sweep", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--tables", action="store_true", help="Print the tables of --out and stop.")
    ap.add_argument("--mechanism", action="store_true",
                    help=f"Profile the mechanism over the (first) corpus into {MECHANISM_OUT} instead of searching.")
    args = ap.parse_args()
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    if args.tables:
        print(f"{summary(results)}\n\n{tables(results)}")
        return
    tasks = [(c, "label", 1) for c in args.corpus] + [(args.corpora / TASKS[t][0], *TASKS[t][1:]) for t in args.task]
    if not tasks:
        ap.error("name a --corpus or a --task")
    if args.mechanism:
        results = {**provenance.stamp(), "corpus": str(tasks[0][0]), "profiles": mechanism(tasks[0][0])}
        MECHANISM_OUT.write_text(json.dumps(results, indent=1) + "\n")
        print(mechanism_table(results))
        return
    corpora = results.setdefault("corpora", {})

    def save() -> None:
        # Stamped at every write: the file holds what this run measured and what earlier runs left in it.
        args.out.write_text(json.dumps({**provenance.stamp(), "corpora": corpora}, indent=1))

    for corpus, column, min_class in tasks:
        entry = corpora.setdefault(task_key(corpus, column, min_class), {"tolerance": F1_TOLERANCE, "runs": {}})
        for seed in args.seed or [0]:
            studies = {}
            for searched in (True, False):
                search = "deadline" if searched else "depth"
                study, elapsed = run_one(corpus, seed, searched, args.budget, args.studies, column, min_class)
                studies[search] = study
                entry["runs"][f"{search}-s{seed}"] = summarize(study, elapsed)
                save()
            entry.setdefault("hypervolume", {})[f"s{seed}"] = search_hypervolumes(studies)
            save()
        if not args.no_sweep:
            entry["sweep_all_max"] = sweep(study)
            entry["sweep_seed"] = study.settings.seed
            save()
    print(f"{summary(results)}\n\n{tables(results)}")


if __name__ == "__main__":
    main()
