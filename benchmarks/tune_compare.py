"""cato tune against the usual feature selection, side by side, same corpus, same budget.

For each corpus: a 50-evaluation study with cato's sampler (BoTorch qLogNEHVI + MI prior), then the
same budget with Optuna's MO-TPE and with random search, all on the default objectives, macro-F1 and Zeek
CPU per connection (time-to-decision is measured for every trial too), plus the ALL / MI-top-10 / RFE-top-10 baselines at depths 10, 50 and
max. Reports the hypervolume of each (one reference point per corpus, shared by everything), the
hypervolume after 10/25/50 evaluations, BO overhead per iteration, the wall time of each study, and
for the cheapest front point within 0.01 macro-F1 of ALL@max its cost ratios against ALL@max.

Studies live in --studies (resumable: run the script again after an interruption).

    python benchmarks/tune_compare.py --corpus ../shared/corpora/iot-sentinel --corpus ../shared/corpora/ndpi
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from cato.cache import default_cache_dir
from cato.dataset import load_dataset
from cato.search.evaluator import Evaluator
from cato.search.pareto import hypervolume, reference
from cato.study import Study, StudySettings, best_within, run_study

ROOT = Path(__file__).resolve().parent
OBJECTIVES = ("f1", "cpu")
CHECKPOINTS = (10, 25, 50)


def study_name(corpus_path: Path, label_column: str, sampler: str, prior: bool, seed: int,
               min_class_size: int = 1) -> str:
    task = label_column + (f"-min{min_class_size}" if min_class_size > 1 else "")
    return f"{corpus_path.resolve().name}-{task}-{sampler}{'' if prior or sampler != 'botorch' else '-noprior'}-s{seed}"


def run_one(corpus_path: Path, label_column: str, sampler: str, prior: bool, budget: int, seed: int,
            studies: Path, run: bool = True, min_class_size: int = 1) -> tuple[Study, float]:
    name = study_name(corpus_path, label_column, sampler, prior, seed, min_class_size)
    settings = StudySettings(str(corpus_path.resolve()), label_column, objectives=OBJECTIVES, seed=seed,
                             sampler=sampler, use_prior=prior, min_class_size=min_class_size)
    directory = studies / name
    study = Study.open(directory, settings, resume=(directory / "study.db").exists())
    # Wall time of a study finished earlier, approximated by what its trials recorded (evaluations and
    # BO overhead); a study stopped early reports fewer evaluations.
    recorded = sum(t.details.get("eval_s", 0) + t.details.get("bo_overhead_s", 0) for t in study.trials())
    if not run or len(study.trials("search")) >= budget:
        return study, recorded
    corpus = study.settings.load_corpus()
    dataset = load_dataset(corpus, study.settings.max_depth, default_cache_dir())
    t0 = time.perf_counter()
    run_study(study, dataset, study.evaluator(corpus, dataset), budget,
              lambda msg, n, total, front: print(f"\r{name}: {n}/{total} {msg[:60]:60}", end="", file=sys.stderr))
    elapsed = time.perf_counter() - t0
    print(file=sys.stderr)
    return study, elapsed


def rescore_cpu(study: Study) -> int:
    """Rewrite the cpu objective of finished trials with the current steady-state definition (bare Zeek's
    per-connection CPU less start-ups, plus the script's marginal CPU), from the figures each trial
    recorded. For studies run while cpu was total CPU less the script run's own start-ups, which on
    nDPI (23 Zeek runs) left cheap scripts at 0 within noise."""
    n = 0
    for t in study.trials():
        d = t.details
        if "marginal_cpu_us_per_conn" in d and "baseline_steady_cpu_us_per_conn" in d and "cpu" in t.values:
            values = {**t.values, "cpu": d["baseline_steady_cpu_us_per_conn"] + max(d["marginal_cpu_us_per_conn"], 0.0)}
            study.storage.revise_trial(t.number, values, t.details)
            n += 1
    return n


def reevaluate(study: Study, evaluator: Evaluator) -> int:
    """Evaluate every finished trial again with the current evaluator and rewrite its objective values:
    for studies run before a change to how costs are measured (profile version) or to the dataset, so
    that every sampler is compared on the same measurements. Quality comes from its cache; each distinct
    script is profiled once, whichever study proposed it."""
    n = 0
    for t in study.trials():
        values, details = evaluator.evaluate(t.config)
        # The study's own timings stay.
        study.storage.revise_trial(t.number, values, {**t.details, **details, "reevaluated": True,
                                                      "eval_s": t.details.get("eval_s")})
        n += 1
        print(f"\r{study.directory.name}: re-evaluated {n}", end="", file=sys.stderr)
    print(file=sys.stderr)
    return n


def summarize(runs: dict[str, tuple[Study, float]], budget: int) -> dict:
    studies = [s for s, _ in runs.values()]
    baselines = studies[0].trials("baseline")
    everything = [t.values for s in studies for t in s.trials()]
    ref = reference(everything, OBJECTIVES)
    settings = studies[0].settings
    out: dict = {"corpus": Path(settings.corpus).name, "seed": settings.seed, "model_seeds": settings.model_seeds,
                 "reference_point": ref, "objectives": list(OBJECTIVES), "budget": budget, "samplers": {},
                 "baselines": {}}
    all_max = next(t for t in baselines if t.name == f"all@{settings.max_depth}")
    for t in baselines:
        out["baselines"][t.name] = {**t.values, "latency_ms": t.details["latency_ms"], "hypervolume": hypervolume([t.values], OBJECTIVES, ref),
                                    "features": len(t.config.features), "depth": t.config.depth}
    out["baselines_together_hypervolume"] = hypervolume([t.values for t in baselines], OBJECTIVES, ref)
    for label, (study, elapsed) in runs.items():
        trials = study.trials("search")
        overhead = [t.details["bo_overhead_s"] for t in trials if "bo_overhead_s" in t.details]
        evals = sorted(t.details.get("eval_s", 0.0) for t in trials)
        entry = {
            "trials": len(trials),
            "hypervolume": hypervolume([t.values for t in trials], OBJECTIVES, ref),
            "hypervolume_at": {str(k): hypervolume([t.values for t in trials[:k]], OBJECTIVES, ref)
                               for k in CHECKPOINTS if k <= len(trials)},
            "study_wall_s": elapsed,
            "evaluation_s_median": evals[len(evals) // 2] if evals else None,
            "bo_overhead_s_median": sorted(overhead)[len(overhead) // 2] if overhead else None,
            "bo_overhead_s_max": max(overhead) if overhead else None,
            "front": [{"trial": t.number, "features": list(t.config.features), "depth": t.config.depth,
                       "model": str(t.config.model), **t.values} for t in study.pareto()],
        }
        match = best_within(trials, all_max.values["f1"])
        if match is not None:
            entry["versus_all_max"] = {
                "trial": match.number, "features": list(match.config.features), "depth": match.config.depth,
                "model": str(match.config.model), **match.values,
                "latency_ms": match.details["latency_ms"],
                "cpu_ratio": all_max.values["cpu"] / match.values["cpu"],
                "latency_ratio": all_max.details["latency_ms"] / max(match.details["latency_ms"], 1e-9),
            }
        out["samplers"][label] = entry
    out["all_max"] = {"name": all_max.name, **all_max.values, "latency_ms": all_max.details["latency_ms"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, action="append", required=True)
    ap.add_argument("--label-column", default="label", help="labels.csv column used as the class.")
    ap.add_argument("--min-class-size", type=int, default=1, help="Leave out classes with fewer rows.")
    ap.add_argument("--budget", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samplers", default="botorch,tpe,random",
                    help="Comma-separated: botorch, botorch-noprior, tpe, random.")
    ap.add_argument("--studies", type=Path, default=ROOT / "studies")
    ap.add_argument("--out", type=Path, help="Result file (default results/tune_<corpus>_<label>.json).")
    ap.add_argument("--summarize-only", action="store_true", help="Report the studies as they are.")
    ap.add_argument("--rescore-cpu", action="store_true", help="Recompute the cpu objective (see rescore_cpu).")
    ap.add_argument("--reevaluate", default="", help="Comma-separated samplers whose finished trials are evaluated "
                    "again with the current profiler and dataset (see reevaluate).")
    args = ap.parse_args()
    for corpus in args.corpus:
        runs = {}
        for label in args.samplers.split(","):
            sampler, prior = ("botorch", False) if label == "botorch-noprior" else (label, True)
            runs[label] = run_one(corpus, args.label_column, sampler, prior, args.budget, args.seed, args.studies,
                                  run=not args.summarize_only, min_class_size=args.min_class_size)
            if label in args.reevaluate.split(","):
                study = runs[label][0]
                c = study.settings.load_corpus()
                ds = load_dataset(c, study.settings.max_depth, default_cache_dir())
                reevaluate(study, study.evaluator(c, ds))
            if args.rescore_cpu:
                print(f"{label}: cpu re-scored on {rescore_cpu(runs[label][0])} trials", file=sys.stderr)
        result = summarize(runs, args.budget)
        out = args.out or ROOT / "results" / f"tune_{corpus.resolve().name}_{args.label_column}.json"
        out.write_text(json.dumps(result, indent=1))
        print(json.dumps({k: v for k, v in result.items() if k != "samplers"}, indent=1))
        for label, entry in result["samplers"].items():
            print(label, {k: v for k, v in entry.items() if k != "front"})


if __name__ == "__main__":
    main()
