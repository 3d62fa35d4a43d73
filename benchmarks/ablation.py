"""Issue 31's ablation: what each mechanism of cato's search contributes, measured by turning it off.

Each variant is cato's search with one mechanism off, or one added ("+"), by a sampler parameter as
``cato tune --sampler-param`` sets it (docs/search.md lists them), against the full search:

* on the ground truth (``--part ground-truth``): the exhaustive IoT Sentinel table of ground_truth.py
  (fitted profiler costs), HVI after 25 and 50 evaluations, mean and min over ``--seeds`` seeds. Cheap
  (table look-ups) and noise-free, but a 6-feature space with no baselines: the mechanisms that act on
  baselines, footholds or large spaces do nothing there.
* on issue 20's tasks (``--part tasks``): a real study per (task, seed, variant) at ``--budget``, the
  initial design shared (each variant's study starts as a copy of the full search's baselines and
  initial design, ``fork``: the variants differ only in what BO proposes), scored as
  tune_protocol.py scores cato's search: hypervolume of the search trials (one reference per task and
  seed), baselines above the search's own front (and by how much F1; and those above beyond the
  measurements' noise, ``above_beyond_noise``), and a point within 0.01 F1 of ALL@50 at >= 2x lower CPU.

    python benchmarks/ablation.py --part ground-truth --seeds 4
    python benchmarks/ablation.py --part tasks --tasks iot-label,ndpi-app --seeds 0 --budget 20,30
    python benchmarks/ablation.py --summarize-only          # the table from what ran
    python benchmarks/ablation.py --table                   # the whole table, per task, from the JSON
    python benchmarks/ablation.py --part change --change footholds --tasks ... --seeds 0,1,2 --budget 20

A comparison measured again side by side (both variants now, on the full search's initial design of
another directory: costs measured on another day, or under another catalog, do not compare):

    python benchmarks/ablation.py --part tasks --variants full --studies NEW --fork-from OLD ...
    python benchmarks/ablation.py --part tasks --variants "+ front without baselines" --studies NEW --fork-from OLD ...
    python benchmarks/ablation.py --part change --change "front without baselines" --studies NEW ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance  # noqa: E402
from tune_compare import OBJECTIVES, ROOT  # noqa: E402
from tune_protocol import TASKS, close_to, dominated_by, front_values, margins_within_cost_noise  # noqa: E402

#: variant -> the sampler parameters that turn its mechanism off (the full search: none). Mechanisms
#: retired since keep their rows in the results file, with the parameters they ran with.
VARIANTS = {
    "full": {},
    "depth sweep": {"depth_sweep": False},
    "depth lines": {"depth_lines": False},
    "ranking moves": {"ranking_moves": False},
    "neighbours": {"pool_per_anchor": 0},
    "hill climb": {"hill_climb_steps": 0},
    "πBO weight": {"prior_strength": 0.0},
    "baselines in the model": {"model_baselines": False},
    "footholds": {"footholds": False},
    "the accurate end's term": {"target_weight": 0.0},
}
#: Variants that change nothing on the ground truth (no baselines, so no target; 6 features: no footholds).
TASK_ONLY = {"baselines in the model", "footholds", "the accurate end's term"}
RESULTS_FILE = "ablation.json"
#: Before/after comparisons of one change each (``--part change --change NAME``), on every task and seed:
#: ``before`` runs from a checkout of ``commit`` (the code before the change), ``after`` from today's.
#: Each side's sampler parameters hold the defaults of its code: they only name its studies apart.
#: * footholds: at fixed depths and sizes (before commit db07237), or from the study's own baselines
#:   (``design.foothold_depths``, ``design.bisection_size``);
#: * depth sweep: the Lipschitz bound's best case (before), or the Wiener model's expected gain
#:   (``candidates.depth_sweep``);
#: * front without baselines: the front a trial improves on with the baselines (before), or the
#:   search's own trials only (``front_with_baselines``);
#: * accurate end weighted 10: the weighted hypervolume's accurate end counted 1 + 1 (before) or
#:   1 + 10 times (``target_weight``): does a heavier accurate end find the cheaper points within the
#:   F1 noise of ALL@max that ``accurate_end.py`` finds?
#: * footholds at the F1 noise (commit 45938f8's code, since replaced): both footholds at the
#:   shallowest depth where ALL comes within the report's 0.01 of ALL@max (before) or within the
#:   study's own F1 noise (after); both sides share the baselines, each measures its own design;
#: * a foothold at each ALL depth: a high-F1 foothold at each depth whose ALL beats every shallower ALL
#:   by more than 0.01 (before: the design above's "before") or by more than the study's own F1 noise
#:   (``design.foothold_depths``, ``foothold_tolerance``);
#: * accurate-end bisection: BO from the same design without (before) or with the footholds' bisection
#:   carried on while a baseline ALL lies above every search trial (``design.accurate_end_step``);
#: * split length-scale prior: the GP's length-scale prior scaled to every input (BoTorch's, before) or
#:   apart for the mask's bits and the summaries (``acquisition.split_scale_kernel``);
#: * πBO weight, again: today's search with (before) and without (after) the πBO weight, from the same
#:   baselines and design (the ablation measured it before the footholds and the GP's split prior).
CHANGES = {
    "footholds": {"before": ("+ footholds fixed", {"target_weight": 1.0}),
                  "after": ("+ footholds from the baselines", {"target_weight": 1.0, "footholds": True}),
                  "commit": "630e60d"},
    "depth sweep": {"before": ("+ Lipschitz depth sweep", {"depth_sweep": True, "target_weight": 1.0}),
                    "after": ("+ Wiener depth sweep", {"depth_sweep": True}),
                    "commit": "bf6a139"},
    # A setting, not a code change: both sides from one commit (None).
    "front without baselines": {"before": ("full", {}),
                                "after": ("+ front without baselines", {"front_with_baselines": False}),
                                "commit": None},
    "accurate end weighted 10": {"before": ("full", {}),
                                 "after": ("+ target weighted 10", {"target_weight": 10.0}),
                                 "commit": None},
    "footholds at the F1 noise": {"before": ("+ footholds at 0.01", {"foothold_tolerance": 0.01}),
                                  "after": ("+ footholds at the F1 noise", {"foothold_tolerance": None}),
                                  "commit": None},
    "a foothold at each ALL depth": {"before": ("+ footholds at 0.01", {"foothold_tolerance": 0.01}),
                                     "after": ("+ a foothold at each ALL depth",
                                               {"foothold_tolerance": None, "footholds": True}),
                                     "commit": None},
    "accurate-end bisection": {"before": ("no accurate-end bisection", {"accurate_end_bisection": False}),
                               "after": ("+ accurate-end bisection", {"accurate_end_bisection": True}),
                               "commit": None},
    "split length-scale prior": {"before": ("one length-scale prior", {"summary_lengthscales": False}),
                                 "after": ("+ split length-scale prior", {"summary_lengthscales": True}),
                                 "commit": None},
    "πBO weight, again": {"before": ("full", {}), "after": ("πBO weight", {"prior_strength": 0.0}),
                          "commit": None},
}
#: Every variant ``--variants`` can name: the ablation's, and both sides of each change.
NAMED = {**VARIANTS, **{name: params for c in CHANGES.values() for name, params in (c["before"], c["after"])}}
GT_CHECKPOINTS = ("25", "50")
#: Sampler parameters that change the initial design: a variant setting one forks the baselines alone.
DESIGN_PARAMS = {"footholds", "foothold_tolerance"}


def slug(variant: str, params: dict) -> str:
    return "full" if variant == "full" else ("with-" if variant.startswith("+") else "no-") + "-".join(
        json.dumps(params).strip("{}").replace('"', "").replace(": ", "=").split(", "))


def run_task(task: str, seed: int, variant: str, budget: int, studies: Path, corpora: Path, run: bool = True,
             params: dict | None = None, fork_from: Path | None = None, profile_repeat: int = 1):
    from cato.cache import default_cache_dir
    from cato.dataset import load_dataset
    from cato.study import Study, StudySettings, run_study

    folder, column, min_class = TASKS[task]
    corpus_path = corpora / folder
    params = NAMED[variant] if params is None else params
    name = f"{task}-s{seed}-{slug(variant, params)}"
    settings = StudySettings(str(corpus_path.resolve()), column, objectives=OBJECTIVES, seed=seed,
                             min_class_size=min_class, sampler_params=dict(params), profile_repeat=profile_repeat)
    directory = studies / name
    if not run and not (directory / "study.db").exists():
        return None
    full = (fork_from or studies) / f"{task}-s{seed}-full"
    if run and not directory.exists() and (full / "study.db").exists():
        fork(full, directory, params, design=not DESIGN_PARAMS & set(params))
    study = Study.open(directory, settings, resume=(directory / "study.db").exists())
    if run and len(study.trials("search")) < budget:
        corpus = study.settings.load_corpus()
        dataset = load_dataset(corpus, study.settings.max_depth, default_cache_dir())
        run_study(study, dataset, study.evaluator(corpus, dataset), budget,
                  lambda msg, n, total, front: print(f"\r{name}: {n}/{total} {msg[:50]:50}", end="", file=sys.stderr))
        print(file=sys.stderr)
    return study


def fork(source: Path, directory: Path, params: dict, design: bool = True) -> None:
    """A new study in ``directory`` holding ``source``'s baselines and (with ``design``) its initial
    design (its first ``--initial`` search trials), measurements included, with ``params`` as its
    sampler parameters: the variant then differs from the full search only in what BO proposes (a code
    change since the full search ran would otherwise have the initial design's costs measured again,
    with their noise). Without ``design``, for variants that change the initial design: the baselines
    alone, shared by both sides of a comparison."""
    import sqlite3
    directory.mkdir(parents=True)
    src, dst = sqlite3.connect(source / "study.db"), sqlite3.connect(directory / "study.db")
    with dst:
        src.backup(dst)
    src.close()
    settings = json.loads(dst.execute("SELECT value FROM study WHERE key = 'settings'").fetchone()[0])
    kept = [n for (n,) in dst.execute("SELECT number FROM trials WHERE kind = 'search' AND state = 'complete' "
                                      "ORDER BY number LIMIT ?", (settings["initial"],))] if design else []
    with dst:
        dst.execute("DELETE FROM trials WHERE kind = 'search' AND number > ?", (max(kept, default=-1),))
        dst.execute("UPDATE study SET value = ? WHERE key = 'settings'",
                    (json.dumps({**settings, "sampler_params": params}),))
    dst.close()


def above_beyond_noise(baselines: list, search: list[dict], f1_noise: float) -> dict:
    """The baselines above the search's trials beyond the measurements' noise, and by how much F1: each
    baseline whose F1 exceeds, by more than ``f1_noise`` (the study's, ``objectives.f1_noise``), that of
    every search trial costing at most ``COST_NOISE`` more."""
    margins = margins_within_cost_noise({t.name: t.values for t in baselines}, search)
    return {name: round(m, 4) for name, m in margins.items() if m > f1_noise}


def score_tasks(tasks: list[str], seeds: list[int], budget: int, studies: Path, corpora: Path,
                variants: dict, require_all: bool = False) -> dict:
    """Per task and seed, each variant's score (see the module's docstring); ``variants``: name -> the
    sampler parameters it ran with. A task-seed is scored when the full search ran it (or, with
    ``require_all``, every variant)."""
    from cato.search.objectives import f1_noise
    from cato.search.pareto import hypervolume, reference

    out: dict = {}
    for task in tasks:
        for seed in seeds:
            runs = {v: run_task(task, seed, v, budget, studies, corpora, run=False, params=p)
                    for v, p in variants.items()}
            runs = {v: s for v, s in runs.items() if s is not None and len(s.trials("search")) >= budget}
            needed = set(variants) if require_all else {"full"}
            if not needed <= set(runs):
                continue
            baselines = next(iter(runs.values())).trials("baseline")
            everything = [t.values for s in runs.values() for t in s.trials()[:len(baselines) + budget]]
            ref = reference(everything, OBJECTIVES)
            all_max = next(t.values for t in baselines if t.name == "all@50")
            entry = {}
            for v, study in runs.items():
                search = [t.values for t in study.trials("search")][:budget]
                front = front_values(search)
                above = {t.name: round(max(t.values["f1"] - max((p["f1"] for p in front if p["cpu"] <= t.values["cpu"]),
                                                                 default=0.0), 0.0), 4)
                         for t in baselines if not dominated_by(t.values, search)}
                close = close_to(search, all_max)
                noise = f1_noise(t.details.get("f1_seeds", ()) for t in study.trials("baseline")) or 0.0
                entry[v] = {"hv": hypervolume(search, OBJECTIVES, ref), "above": above,
                            "above_beyond_noise": above_beyond_noise(baselines, search, noise),
                            "best_f1": max(p["f1"] for p in search),
                            "within_001_at_2x": close is not None and all_max["cpu"] >= 2.0 * close["cpu"],
                            "sources": [t.details.get("source") for t in study.trials("search")][:budget]}
            out[f"{task} s{seed} @{budget}"] = entry
    return out


def run_ground_truth(seeds: int, corpora: Path) -> dict:
    """Each variant but ``TASK_ONLY`` on the ground truth's fitted table, as ground_truth.py runs cato."""
    from ground_truth import COSTS, NO_BASELINES_SEARCH, fitted_costs, measure_table, run_searches
    from cato.cache import default_cache_dir
    from cato.corpus import load_corpus
    from cato.dataset import load_dataset
    from cato.search.importance import inclusion_prior, mutual_information, rfe_ranking, top_k

    corpus_path = corpora / "iot-sentinel"
    table_file = ROOT / "results" / "ground_truth_iot-sentinel.table.json"
    table = measure_table(corpus_path, None, 50, 8, table_file, "profiler")
    field = COSTS["profiler"]
    table = {**table, "points": {k: {**p, "cpu": p[field]} for k, p in table["points"].items()}}
    table = {**table, "points": fitted_costs(table["points"], f"{field}_runs")[0]}
    dataset = load_dataset(load_corpus(corpus_path), 50, default_cache_dir())
    feats = table["features"]
    x = dataset.matrix(feats, 50)
    mi = mutual_information(x, dataset.y)
    ranks = (top_k(feats, mi, len(feats)), top_k(feats, rfe_ranking(x, dataset.y, step=1), len(feats), False),
             inclusion_prior(mi, expected=3.0))
    out = {}
    for variant, params in VARIANTS.items():
        if variant in TASK_ONLY:
            continue
        # The ablation's figures are the search's without baselines, as they were first measured.
        result = run_searches(table, ranks, seeds, 50, only=[NO_BASELINES_SEARCH], denoise=False,
                              botorch_options=params)
        search = result["searches"][NO_BASELINES_SEARCH]
        out[variant] = {k: search[k] for k in ("hvi_mean", "hvi_min", "bo_overhead_s_median")}
        print(f"ground truth, {variant}: {out[variant]}", file=sys.stderr, flush=True)
    return {"seeds": seeds, "variants": out}


