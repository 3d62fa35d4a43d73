"""Where a task's accurate end lies: F1 and CPU of ALL and of each ranking's top-k at several depths.

Issue 31's "no baseline above the search's own front" fails when the search never measures a point as
accurate as ALL@max at no more CPU. This measures, on a study's own settings (folds, model seeds,
sample, deployment) and with ALL@max's model, the configurations a feature-selection baseline would
try: ALL at each ``--depths``, and the MI and RFE rankings' top ``--ks`` at each ``--depths``. It tells
whether a cheaper point within the F1 noise of ALL@max exists for the search to find, and where.

    python benchmarks/accurate_end.py --study STUDY --depths 20,30,50 --ks 40,60 \
        --out benchmarks/results/accurate_end_iot-device_type.json

Each configuration is an ordinary evaluation (cached with the studies': a second run is quick).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import provenance
from cato.cache import default_cache_dir
from cato.dataset import load_dataset
from cato.search.importance import top_k
from cato.search.space import Config
from cato.study import Study


def grid(study: Study, depths: list[int], ks: list[int]) -> list[tuple[str, int | None, int, tuple[str, ...]]]:
    """(ranking, k, depth, features): ALL at each depth, then each ranking's top-k at each depth, within the
    study's space (features without information left out, as the baselines do)."""
    importance, space = study.storage.get("importance"), study.storage.get("space")
    feats = importance["features"]
    rankings = {"mi": top_k(feats, importance["mi"], len(feats)),
                "rfe": top_k(feats, importance["rfe_rank"], len(feats), higher_is_better=False)}
    out = [("all", None, d, tuple(space)) for d in depths]
    for d in depths:
        for name, ranked in rankings.items():
            for k in ks:
                out.append((name, k, d, tuple(f for f in ranked[:k] if f in space)))
    return out


def measure(study_dir: Path, depths: list[int], ks: list[int]) -> dict:
    study = Study.open(study_dir)
    corpus = study.settings.load_corpus()
    dataset = load_dataset(corpus, study.settings.max_depth, default_cache_dir())
    evaluator = study.evaluator(corpus, dataset)
    baselines = {t.name: t for t in study.trials("baseline")}
    all_max = baselines[f"all@{study.settings.max_depth}"]
    rows = []
    for ranking, k, depth, features in grid(study, depths, ks):
        t0 = time.perf_counter()
        values, _ = evaluator.evaluate(Config(features, depth, all_max.config.model))
        rows.append({"ranking": ranking, "k": k, "features": len(features), "depth": depth,
                     "f1": values["f1"], "cpu": values["cpu"], "eval_s": round(time.perf_counter() - t0, 1)})
        print(rows[-1], flush=True)
    return {"study": str(study_dir), "label_column": study.settings.label_column, "seed": study.settings.seed,
            "baselines": {name: {"f1": t.values["f1"], "cpu": t.values["cpu"]} for name, t in baselines.items()},
            "search_best_f1": max(t.values["f1"] for t in study.trials("search")),
            "configurations": rows}


def table(result: dict) -> str:
    """One row per configuration, with its F1 against ALL at the deepest depth measured and that one's CPU
    over its own: every row measured in the same run (a study's baselines may be of another day)."""
    rows = result["configurations"]
    ref = max((r for r in rows if r["ranking"] == "all"), key=lambda r: r["depth"])
    lines = [f"| configuration | F1 (− ALL@{ref['depth']}) | CPU µs/conn (ALL@{ref['depth']} ÷) |", "|---|---|---|"]
    for r in rows:
        what = f"ALL ({r['features']})" if r["ranking"] == "all" else f"{r['ranking'].upper()} top-{r['k']}"
        lines.append(f"| {what} @{r['depth']} | {r['f1']:.3f} ({r['f1'] - ref['f1']:+.3f}) | "
                     f"{r['cpu']:.0f} ({ref['cpu'] / r['cpu']:.1f}x) |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", type=Path, help="The study whose settings (and ALL@max model) are used.")
    ap.add_argument("--depths", default="20,30,50")
    ap.add_argument("--ks", default="40,60")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--table", action="store_true", help="Print --out's table and stop.")
    args = ap.parse_args()
    if args.table:
        print(table(json.loads(args.out.read_text())))
        return
    if args.study is None:
        ap.error("--study is required to measure")
    result = {**provenance.stamp(), **measure(args.study, [int(d) for d in args.depths.split(",")],
                                              [int(k) for k in args.ks.split(",")])}
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))


if __name__ == "__main__":
    main()
