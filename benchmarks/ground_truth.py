"""Ground truth as in CATO: an exhaustive small space, and how much of its hypervolume each search finds.

Every configuration of 6 features (MI-top-6 at full depth unless --features) x depths 1..50, with one
model (a decision tree), is measured on one corpus: macro-F1 by grouped 5-fold cross-validation on the
full corpus, and Zeek CPU per connection by `cato profile` (real Zeek, the configuration's generated
script) on a sample of the captures (--cost-sample: every k-th capture; 3,150 profiles of the full
corpus would take hours). The table is saved as it grows and reused.

With --cost profiler the cost is instead the CPU of the configuration's own event handlers per
connection, from Zeek's script profiler (`--profile-scripts`) over the same captures: without Zeek's
start-up and packet path, which every configuration shares and which are most of a small run's CPU, the
configurations' costs stand apart from the noise (see RESULTS.md). --passes N measures each N times
(median), each pass in a new shuffled order, and keeps how often the script's event handlers ran per
connection (exact); --table fitted fits each selection's costs through those counts (fitted_costs).

Then each search (cato's BoTorch sampler as a study runs it, its baselines ALL@10 and ALL@50 looked up
first; the same without baselines, with and without the MI prior; Optuna's MO-TPE; random) runs
--budget evaluations per seed on the same space, looking its evaluations up in the table, and we report
HVI: the hypervolume of its own evaluations over the exhaustive front's, after 10, 25 and 50.

    python benchmarks/ground_truth.py --corpus ../shared/corpora/iot-sentinel [--seeds 3]
    python benchmarks/ground_truth.py --corpus ../shared/corpora/iot-sentinel --cost profiler --passes 2 --workers 2
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from cato.codegen import generate
from cato.corpus import link_subset, load_corpus
from cato.dataset import load_dataset
from cato.features import resolve
from cato.model import ModelSpec, cross_val_f1, grouped_folds
from cato.cache import default_cache_dir
from cato.zeek.profiling import profile, profiled_handler_cpu
from cato.search.importance import inclusion_prior, mutual_information, rfe_ranking, top_k
from cato.search.objectives import F1_TOLERANCE
from cato.search.pareto import hypervolume, pareto_mask, reference, to_max_space
from cato.search.samplers import BoTorchSampler, RandomSampler, TPESampler, initial_design
from cato.search.space import SearchSpace

import provenance

ROOT = Path(__file__).resolve().parent
MODEL = ModelSpec("dt", 1, 12)
OBJECTIVES = ("f1", "cpu")
CHECKPOINTS = (10, 25, 50)
#: cato's search as a study runs it, the row the target is judged on.
STUDY_SEARCH = "cato (BoTorch qLogNEHVI + MI prior, the study's baselines first)"
#: cato's search with no baselines measured (``cato tune --no-baselines``).
NO_BASELINES_SEARCH = "cato (BoTorch qLogNEHVI + MI prior)"


COSTS = {"process": "cpu", "profiler": "script_cpu"}  # --cost -> the table's field


def measure_table(corpus_path: Path, features: list[str] | None, max_depth: int, cost_sample: int,
                  out: Path, cost: str = "process", workers: int = 1, passes: int = 1) -> dict:
    """Every configuration's F1 and the ``cost`` measure (see ``COSTS``): the median of ``passes``
    measurements, each pass over every configuration in a new shuffled order, so that the machine's
    drift falls on configurations at random rather than on whole selections. Kept in ``out`` as it grows."""
    corpus = load_corpus(corpus_path)
    dataset = load_dataset(corpus, max_depth, default_cache_dir())
    table = json.loads(out.read_text()) if out.exists() else {}
    if not features:
        features = table.get("features")
    if not features:
        mi = mutual_information(dataset.matrix(dataset.features, max_depth), dataset.y)
        features = top_k(dataset.features, mi, 6)
    table.update(features=features, max_depth=max_depth, model=MODEL.to_dict(), cost_sample=cost_sample,
                 corpus=str(corpus_path))
    points = table.setdefault("points", {})
    folds = grouped_folds(dataset.y, dataset.groups, 5, 0)
    subsets = [s for k in range(1, len(features) + 1) for s in itertools.combinations(features, k)]
    for subset in subsets:
        for depth in range(1, max_depth + 1):
            key = f"{','.join(subset)}@{depth}"
            if key not in points:
                points[key] = {"features": list(subset), "depth": depth, "f1": cross_val_f1(
                    dataset.matrix(list(subset), depth), dataset.y, folds, MODEL)["f1"]}
    field = COSTS[cost]
    runs = f"{field}_runs"
    for p in points.values():
        if field in p and runs not in p:  # tables measured before passes
            p[runs] = [p[field]]
    todo = []
    for n in range(passes):
        this_pass = [k for k in points if len(points[k].get(runs, [])) <= n]
        random.Random(n).shuffle(this_pass)
        todo += this_pass
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(workers) as pool:
        sample = load_corpus(link_subset(corpus_path, corpus.captures[::cost_sample], Path(tmp) / "corpus"))
        table["cost_sample_captures"] = len(sample.captures)

        def measure(key: str) -> tuple[float, float | None]:
            p = points[key]
            script = generate(resolve(",".join(p["features"])), (p["depth"],), "auto")
            if cost == "profiler":
                work = Path(tempfile.mkdtemp(dir=tmp))  # a pass may measure one key on both workers
                run = profiled_handler_cpu(sample, script, work)
                shutil.rmtree(work)
                conns = max(run.connections, 1)
                return run.cpu_s / conns * 1e6, sum(run.event_calls.values()) / conns
            run = profile(sample, script, repeat=1, attribute=False, paired=False,
                          use_cache=not p.get(runs))  # a cached profile is no new measurement
            return run.cpu_s / max(run.connections, 1) * 1e6, None

        t0 = time.time()
        for done, (key, (us, calls)) in enumerate(zip(todo, pool.map(measure, todo)), 1):
            if calls is not None:
                points[key]["handler_calls"] = calls  # per connection; the same in every pass
            points[key].setdefault(runs, []).append(us)
            points[key][field] = statistics.median(points[key][runs])
            if done % 50 == 0:
                out.write_text(json.dumps(table, separators=(",", ":")))
                print(f"{done} of {len(todo)} {cost} costs measured, {(time.time() - t0) / done:.2f} s each",
                      file=sys.stderr, flush=True)
    out.write_text(json.dumps(table, separators=(",", ":")))
    return table


def denoised_costs(points: dict, max_depth: int) -> dict:
    """Each selection's CPU as a non-decreasing function of depth (isotonic regression of its 50 measured
    costs). One profile per configuration on a sample of captures is noisy (about 11% spread between
    neighbouring depths of one script), while the true cost of a selection grows with depth (issue 3);
    the exhaustive front of the raw table is partly made of lucky measurements no search can aim at."""
    from sklearn.isotonic import IsotonicRegression
    out = {}
    subsets = {tuple(p["features"]) for p in points.values()}
    depths = np.arange(1, max_depth + 1)
    for subset in subsets:
        keys = [f"{','.join(subset)}@{d}" for d in depths]
        fitted = IsotonicRegression(increasing=True).fit_transform(depths, [points[k]["cpu"] for k in keys])
        for k, cpu in zip(keys, fitted):
            out[k] = {**points[k], "cpu": float(cpu)}
    return out


def fitted_costs(points: dict, runs_field: str) -> tuple[dict, dict]:
    """Each selection's cost as ``a + w * calls(depth)``, fitted by least squares to every measurement
    of it (all depths, all passes), where ``calls`` is how often its event handlers ran per connection:
    exact and repeatable, counted in the same profiler runs (``handler_calls``).

    One selection's scripts differ only in the depth, so a handler costs the same per call at every
    depth; what the depth changes is how often the packet handler runs (the others run once per
    connection or per ICMP packet whatever the depth). Pooling a selection's 50 depths x passes through
    that exact count leaves each cost far less of one run's noise than its own median.
    Returns (points with ``cpu`` fitted, fit statistics)."""
    out, rel_residuals = {}, []
    by_selection: dict[tuple, list[str]] = {}
    for key, p in points.items():
        if "handler_calls" not in p:
            raise ValueError(f"{key}: no handler call counts; measure a pass with this version")
        by_selection.setdefault(tuple(p["features"]), []).append(key)
    for keys in by_selection.values():
        calls = {k: points[k]["handler_calls"] for k in keys}
        x = np.array([[1.0, calls[k]] for k in keys for _ in points[k][runs_field]])
        y = np.array([c for k in keys for c in points[k][runs_field]])
        (a, w), *_ = np.linalg.lstsq(x, y, rcond=None)
        for k in keys:
            fit = float(a + w * calls[k])
            out[k] = {**points[k], "cpu": fit}
            rel_residuals += [(c - fit) / fit for c in points[k][runs_field]]
    r = np.abs(np.array(rel_residuals))
    return out, {"median_abs_rel_residual": float(np.median(r)), "p90_abs_rel_residual": float(np.quantile(r, 0.9))}


def oracle_hvi(points: dict, clean: dict, ref: dict, exhaustive: float) -> dict:
    """HVI on the measured costs of a search that knew every configuration's denoised cost and F1 and
    spent its evaluations on the best: the denoised front first, then the next non-dominated layers.
    No search can know a measurement's noise before making it, so this bounds what one can reach."""
    keys = list(points)
    y = to_max_space([clean[k] for k in keys], OBJECTIVES, ref)
    order: list[str] = []
    left = np.arange(len(keys))
    while len(order) < max(CHECKPOINTS) and len(left):
        front = pareto_mask(y[left])
        layer = left[front]
        order += [keys[i] for i in layer[np.argsort(-y[layer, 0])]]
        left = left[~front]
    return {str(k): hypervolume([points[key] for key in order[:k]], OBJECTIVES, ref) / exhaustive
            for k in CHECKPOINTS}