def table(result: dict) -> str:
    """One row per variant: ground-truth HVI; per task, seed and budget its hypervolume against the full
    search's (the full search's own in its row) and the baselines above its front (F1 margin); the
    median hypervolume change and how many task-seeds have a baseline above."""
    gt = result.get("ground_truth", {}).get("variants", {})
    tasks = result.get("tasks", {})
    variants = result.get("variants", VARIANTS)  # as measured: a mechanism retired since keeps its row
    head = ["mechanism off (or added: +)", "ground truth HVI @25 / @50 (min @50)", *tasks,
            "HV change, median", "a baseline above"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]

    def above(e: dict) -> str:
        return ", ".join(f"{k} +{m:.3f}" for k, m in e["above"].items()) or "none above"

    for v in variants:
        g = gt.get(v)
        cells = ["none (full search)" if v == "full" else v,
                 "–" if g is None else f"{g['hvi_mean']['25']:.3f} / {g['hvi_mean']['50']:.3f} ({g['hvi_min']['50']:.3f})"]
        changes, with_above, scored = [], 0, 0
        for entry in tasks.values():
            e, full = entry.get(v), entry["full"]
            if e is None:
                cells.append("–")
                continue
            scored += 1
            with_above += bool(e["above"])
            if v == "full":
                cells.append(f"HV {e['hv']:.3f}; {above(e)}")
                continue
            changes.append(e["hv"] / full["hv"] - 1)
            cells.append(f"{changes[-1]:+.1%}; {above(e)}")
        cells.append(f"{float(np.median(changes)):+.1%}" if changes else "–")
        cells.append(f"{with_above} of {scored}" if scored else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _spread(changes: list[float]) -> str:
    """Relative changes as their median and range."""
    return f"{float(np.median(changes)):+.1%} ({min(changes):+.1%} to {max(changes):+.1%})"


def summary_table(result: dict) -> str:
    """``table`` summarized (``--table`` prints both): one row per variant measured anywhere, its ground-truth HVI, the
    median and range of its hypervolume change over the task-seed-budgets it ran, and how many of them
    have a baseline above the search's front."""
    gt = result.get("ground_truth", {}).get("variants", {})
    tasks = result.get("tasks", {})
    lines = ["| mechanism off (or added: +) | ground truth HVI @25 / @50 (min @50) | task-seed-budgets | "
             "HV change: median (range) | a baseline above |", "|---|---|---|---|---|"]
    for v in result.get("variants", VARIANTS):
        g = gt.get(v)
        entries = [(e[v], e["full"]) for e in tasks.values() if v in e]
        if g is None and not entries:
            continue  # declared, never measured
        changes = [mine["hv"] / full["hv"] - 1 for mine, full in entries]
        spread = _spread(changes) if changes and v != "full" else "–"
        lines.append("| " + " | ".join([
            "none (full search)" if v == "full" else v,
            "–" if g is None else f"{g['hvi_mean']['25']:.3f} / {g['hvi_mean']['50']:.3f} ({g['hvi_min']['50']:.3f})",
            str(len(entries)) if entries else "–", spread,
            f"{sum(bool(mine['above']) for mine, _ in entries)} of {len(entries)}" if entries else "–"]) + " |")
    return "\n".join(lines)


def _measured_at(change: dict) -> str:
    """The commits a change's comparisons were measured at (each task-seed-budget keeps its own)."""
    return ", ".join(dict.fromkeys(change.get("commits", {}).values())) or change["commit"]


def changes_summary(changes: dict) -> str:
    """RESULTS.md's form of the changes' comparisons: one row per change (``--table`` prints each per task)."""
    lines = ["| change | measured (before) | task-seed-budgets | HV change: median (range) | "
             "best F1 of the search, mean: before → after | with a baseline above: before / after | "
             "beyond the F1 and cost noise |", "|---|---|---|---|---|---|---|"]
    for change, c in changes.items():
        before, after = (CHANGES[change][side][0] for side in ("before", "after"))
        entries = list(c["scores"].values())
        moved = [e[after]["hv"] / e[before]["hv"] - 1 for e in entries]
        best = [float(np.mean([e[side]["best_f1"] for e in entries])) for side in (before, after)]
        beyond = " / ".join(str(sum(bool(e[side]["above_beyond_noise"]) for e in entries))
                            if all("above_beyond_noise" in e[side] for e in entries) else "–"
                            for side in (before, after))
        lines.append(f"| {change} | {_measured_at(c)} ({c['before_commit'] or 'the same commit'}) | {len(entries)} | "
                     f"{_spread(moved)} | {best[0]:.3f} → {best[1]:.3f} | "
                     f"{sum(bool(e[before]['above']) for e in entries)} / "
                     f"{sum(bool(e[after]['above']) for e in entries)} | {beyond} |")
    return "\n".join(lines)


def change_table(change: str, scores: dict) -> str:
    """One row per task: per seed, the search's hypervolume before and after ``change``, and the
    baselines above each front."""
    before, after = (CHANGES[change][side][0] for side in ("before", "after"))
    # One column per seed and budget ("s0 @20"), budgets in turn.
    columns = sorted({tuple(key.split(" ")[1:3]) for key in scores}, key=lambda c: (int(c[1][1:]), c[0]))
    tasks = list(dict.fromkeys(key.split(" ")[0] for key in scores))
    lines = ["| task | " + " | ".join(" ".join(c) for c in columns)
             + " | baselines above: before / after (task-seed-budgets) |",
             "|---" * (len(columns) + 2) + "|"]
    changes = []
    for task in tasks:
        cells, above = [], [0, 0]
        for column in columns:
            entry = scores.get(" ".join((task, *column)))
            if entry is None:
                cells.append("–")
                continue
            old, new = entry[before], entry[after]
            changes.append(new["hv"] / old["hv"] - 1)
            above = [above[0] + bool(old["above"]), above[1] + bool(new["above"])]
            cells.append(f"{old['hv']:.3f} → {new['hv']:.3f} ({changes[-1]:+.1%})")
        lines.append(f"| {task} | " + " | ".join(cells) + f" | {above[0]} / {above[1]} |")
    lines.append(f"\nMedian change over {len(changes)} task-seed-budgets: {float(np.median(changes)):+.1%}; "
                 f"higher in {sum(c > 0.005 for c in changes)}, within ±0.5% in {sum(abs(c) <= 0.005 for c in changes)}, "
                 f"lower in {sum(c < -0.005 for c in changes)}.")
    return "\n".join(lines)


def results_tables(results: Path) -> dict[str, str]:
    """This benchmark's RESULTS.md tables, from its results file under ``results``."""
    changes = provenance.load(RESULTS_FILE, results).get("changes")
    return {"ablation-changes": f"Measured: `{RESULTS_FILE}`, each change at its commit.\n\n"
                                + changes_summary(changes)} if changes else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("ground-truth", "tasks", "change"), action="append", default=[],
                    help="change: score --change's before and after studies on --tasks and --seeds at --budget "
                    "(run each first with --part tasks --variants NAME, before from a checkout of its commit).")
    ap.add_argument("--change", choices=tuple(CHANGES), help="--part change: which (CHANGES).")
    ap.add_argument("--tasks", default="iot-label,ndpi-app")
    ap.add_argument("--seeds", default="0", help="Tasks: comma-separated seeds; ground truth: how many.")
    ap.add_argument("--budget", default="20,30", help="Comma-separated budgets, run in turn over every variant "
                    "(the first results for every variant come soonest); scored at the last.")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--studies", type=Path, default=ROOT / "studies" / "ablation")
    ap.add_argument("--fork-from", type=Path, help="Start each new study (the full search's too) from the "
                    "baselines and initial design of this directory's full search: a comparison measured "
                    "again, side by side, on the same initial design.")
    ap.add_argument("--corpora", type=Path, default=ROOT.parent.parent / "shared" / "corpora")
    ap.add_argument("--profile-repeat", type=int, default=1, help="New studies measure each cost as the median "
                    "of this many Zeek runs (``cato tune --profile-repeat``); give them a --studies of their own.")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / RESULTS_FILE)
    ap.add_argument("--summarize-only", action="store_true")
    ap.add_argument("--table", action="store_true", help="Print the whole table (every task) of --out and stop.")
    args = ap.parse_args()
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    if args.table:
        print(summary_table(previous) + "\n\n" + table(previous))
        for change, c in previous.get("changes", {}).items():
            print(f"\n{change} (commit {_measured_at(c)}, before: {c['before_commit'] or 'the same commit'}):\n")
            print(change_table(change, c["scores"]))
        return
    budgets = [int(b) for b in args.budget.split(",")]
    # The file's stamp dates the main table; each change's comparison carries its own.
    main_table = bool({"ground-truth", "tasks"} & set(args.part)) or args.summarize_only
    result = {**previous, **(provenance.stamp() if main_table or not previous else {}),
              "variants": {**previous.get("variants", {}), **VARIANTS}}
    if main_table:
        result["budget"] = budgets[-1]
    tasks = [t for t in args.tasks.split(",") if t]
    seeds = [int(s) for s in args.seeds.split(",")]
    if "ground-truth" in args.part and not args.summarize_only:
        result["ground_truth"] = run_ground_truth(seeds[-1], args.corpora)
        args.out.write_text(json.dumps(result, indent=1))
    if "tasks" in args.part and not args.summarize_only:
        for budget in budgets:
            for task in tasks:
                for seed in seeds:
                    for variant in [v for v in args.variants.split(",") if v]:
                        run_task(task, seed, variant, budget, args.studies, args.corpora,
                                 fork_from=args.fork_from, profile_repeat=args.profile_repeat)
    if "change" in args.part:
        stamp, c = provenance.stamp(), CHANGES[args.change]
        previous_change = result.get("changes", {}).get(args.change, {})
        kept = previous_change.get("scores", {})  # other tasks' and budgets' scores, each with its commit
        fresh = score_tasks(tasks, seeds, budgets[-1], args.studies, args.corpora,
                            dict([c["before"], c["after"]]), require_all=True)
        commits = {**{k: previous_change.get("commits", {}).get(k, previous_change.get("commit")) for k in kept},
                   **{k: stamp["commit"] for k in fresh}}
        scores = {**kept, **fresh}
        result.setdefault("changes", {})[args.change] = {
            "date": stamp["date"], "commit": stamp["commit"], "command": stamp["command"],
            "budgets": sorted({int(k.split("@")[1]) for k in scores}), "before_commit": c["commit"],
            "commits": commits, "scores": scores}
    if "tasks" in args.part or args.summarize_only:
        result["tasks"] = {**previous.get("tasks", {}),
                           **score_tasks(tasks, seeds, budgets[-1], args.studies, args.corpora,
                                                   result["variants"])}
    args.out.write_text(json.dumps(result, indent=1))
    print(table(result))


if __name__ == "__main__":
    main()
