"""Issue 20's protocol: cato's search against MO-TPE and random search on several tasks, seeds and budgets.

A task is a corpus and a label column (with a minimum class size where rare classes need one):

    iot-label        IoT Sentinel by device (label)          iot-device_type  IoT Sentinel by device type
    ndpi-label       nDPI by traffic category (label)        ndpi-protocol    nDPI by protocol, classes >= 20
    ndpi-app         nDPI by application, classes >= 20

Each (task, seed, sampler) is one study of --budget search trials on the default objectives (macro-F1,
Zeek CPU per connection), run by tune_compare.run_one (resumable; studies in --studies). No sampler
reads the budget, so the first 20 trials of a 50-trial study are the study a budget of 20 would have run.

Per task, seed and budget (20, 50) the summary reports, for each sampler, the hypervolume of its search
trials (one reference point per task, shared by every seed and sampler), and for cato's search:

* which baselines lie above its own front (search trials only: not dominated by any of them), by how
  much F1, and whether that margin is beyond the F1 noise of two measurements (``f1_noise``), also
  once a search trial up to ``COST_NOISE`` dearer counts (``margins_within_cost_noise``);
* whether a point within 0.01 F1 of ALL@max at >= 2x lower CPU exists among everything that seed's
  studies evaluated, and whether cato's study (search and baselines) and its search alone found one;
* BO overhead per iteration (median) against the median evaluation time (those that trained models,
  every sampler of the seed: cache hits from earlier runs would flatter the comparison).

    python benchmarks/tune_protocol.py --tasks iot-label,ndpi-label --seeds 0,1 [--samplers botorch]
    python benchmarks/tune_protocol.py --summarize-only          # every study already run
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance  # noqa: E402
from tune_compare import OBJECTIVES, ROOT, run_one, study_name  # noqa: E402

from cato.search.objectives import F1_TOLERANCE  # noqa: E402
from cato.search.pareto import hypervolume, pareto_mask, reference, to_max_space  # noqa: E402

#: task -> (corpus folder, label column, minimum class size)
TASKS = {"iot-label": ("iot-sentinel", "label", 1), "iot-device_type": ("iot-sentinel", "device_type", 1),
         "ndpi-label": ("ndpi", "label", 1), "ndpi-protocol": ("ndpi", "protocol", 20),
         "ndpi-app": ("ndpi", "app", 20)}
BUDGETS = (20, 50)
CPU_RATIO = 2.0
#: Relative spread of one script's CPU between measurements of a day (`cato profile`, one run per
#: trial: 10-15%, RESULTS' "What the figures depend on"): a baseline this much dearer than a search
#: point is not above it by its cost alone.
COST_NOISE = 0.15


def dominated_by(point: dict, others: list[dict]) -> bool:
    """Whether some point in ``others`` is at least as good on both objectives and better on one."""
    return any(o["f1"] >= point["f1"] and o["cpu"] <= point["cpu"]
               and (o["f1"] > point["f1"] or o["cpu"] < point["cpu"]) for o in others)


def margins_within_cost_noise(baselines: dict[str, dict], search: list[dict]) -> dict[str, float]:
    """Each baseline's F1 above that of every search trial costing at most ``COST_NOISE`` more than it,
    where positive: what is left of "above" once the cost's own noise is allowed for."""
    out = {}
    for name, v in baselines.items():
        best = max((p["f1"] for p in search if p["cpu"] <= v["cpu"] * (1 + COST_NOISE)), default=0.0)
        if v["f1"] > best:
            out[name] = v["f1"] - best
    return out


def front_values(values: list[dict]) -> list[dict]:
    return [v for v, keep in zip(values, pareto_mask(to_max_space(values, OBJECTIVES))) if keep] if values else []


def close_to(values: list[dict], all_max: dict) -> dict | None:
    """The cheapest point within F1_TOLERANCE of ALL@max at CPU_RATIO or more below its CPU, if any."""
    near = [v for v in values if v["f1"] >= all_max["f1"] - F1_TOLERANCE - 1e-12
            and v["cpu"] * CPU_RATIO <= all_max["cpu"]]
    return min(near, key=lambda v: v["cpu"]) if near else None