def run_searches(table: dict, dataset_ranks: tuple[list, list, np.ndarray], seeds: int, budget: int,
                 seen_costs: str = "raw", ref_f1_fraction: float = 0.5,
                 only: Sequence[str] | None = None, denoise: bool = True,
                 botorch_options: dict | None = None) -> dict:
    """Each search looks up the measured (``raw``) or the ``denoised`` costs; its HVI is reported on the
    measured costs and, as ``hvi_denoised``, on the denoised costs of the same configurations against
    the denoised exhaustive front. Without ``denoise`` (a table already fitted) the two are one."""
    features, max_depth = table["features"], table["max_depth"]
    points = table["points"]
    values = list(points.values())
    ref = reference(values, OBJECTIVES)
    exhaustive = hypervolume(values, OBJECTIVES, ref)
    clean = denoised_costs(points, max_depth) if denoise else points
    clean_ref = reference(list(clean.values()), OBJECTIVES)
    clean_exhaustive = hypervolume(list(clean.values()), OBJECTIVES, clean_ref)
    space = SearchSpace(tuple(features), max_depth, ("dt",), model=MODEL)
    mi_rank, rfe_rank, prior = dataset_ranks

    # As a study does: the rankings are moves too.
    as_a_study = {"rankings": [mi_rank, rfe_rank]}

    def lookup(config):
        p = (clean if seen_costs == "denoised" else points)[f"{','.join(config.features)}@{config.depth}"]
        return {"f1": p["f1"], "cpu": p["cpu"]}

    # A study measures its baselines first (ALL, MI-top-10 and RFE-top-10 at depths 10 and 50: with 6
    # features, ALL@10 and ALL@50): the search knows them, places its footholds from them and aims its
    # accurate end at ALL@max; only its own trials count towards its HVI.
    known = [(c, lookup(c)) for c in (space.config(features, d, MODEL) for d in (10, 50) if d <= max_depth)]
    baselines = {"known": known, "target_f1": known[-1][1]["f1"] - F1_TOLERANCE}
    samplers = {
        STUDY_SEARCH: lambda s: BoTorchSampler(
            space, OBJECTIVES, s, prior=prior,
            initial=initial_design(space, mi_rank, rfe_rank, s, ks=(2, 4), measured=known),
            ref_f1_fraction=ref_f1_fraction, **as_a_study, **baselines, **(botorch_options or {})),
        NO_BASELINES_SEARCH: lambda s: BoTorchSampler(
            space, OBJECTIVES, s, prior=prior, initial=initial_design(space, mi_rank, rfe_rank, s, ks=(2, 4)),
            ref_f1_fraction=ref_f1_fraction, **as_a_study, **(botorch_options or {})),
        "BoTorch qLogNEHVI, no prior": lambda s: BoTorchSampler(
            space, OBJECTIVES, s, initial=initial_design(space, mi_rank, rfe_rank, s, ks=(2, 4)),
            ref_f1_fraction=ref_f1_fraction, **as_a_study, **(botorch_options or {})),
        "Optuna MO-TPE": lambda s: TPESampler(space, OBJECTIVES, s),
        "random search": lambda s: RandomSampler(space, s),
    }
    results = {}
    for name, make in samplers.items():
        if only and not any(o in name for o in only):
            continue
        curves, clean_curves, overheads = [], [], []
        for seed in range(seeds):
            sampler = make(seed)
            history = []
            for n in range(budget):
                config, info = sampler.ask(history, n)
                if "bo_overhead_s" in info:
                    overheads.append(info["bo_overhead_s"])
                history.append((config, lookup(config)))
            keys = [f"{','.join(c.features)}@{c.depth}" for c, _ in history]
            curves.append([hypervolume([v for _, v in history[:k]], OBJECTIVES, ref) / exhaustive
                           for k in CHECKPOINTS])
            clean_curves.append([hypervolume([clean[key] for key in keys[:k]], OBJECTIVES, clean_ref)
                                 / clean_exhaustive for k in CHECKPOINTS])
            print(f"{name} seed {seed}: HVI {[round(c, 3) for c in curves[-1]]}, denoised "
                  f"{[round(c, 3) for c in clean_curves[-1]]}", file=sys.stderr, flush=True)
        results[name] = {**{f"{label}_{stat}": {str(k): float(getattr(np, stat)(np.array(c)[:, i]))
                                                for i, k in enumerate(CHECKPOINTS)}
                            for label, c in (("hvi", curves), ("hvi_denoised", clean_curves))
                            for stat in ("mean", "min")},
                         "bo_overhead_s_median": statistics.median(overheads) if overheads else None}
    return {"exhaustive_hypervolume": exhaustive, "reference_point": ref,
            "oracle_hvi": oracle_hvi(points, clean, ref, exhaustive),
            "denoised_exhaustive_hypervolume": clean_exhaustive, "denoised_reference_point": clean_ref,
            "configurations": len(points), "seeds": seeds, "budget": budget, "searches_saw": seen_costs,
            "searches": results}


