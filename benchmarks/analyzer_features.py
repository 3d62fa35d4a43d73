"""Features from Zeek's own analyzers (#32): the front with and without them, and what each analyzer
costs alone, in a deployment that runs Zeek's default scripts and in a bare one.

For each task and seed, two studies under ``--deployment default`` with the same seed and budget:
``flow`` searches the flow statistics only (``all,-needs:analyzer``), ``analyzers`` every feature. Each
study's front is its recommended one (search trials and the ALL/MI/RFE baselines). Reported: the best
macro-F1 point of each (F1, CPU per connection, mean time-to-decision), the targets of the issue, and
whether the analyzers' front weakly dominates the flow front (every flow front point has an analyzer
study point with F1 at least its own less the study's F1 noise bound, at no more CPU). Then, per
analyzer, the marginal CPU per connection of a script computing its features alone at depth 10, over
``default`` and over ``bare`` (where the script loads the analyzer's scripts itself).

    python benchmarks/analyzer_features.py --corpora ../shared/corpora --tasks iot-label,ndpi-app \
        --seeds 0 --budget 30
Studies live in --studies (resumable). Results: benchmarks/results/analyzer_features.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance  # noqa: E402

from cato.cache import default_cache_dir  # noqa: E402
from cato.codegen import generate  # noqa: E402
from cato.dataset import load_dataset  # noqa: E402
from cato.features import CATALOG, FEATURES_BY_NAME, resolve  # noqa: E402
from cato.features.catalog import Remembered  # noqa: E402
from cato.model import ModelSpec, cross_val_f1, grouped_folds, learned_columns  # noqa: E402
from cato.search.objectives import F1_TOLERANCE  # noqa: E402
from cato.search.pareto import hypervolume, reference  # noqa: E402
from cato.study import Study, StudySettings, run_study  # noqa: E402
from cato.zeek.profiling import profile  # noqa: E402

ROOT = Path(__file__).resolve().parent
TASKS = {"iot-label": ("iot-sentinel", "label", 1), "ndpi-app": ("ndpi", "app", 20)}
VARIANTS = {"flow": "all,-needs:analyzer", "analyzers": "all"}
OBJECTIVES = ("f1", "cpu")
FIXED_MODEL = ModelSpec("rf", 50, 16)


def run_variant(corpora: Path, task: str, variant: str, seed: int, budget: int, studies: Path) -> Study:
    corpus, column, min_class = TASKS[task]
    features = tuple(f.name for f in resolve(VARIANTS[variant]))
    settings = StudySettings(str((corpora / corpus).resolve()), column, objectives=OBJECTIVES, seed=seed,
                             min_class_size=min_class, deployment="default", features=features)
    directory = studies / f"{task}-{variant}-s{seed}"
    study = Study.open(directory, settings, resume=(directory / "study.db").exists())
    if len(study.trials("search")) < budget:
        corpus_ = study.settings.load_corpus()
        dataset = load_dataset(corpus_, study.settings.max_depth, default_cache_dir(), deployment="default")
        run_study(study, dataset, study.evaluator(corpus_, dataset), budget,
                  lambda msg, n, total, front: print(f"\r{directory.name}: {n}/{total} {msg[:60]:60}", end="",
                                                     file=sys.stderr))
        print(file=sys.stderr)
    return study


def point(trial) -> dict:
    return {"name": trial.name or f"trial {trial.number}", "features": len(trial.config.features),
            "analyzer_features": [f for f in trial.config.features if FEATURES_BY_NAME[f].analyzer_field is not None],
            "depth": trial.config.depth, "model": str(trial.config.model), "f1": trial.values["f1"],
            "cpu_us": trial.values["cpu"], "ttd_ms": trial.details.get("time_to_decision_ms", {}).get("mean")}


def dominates_front(better: list[dict], front: list[dict], noise: float) -> bool:
    """Every point of ``front`` has one in ``better`` with F1 at least its own less ``noise`` at no more CPU."""
    return all(any(b["f1"] >= p["f1"] - noise and b["cpu_us"] <= p["cpu_us"] * 1.0001 for b in better) for p in front)


def compare(flow: Study, analyzers: Study) -> dict:
    everything = [t.values for s in (flow, analyzers) for t in s.trials() if t.values]
    ref = reference(everything, OBJECTIVES)
    out = {"reference_point": ref}
    for name, study in (("flow", flow), ("analyzers", analyzers)):
        front = study.pareto()
        best = max(front, key=lambda t: t.values["f1"])
        out[name] = {"front": [point(t) for t in sorted(front, key=lambda t: t.values["cpu"])],
                     "best": point(best), "trials": len(study.trials()),
                     "search_trials": len(study.trials("search")),
                     "study_s": round(sum(t.details.get("eval_s", 0) + t.details.get("bo_overhead_s", 0)
                                          for t in study.trials()), 1),
                     "hypervolume": hypervolume([t.values for t in front], OBJECTIVES, ref)}
    f, a = out["flow"]["best"], out["analyzers"]["best"]
    out["best_f1_gain"] = a["f1"] - f["f1"]
    out["best_cpu_ratio"] = a["cpu_us"] / f["cpu_us"]
    out["best_ttd_ratio"] = (a["ttd_ms"] / f["ttd_ms"]) if a["ttd_ms"] and f["ttd_ms"] else None
    # The issue's time-to-decision condition: the analyzers' best F1 that decides no later than the flow
    # study's best point does.
    in_time = [point(t) for t in analyzers.trials() if t.values
               and (t.details.get("time_to_decision_ms", {}).get("mean") or 0) <= (f["ttd_ms"] or 0) * 1.0001]
    out["analyzers_best_within_flow_ttd"] = max(in_time, key=lambda p: p["f1"]) if in_time else None
    out["analyzers_front_dominates_flow_front"] = dominates_front(
        [point(t) for t in analyzers.trials() if t.values], out["flow"]["front"], F1_TOLERANCE)
    return out


def coverage(study: Study) -> dict:
    """Per string an analyzer feature encodes: the share of labelled connections whose vector has it at
    depths 1, 3, 10 and 50, and how many distinct values the corpus has."""
    dataset = load_dataset(study.settings.load_corpus(), study.settings.max_depth, default_cache_dir(),
                           deployment="default")
    out = {"connections": dataset.connections, "classes": len(dataset.classes)}
    for f in dataset.features:
        if FEATURES_BY_NAME[f].learned:
            out[FEATURES_BY_NAME[f].computation.source] = {
                **{str(d): round(float((dataset.matrix([f], d) >= 0).mean()), 3) for d in (1, 3, 10, 50)},
                "distinct": len(dataset.strings(f))}
    return out


def fixed_f1(study: Study) -> dict:
    """Macro-F1 of fixed selections (a 50-tree forest, the study's folds and sample): the flow statistics,
    the analyzer features alone and both, at depths 10 and 50. What the features can give, apart from
    the search's path."""
    corpus = study.settings.load_corpus()
    dataset = study.cv_dataset(load_dataset(corpus, study.settings.max_depth, default_cache_dir(),
                                            deployment="default"))
    folds = grouped_folds(dataset.y, dataset.groups, study.settings.folds, study.settings.seed)
    analyzed = [f for f in dataset.features if FEATURES_BY_NAME[f].analyzer_field is not None]
    remembered = [f for f in analyzed if isinstance(FEATURES_BY_NAME[f].analyzer_field, Remembered)]
    flow = [f for f in dataset.features if f not in analyzed]
    selections = {"flow": flow, "analyzers": analyzed, "flow+remembered": flow + remembered,
                  "both": dataset.features}
    out = {}
    for name, features in selections.items():
        for depth in (10, 50):
            scores = cross_val_f1(dataset.matrix(features, depth), dataset.y, folds, FIXED_MODEL,
                                  study.settings.seed, 1, learned_columns(features))
            out[f"{name}@{depth}"] = {"features": len(features), "f1": scores["f1"]}
    return out


def cost_row(feature) -> str:
    """The costs table's row of an analyzer feature: its analyzer; remembered values apart."""
    source = feature.analyzer_field
    return source.analyzer + (" (remembered)" if isinstance(source, Remembered) else "")


def analyzer_costs(study: Study, done: dict) -> dict:
    """Marginal CPU per connection of each analyzer's features alone at depth 10, over default and bare
    (remembered values apart from the connection's own); rows in ``done`` are kept."""
    corpus = study.profile_corpus(study.settings.load_corpus())
    by_analyzer: dict[str, list] = {}
    for f in CATALOG:
        if f.analyzer_field is not None and f.dtype != "string":
            by_analyzer.setdefault(cost_row(f), []).append(f)
    # The reference: a vector of one connection counter, whose cost every script pays (the vector's
    # record, its log row): what an analyzer's features add is its row less this one.
    by_analyzer = {"reference (orig_pkts alone)": list(resolve("orig_pkts")), **by_analyzer}
    out = {}
    for analyzer, features in by_analyzer.items():
        if analyzer in done:
            out[analyzer] = done[analyzer]
            continue
        script = generate(features, (10,))
        row = {"features": [f.name for f in features]}
        for deployment in ("default", "bare"):
            cost = profile(corpus, script, baseline=deployment, repeat=3, attribute=False)
            row[deployment] = {"marginal_cpu_us_per_conn": cost.marginal_cpu_us_per_conn,
                               "baseline_cpu_us_per_conn": cost.baseline_steady_cpu_us_per_conn}
        out[analyzer] = row
        print(f"{analyzer}: {row}", file=sys.stderr)
    return out


def tables(results: dict) -> dict[str, str]:
    """The tables of a results file, by name: RESULTS.md's (``fronts``, ``fixed``, ``costs``) and ``coverage``."""
    rows = ["| task (seed, budget) | study | best macro-F1 (point) | its CPU µs/conn | its mean time-to-decision | "
            "front hypervolume | analyzers' front ≥ flow front |", "|---|---|---|---|---|---|---|"]
    for task, by_seed in results.get("tasks", {}).items():
        for seed, r in by_seed.items():
            for name in ("flow", "analyzers"):
                b = r[name]["best"]
                used = f", {len(b['analyzer_features'])} from analyzers" if b["analyzer_features"] else ""
                rows.append(f"| {task} ({seed}, {r[name].get('search_trials', '?')}) | {name} | {b['f1']:.3f} "
                            f"({b['name']}: {b['features']} feature{'s' if b['features'] != 1 else ''}{used} @{b['depth']}, "
                            f"{b['model']}) | "
                            f"{b['cpu_us']:.0f} | {b['ttd_ms'] / 1000:.2f} s | {r[name]['hypervolume']:.4f} | "
                            + ("" if name == "flow" else
                               ("yes" if r["analyzers_front_dominates_flow_front"] else "no")) + " |")
    out = {"fronts": "\n".join(rows), "fronts-summary": fronts_summary(results)}
    fixed = results.get("fixed_f1", {})
    if fixed:
        names = list(next(iter(fixed.values())))
        out["fixed"] = ("\n".join(["| task | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)] + [
            f"| {task} | " + " | ".join(f"{v['f1']:.3f}" for v in row.values()) + " |" for task, row in fixed.items()]))
    costs = results.get("analyzer_costs", {})
    if costs:
        tasks = list(costs)
        head = "| features of | " + " | ".join(f"{t}: over default | {t}: over bare" for t in tasks) + " |"
        rows = [head, "|---|" + "---|---|" * len(tasks)]
        for analyzer in next(iter(costs.values()))["costs"]:
            cells = []
            for t in tasks:
                r = costs[t]["costs"][analyzer]
                cells += [f"{r['default']['marginal_cpu_us_per_conn']:.0f}", f"{r['bare']['marginal_cpu_us_per_conn']:.0f}"]
            label = "service (any analyzer: Zeek's default scripts)" if analyzer == "any" else analyzer
            rows.append(f"| {label} | " + " | ".join(cells) + " |")
        rows.append("| the deployment itself (µs/conn) | " + " | ".join(
            f"{costs[t]['costs']['DNS']['default']['baseline_cpu_us_per_conn']:.0f} | "
            f"{costs[t]['costs']['DNS']['bare']['baseline_cpu_us_per_conn']:.0f}" for t in tasks) + " |")
        out["costs"] = "\n".join(rows)
    cov = results.get("coverage", {})
    if cov:
        strings = [k for k in next(iter(cov.values())) if isinstance(next(iter(cov.values()))[k], dict)]
        rows = ["| string | " + " | ".join(f"{t}: at 1 / 3 / 10 / 50 packets (distinct)" for t in cov) + " |",
                "|---|" + "---|" * len(cov)]
        for sname in strings:
            if not any(c[sname]["50"] > 0 for c in cov.values()):
                continue  # no connection has it (SSH on these corpora)
            rows.append(f"| {sname} | " + " | ".join(
                "{0:.0%} / {1:.0%} / {2:.0%} / {3:.0%} ({4})".format(*(c[sname][k] for k in ("1", "3", "10", "50")),
                                                                     c[sname]["distinct"])
                for c in cov.values()) + " |")
        out["coverage"] = "\n".join(rows)
    return out


def fronts_summary(results: dict) -> str:
    """RESULTS.md's form of the fronts: per task and study, over the seeds, the best macro-F1 and its
    CPU, the front's hypervolume, and the seeds whose analyzers' front covers the flow front
    (``--table`` prints every seed)."""
    rows = ["| task (seeds, budgets) | study | best macro-F1 | its CPU µs/conn | front hypervolume, median | "
            "analyzers' front ≥ flow front |", "|---|---|---|---|---|---|"]
    span = lambda xs, f: f"{f.format(min(xs))}-{f.format(max(xs))}"  # noqa: E731
    for task, by_seed in results.get("tasks", {}).items():
        runs = list(by_seed.values())
        budgets = sorted({r["flow"].get("search_trials", 0) for r in runs})
        for name in ("flow", "analyzers"):
            best = [r[name]["best"] for r in runs]
            covers = sum(bool(r["analyzers_front_dominates_flow_front"]) for r in runs)
            rows.append(f"| {task} ({len(runs)}, {'/'.join(map(str, budgets))}) | {name} | "
                        f"{span([b['f1'] for b in best], '{:.3f}')} | {span([b['cpu_us'] for b in best], '{:.0f}')} | "
                        f"{statistics.median(r[name]['hypervolume'] for r in runs):.4f} | "
                        + ("" if name == "flow" else f"{covers} of {len(runs)}") + " |")
    return "\n".join(rows)


def results_tables(results: Path) -> dict[str, str]:
    """RESULTS.md's tables of the analyzer features (coverage lives in HISTORY.md), from ``analyzer_features.json``."""
    source = f"Measured {provenance.measured('analyzer_features.json', results=results)}."
    made = tables(provenance.load("analyzer_features.json", results))
    return {"analyzers-fronts": f"{source}\n\n{made['fronts-summary']}", "analyzers-fixed": made["fixed"]}



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", type=Path, default=ROOT.parent.parent / "shared" / "corpora")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--studies", type=Path, default=Path("/tmp/cato-analyzer-studies"))
    ap.add_argument("--no-costs", action="store_true", help="Skip the per-analyzer cost profiles.")
    ap.add_argument("--output", type=Path, default=ROOT / "results" / "analyzer_features.json")
    ap.add_argument("--table", action="store_true", help="Print the RESULTS.md tables of --output and stop.")
    args = ap.parse_args()
    if args.table:
        print("\n\n".join(tables(json.loads(args.output.read_text())).values()))
        return
    results = json.loads(args.output.read_text()) if args.output.exists() else {}
    results.update({"budget": args.budget, "deployment": "default", "objectives": list(OBJECTIVES)})
    for task in args.tasks.split(","):
        for seed in map(int, args.seeds.split(",")):
            flow = run_variant(args.corpora, task, "flow", seed, args.budget, args.studies)
            analyzers = run_variant(args.corpora, task, "analyzers", seed, args.budget, args.studies)
            results.setdefault("tasks", {}).setdefault(task, {})[str(seed)] = {
                **compare(flow, analyzers)}
            if task not in results.get("fixed_f1", {}):  # the whole dataset's: one seed's folds suffice
                results.setdefault("coverage", {})[task] = coverage(analyzers)
                results.setdefault("fixed_f1", {})[task] = fixed_f1(analyzers)
            results.update(provenance.stamp())
            args.output.write_text(json.dumps(results, indent=1))
            done = results.setdefault("analyzer_costs", {}).get(task, {}).get("costs", {})
            if not args.no_costs and any(f.analyzer_field is not None and cost_row(f) not in done for f in CATALOG):
                results["analyzer_costs"][task] = {"costs": analyzer_costs(analyzers, done)}
                args.output.write_text(json.dumps(results, indent=1))
    print(json.dumps({t: {s: {k: v for k, v in r.items() if k in ("best_f1_gain", "best_cpu_ratio", "best_ttd_ratio",
                                                                  "analyzers_front_dominates_flow_front")}
                          for s, r in by_seed.items()} for t, by_seed in results.get("tasks", {}).items()}, indent=1))


if __name__ == "__main__":
    main()