def summarize_seed(studies: dict, budget: int, ref: dict, max_depth: int) -> dict:
    """One seed of one task at one budget (studies: sampler -> Study)."""
    cato = studies["botorch"]
    baselines = {t.name: t.values for t in cato.trials("baseline")}
    all_max = baselines[f"all@{max_depth}"]
    search = {name: [t.values for t in s.trials("search")[:budget]] for name, s in studies.items()}
    own_front = front_values(search["botorch"])
    everything = [*baselines.values(), *(v for vs in search.values() for v in vs)]
    cato_all = [*baselines.values(), *search["botorch"]]
    found = close_to(cato_all, all_max)
    found_search = close_to(search["botorch"], all_max)
    exists = close_to(everything, all_max)
    cato_trials = cato.trials("search")[:budget]
    overhead = [t.details["bo_overhead_s"] for t in cato_trials if "bo_overhead_s" in t.details]
    # Evaluations that trained their models (not a cache hit), by any sampler of this seed.
    evals = [t.details["eval_s"] for s in studies.values() for t in s.trials("search")[:budget]
             if t.details.get("eval_s") and t.details.get("quality_cached") is False]
    return {
        "trials": {name: len(vs) for name, vs in search.items()},
        "hypervolume": {name: hypervolume(vs, OBJECTIVES, ref) if vs else None for name, vs in search.items()},
        "baselines_hypervolume": hypervolume(list(baselines.values()), OBJECTIVES, ref),
        "baselines_above_search_front": sorted(n for n, v in baselines.items() if not dominated_by(v, own_front)),
        # By how much F1 each such baseline beats the best search point at no more CPU: next to the fold noise.
        "above_by_f1": {n: v["f1"] - max((o["f1"] for o in own_front if o["cpu"] <= v["cpu"]), default=0.0)
                        for n, v in baselines.items() if not dominated_by(v, own_front)},
        "above_by_f1_within_cost_noise": margins_within_cost_noise(baselines, search["botorch"]),
        "all_max": all_max,
        "best_f1_search": max((v["f1"] for v in search["botorch"]), default=None),
        "within_tolerance_exists": exists,
        "within_tolerance_study": found,
        "within_tolerance_search": found_search,
        "bo_overhead_s_median": statistics.median(overhead) if overhead else None,
        "evaluation_s_median": statistics.median(evals) if evals else None,
    }


def seeds_run(task: str, studies_dir: Path, corpora: Path) -> list[int]:
    """The seeds for which cato's study of ``task`` exists (finished or not)."""
    corpus, column, min_class = TASKS[task]
    prefix = study_name(corpora / corpus, column, "botorch", True, 0, min_class).removesuffix("0")
    return sorted(int(d.name.removeprefix(prefix)) for d in studies_dir.glob(prefix + "*")
                  if d.name.removeprefix(prefix).isdigit())


def summarize(task: str, seeds: list[int], samplers: list[str], studies_dir: Path, corpora: Path) -> dict:
    corpus, column, min_class = TASKS[task]
    def exists(seed: int, name: str) -> bool:
        return (studies_dir / study_name(corpora / corpus, column, name, True, seed, min_class) / "study.db").exists()

    runs = {seed: {name: run_one(corpora / corpus, column, name, True, 0, seed, studies_dir, run=False,
                                 min_class_size=min_class)[0]
                   for name in samplers if exists(seed, name)} for seed in seeds if exists(seed, "botorch")}
    # A seed is reported at a budget once cato's study has run that many trials; each other sampler
    # where it has too.
    reached = {seed: {b: {n: st for n, st in s.items() if len(st.trials("search")) >= b} for b in BUDGETS}
               for seed, s in runs.items()}
    reached = {seed: {b: s for b, s in by_budget.items() if "botorch" in s} for seed, by_budget in reached.items()}
    reached = {seed: by_budget for seed, by_budget in reached.items() if by_budget}
    if not reached:
        return {}
    everything = [t.values for s in runs.values() for st in s.values() for t in st.trials()]
    ref = reference(everything, OBJECTIVES)
    max_depth = next(iter(next(iter(runs.values())).values())).settings.max_depth
    return {"task": task, "corpus": corpus, "label_column": column, "min_class_size": min_class,
            "reference_point": ref, "f1_noise_sd": f1_noise([s["botorch"] for s in runs.values()]),
            "seeds": {str(seed): {str(b): summarize_seed(s, b, ref, max_depth) for b, s in by_budget.items()}
                      for seed, by_budget in reached.items()}}