#: How RESULTS.md names each search.
LABELS = {STUDY_SEARCH: "cato as a study runs it (its baselines ALL@10 and ALL@50 first)",
          NO_BASELINES_SEARCH: "cato with `--no-baselines` (qLogNEHVI + MI prior)"}
RESULTS_FILE = "ground_truth_iot-sentinel_profiler_fitted.json"


def hvi_table(result: dict) -> str:
    """Each search's HVI mean (min) over the seeds at each checkpoint, and its BO overhead; cato's last
    checkpoint in bold, the figure the target is judged on."""
    lines = ["| search | " + " | ".join(f"HVI @{k}" for k in CHECKPOINTS) + " | BO overhead s (median) |",
             "|---|" + "---|" * (len(CHECKPOINTS) + 1)]
    for name, s in result["searches"].items():
        cells = [f"{s['hvi_mean'][str(k)]:.3f} ({s['hvi_min'][str(k)]:.3f})" for k in CHECKPOINTS]
        if name == STUDY_SEARCH:
            cells[-1] = f"**{cells[-1]}**"
        overhead = s["bo_overhead_s_median"]
        cells.append("–" if overhead is None else f"{overhead:.1f}")
        lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_tables(results: Path) -> dict[str, str]:
    """This benchmark's RESULTS.md tables, by block name, from its results files under ``results``."""
    result = provenance.load(RESULTS_FILE, results)
    # Searches kept from an earlier run (--only) carry their own date and commit.
    earlier: dict[tuple[str, str], list[str]] = {}
    for name, s in result["searches"].items():
        when = s.get("date", "date unknown"), s.get("commit", "unknown")
        if when != (result["date"], result["commit"]):
            earlier.setdefault(when, []).append(name)
    kept = "".join(f"; {' and '.join(names)}: {date}, commit {commit}" for (date, commit), names in earlier.items())
    return {"ground-truth": f"Measured {provenance.measured(RESULTS_FILE, results=results)}{kept}. "
                            f"{result['seeds']} seeds, HVI mean (min).\n\n{hvi_table(result)}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--features", help="Comma-separated 6 features (default: MI-top-6 at full depth).")
    ap.add_argument("--max-depth", type=int, default=50)
    ap.add_argument("--cost-sample", type=int, default=8, help="Profile every k-th capture.")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=50)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--seen-costs", choices=("raw", "denoised"), default="raw",
                    help="Costs the searches look up: as measured, or denoised (see denoised_costs).")
    ap.add_argument("--ref-f1-fraction", type=float, default=0.5,
                    help="The BoTorch searches' reference F1, as a fraction of the best seen.")
    ap.add_argument("--only", action="append", help="Run the searches whose name contains this.")
    ap.add_argument("--botorch", default="", help="BoTorch sampler options, e.g. weighted_f1=0 (ablations).")
    ap.add_argument("--cost", choices=tuple(COSTS), default="process",
                    help="process: Zeek's whole CPU per connection (start-up included), one `cato profile` "
                         "run; profiler: CPU of the script's event handlers per connection, one "
                         "--profile-scripts run (the searches' results go to a _profiler file).")
    ap.add_argument("--table", choices=("measured", "fitted"), default="measured",
                    help="measured: each configuration's median cost; fitted: each selection's costs "
                         "fitted through its handlers' exact call counts (fitted_costs; --cost profiler), "
                         "which the searches then see and are scored on (results go to a _fitted file).")
    ap.add_argument("--workers", type=int, default=1, help="Configurations measured at once.")
    ap.add_argument("--passes", type=int, default=1, help="Measurements per configuration (median).")
    args = ap.parse_args()
    name = args.corpus.resolve().name
    table_file = ROOT / "results" / f"ground_truth_{name}.table.json"
    suffix = ("" if args.cost == "process" else "_" + args.cost) + ("" if args.table == "measured" else "_fitted")
    out = args.out or ROOT / "results" / f"ground_truth_{name}{suffix}.json"
    table = measure_table(args.corpus, args.features.split(",") if args.features else None, args.max_depth,
                          args.cost_sample, table_file, args.cost, args.workers, args.passes)
    field = COSTS[args.cost]  # the searches see the chosen measure as "cpu"
    table = {**table, "points": {k: {**p, "cpu": p[field]} for k, p in table["points"].items()}}
    options = {k: json.loads(v) for k, v in (o.split("=") for o in args.botorch.split(",") if o)}
    fit = None
    if args.table == "fitted":
        points, fit = fitted_costs(table["points"], f"{field}_runs")
        table = {**table, "points": points}
    corpus = load_corpus(args.corpus)
    dataset = load_dataset(corpus, args.max_depth, default_cache_dir())
    feats = table["features"]
    x = dataset.matrix(feats, args.max_depth)
    mi = mutual_information(x, dataset.y)
    ranks = (top_k(feats, mi, len(feats)), top_k(feats, rfe_ranking(x, dataset.y, step=1), len(feats), False),
             inclusion_prior(mi, expected=3.0))
    stamp = provenance.stamp()
    result = {**stamp, "features": feats, "model": str(MODEL), "cost": args.cost, "cost_sample": args.cost_sample,
              "cost_sample_captures": table.get("cost_sample_captures"),
              "table": args.table, **({"fit": fit} if fit else {}),
              "botorch_options": options,
              **run_searches(table, ranks, args.seeds, args.budget, args.seen_costs, args.ref_f1_fraction,
                             args.only, denoise=args.table == "measured",
                             botorch_options=options)}
    for search in result["searches"].values():  # each search's own, for when a later --only run keeps it
        search.update(date=stamp["date"], commit=stamp["commit"])
    if args.only and out.exists():  # keep the searches not run this time
        result["searches"] = {**json.loads(out.read_text()).get("searches", {}), **result["searches"]}
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