def f1_noise(studies: list) -> float | None:
    """The F1 noise of one measurement: the pooled standard deviation of the F1 of each baseline
    configuration that several seeds' studies measured (the same configuration, other model seeds). A
    margin above the search's front of at most 2√2 of it (two such measurements two standard deviations
    apart) is inside the noise."""
    by_config: dict[str, list[float]] = {}
    for study in studies:  # by configuration: a top-k baseline's features can differ between seeds
        for t in study.trials("baseline"):
            by_config.setdefault(t.config.key(), []).append(t.values["f1"])
    spreads = [statistics.variance(v) for v in by_config.values() if len(v) > 1]
    return math.sqrt(statistics.mean(spreads)) if spreads else None


def table(result: dict) -> str:
    """Markdown: one row per seed and budget."""
    rows = ["| seed | budget | HV cato / MO-TPE / random | best F1 search (ALL@max) | baselines above search front "
            "| within 0.01 at >=2x: exists / study / search | BO overhead / eval s |", "|---|---|---|---|---|---|---|"]
    for seed, budgets in result["seeds"].items():
        for b, r in budgets.items():
            hv = " / ".join(f"{r['hypervolume'].get(n):.3f}" if r["hypervolume"].get(n) is not None else "-"
                            for n in ("botorch", "tpe", "random"))
            yes = lambda v: f"{r['all_max']['cpu'] / v['cpu']:.1f}x" if v else "no"  # noqa: E731
            rows.append(f"| {seed} | {b} | {hv} | {r['best_f1_search']:.3f} ({r['all_max']['f1']:.3f}) | "
                        f"{', '.join(r['baselines_above_search_front']) or 'none'} | "
                        f"{yes(r['within_tolerance_exists'])} / {yes(r['within_tolerance_study'])} / "
                        f"{yes(r['within_tolerance_search'])} | "
                        f"{(r['bo_overhead_s_median'] or 0):.1f} / {(r['evaluation_s_median'] or 0):.1f} |")
    return "\n".join(rows)


def overview(results: dict) -> str:
    """Markdown: one row per task and budget, over its seeds, naming the seeds where a target fails."""
    rows = ["| task | budget | seeds | no baseline above the search's front | none above beyond the F1 noise "
            f"| none above beyond the F1 and cost noise (+{COST_NOISE:.0%} CPU) "
            "| HV cato / MO-TPE / random, median (cato ahead: pairs) | within 0.01 at >=2x: found / exists "
            "(median x) | BO overhead / evaluation s |", "|---|---|---|---|---|---|---|---|---|"]
    median = lambda xs: statistics.median(xs) if xs else float("nan")  # noqa: E731
    for task, result in results.items():
        if task not in TASKS:  # the file's provenance
            continue
        for b in map(str, BUDGETS):
            seeds = {s: r[b] for s, r in result["seeds"].items() if b in r}
            if not seeds:
                continue
            failing = [f"s{s}: " + ", ".join(f"{n} +{r['above_by_f1'].get(n, float('nan')):.3f}"
                                             for n in r["baselines_above_search_front"])
                       for s, r in seeds.items() if r["baselines_above_search_front"]]
            # Margins beyond the noise of two measurements (see f1_noise).
            noise = 2 * math.sqrt(2) * (result.get("f1_noise_sd") or 0.0)
            clear = sum(all(m <= noise for m in r["above_by_f1"].values()) for r in seeds.values())
            margins = [r.get("above_by_f1_within_cost_noise") for r in seeds.values()]  # None: an older summary
            costed = "–" if None in margins else f"{sum(all(m <= noise for m in c.values()) for c in margins)} of {len(seeds)}"
            hv = {n: [r["hypervolume"][n] for r in seeds.values() if r["hypervolume"].get(n) is not None]
                  for n in ("botorch", "tpe", "random")}
            # Every (seed, other sampler) pair that ran: cato's search against it at the same budget.
            compared = [(r["hypervolume"]["botorch"], r["hypervolume"][n]) for r in seeds.values()
                        for n in ("tpe", "random") if r["hypervolume"].get(n) is not None]
            ahead = sum(cato > other for cato, other in compared)
            exists = [r for r in seeds.values() if r["within_tolerance_exists"]]
            found = [r for r in exists if r["within_tolerance_search"]]
            ratio = median([r["all_max"]["cpu"] / r["within_tolerance_search"]["cpu"] for r in found])
            rows.append(
                f"| {task} | {b} | {len(seeds)} | {len(seeds) - len(failing)} of {len(seeds)}"
                f"{' (' + '; '.join(failing) + ')' if failing else ''} | {clear} of {len(seeds)} (±{noise:.3f}) | {costed} | "
                + " / ".join(f"{median(v):.3f}" if v else "-" for v in hv.values())
                + f" ({ahead} of {len(compared)}) | {len(found)} / {len(exists)}"
                + (f" ({ratio:.1f}x)" if found else "") + " | "
                f"{median([r['bo_overhead_s_median'] for r in seeds.values() if r['bo_overhead_s_median']]):.1f} / "
                f"{median([r['evaluation_s_median'] for r in seeds.values() if r['evaluation_s_median']]):.1f} |")
    return "\n".join(rows)


def measured_per_task(result: dict) -> str:
    """When and at which commit each task's studies were summarized (a task run again carries its own
    stamp; the others the file's)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for task, r in result.items():
        if task in TASKS:
            groups.setdefault((r.get("date", result["date"]), r.get("commit", result["commit"])), []).append(task)
    return "; ".join(f"{date}, commit {commit} ({', '.join(tasks)})" for (date, commit), tasks in groups.items())


def results_tables(results: Path) -> dict[str, str]:
    """RESULTS.md's overview of the protocol, from ``tune_protocol.json``."""
    result = provenance.load("tune_protocol.json", results)
    return {"tune-protocol": f"Measured {measured_per_task(result)}: `tune_protocol.json`.\n\n" + overview(result)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--seeds", default="0,1,2,3,4", help="Which seeds to run (every seed run is summarized).")
    ap.add_argument("--samplers", default="botorch,tpe,random", help="Which studies to run (all are summarized).")
    ap.add_argument("--budget", type=int, default=max(BUDGETS))
    ap.add_argument("--corpora", type=Path, default=ROOT.parent.parent / "shared" / "corpora")
    ap.add_argument("--studies", type=Path, default=ROOT / "studies")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "tune_protocol.json")
    ap.add_argument("--summarize-only", action="store_true")
    args = ap.parse_args()
    tasks = args.tasks.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    if not args.summarize_only:
        for seed in seeds:  # seed-major: every task gets its first seeds before any gets its last
            for task in tasks:
                corpus, column, min_class = TASKS[task]
                for sampler in args.samplers.split(","):
                    run_one(args.corpora / corpus, column, sampler, True, args.budget, seed, args.studies,
                            min_class_size=min_class)
    results = {task: summarize(task, seeds_run(task, args.studies, args.corpora), ["botorch", "tpe", "random"],
                               args.studies, args.corpora) for task in tasks}
    stamp = provenance.stamp()
    # Each task summarized now carries this run's date and commit: tasks not run again keep theirs.
    results = {k: {**v, "date": stamp["date"], "commit": stamp["commit"]} for k, v in results.items() if v}
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    stamped = {k: {"date": previous["date"], "commit": previous["commit"], **v} if k in TASKS and "commit" in previous
               else v for k, v in previous.items()}
    args.out.write_text(json.dumps({**stamped, **results, **stamp}, indent=1, default=str))
    for task, result in results.items():
        print(f"\n### {task}\n\n{table(result)}")
    print(f"\n### Every task\n\n{overview(results)}")


if __name__ == "__main__":
    main()
