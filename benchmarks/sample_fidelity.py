"""How far do the samples a large corpus is tuned on lie from the whole corpus?

Two questions, on a corpus small enough to measure whole (the dev corpora):

* ``cv``: macro-F1 cross-validated on stratified samples (``Dataset.sample``, what ``cato tune
  --cv-sample`` draws) against F1 on every connection, for the baselines a study measures and random
  configurations of the search space; the gap is set beside the F1's own noise (its spread over model
  seeds on the whole corpus).
* ``profile``: the steady-state CPU per connection a trial's cost is (``cato tune --profile-sample-mb``)
  measured on random whole captures against the whole corpus, set beside the profile's own run-to-run
  spread.

    python benchmarks/sample_fidelity.py cv --corpus ../shared/corpora/iot-sentinel --sizes 2000,5000,10000
    python benchmarks/sample_fidelity.py profile --corpus ../shared/corpora/iot-sentinel --sample-mb 16

Results go to benchmarks/results/sample_fidelity.json (merged by corpus and question).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from cato.cache import default_cache_dir
from cato.codegen import generate
from cato.corpus import load_corpus
from cato.dataset import load_dataset
from cato.features import resolve
from cato.model import ModelSpec, cross_val_f1, grouped_folds
from cato.search.importance import mutual_information, top_k
from cato.search.space import SearchSpace
from cato.zeek.profiling import profile

RESULTS = Path(__file__).parent / "results" / "sample_fidelity.json"
MODEL = ModelSpec("rf", 50, 16)


def _save(corpus: str, question: str, result: dict) -> None:
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data.setdefault(Path(corpus).name, {})[question] = result
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=1))


def cv(corpus_dir: str, sizes: list[int], configs: int, draws: int, max_depth: int) -> dict:
    corpus = load_corpus(corpus_dir)
    dataset = load_dataset(corpus, max_depth, default_cache_dir())
    feats = dataset.features
    mi = mutual_information(dataset.matrix(feats, max_depth), dataset.y, 0)
    chosen = {f"all@{d}": (feats, d) for d in (10, max_depth)}
    chosen[f"mi10@10"] = (top_k(feats, mi, 10), 10)
    rng = np.random.default_rng(0)
    space = SearchSpace(tuple(feats), max_depth, ("rf",))
    for k in range(configs):
        c = space.sample(rng, log_depth=True)
        chosen[f"random{k}"] = (list(c.features), c.depth)

    def f1(ds, sel, depth, seed=0):
        folds = grouped_folds(ds.y, ds.groups, 5, 0)
        return cross_val_f1(ds.matrix(sel, depth), ds.y, folds, MODEL, seed)["f1"]

    rows = []
    for name, (sel, depth) in chosen.items():
        t0 = time.perf_counter()
        full_seeds = [f1(dataset, sel, depth, s) for s in range(3)]
        full_s = (time.perf_counter() - t0) / 3
        row = {"config": name, "features": len(sel), "depth": depth, "f1_full": full_seeds[0],
               "f1_seed_sd": statistics.stdev(full_seeds), "full_s": full_s, "samples": {}}
        for size in sizes:
            if size >= dataset.connections:
                continue
            t0 = time.perf_counter()
            got = [f1(dataset.sample(size, k), sel, depth) for k in range(draws)]
            row["samples"][str(size)] = {"f1": got, "s": (time.perf_counter() - t0) / draws}
        rows.append(row)
        print(name, json.dumps(row), flush=True)
    result = {"connections": dataset.connections, "model": str(MODEL), "draws": draws, "rows": rows}
    _save(corpus_dir, "cv", result)
    return result


def profile_question(corpus_dir: str, sample_mb: float, repeat: int) -> dict:
    corpus = load_corpus(corpus_dir)
    sample = corpus.sample_captures(round(sample_mb * 2**20), 0)
    selections = {"3 counters @1": ("orig_pkts,resp_pkts,duration", 1),
                  "5 per-packet @10": ("orig_size_mean,orig_size_max,resp_size_mean,orig_iat_mean,tcp_rtt", 10),
                  "all @50": ("all", 50)}
    rows = []
    for name, (sel, depth) in selections.items():
        script = generate(resolve(sel), (depth,), "auto")
        row = {"config": name}
        for label, corp in (("full", corpus), ("sample", sample)):
            runs = [profile(corp, script, repeat=1, attribute=False, use_cache=False, paired=False)
                    .steady_cpu_us_per_conn for _ in range(repeat)]
            row[label] = runs
        rows.append(row)
        print(name, json.dumps(row), flush=True)
    result = {"sample_captures": len(sample.captures), "captures": len(corpus.captures), "sample_mb": sample_mb,
              "repeat": repeat, "rows": rows}
    _save(corpus_dir, "profile", result)
    return result


def summarize() -> None:
    data = json.loads(RESULTS.read_text())
    for corpus, questions in data.items():
        if "cv" in questions:
            r = questions["cv"]
            print(f"\n{corpus}: CV F1 on stratified samples vs all {r['connections']} connections ({r['model']}, "
                  f"{r['draws']} draws per size)\n")
            sizes = sorted({int(s) for row in r["rows"] for s in row["samples"]})
            print("| sample size | mean abs gap | largest gap | spread over draws (sd) | F1 seed noise (sd) | "
                  "time per CV, sample / full |")
            print("|---|---|---|---|---|---|")
            noise = statistics.mean(row["f1_seed_sd"] for row in r["rows"])
            for size in sizes:
                gaps = [v - row["f1_full"] for row in r["rows"] for v in row["samples"][str(size)]["f1"]]
                spread = statistics.mean(statistics.stdev(row["samples"][str(size)]["f1"]) for row in r["rows"])
                ratio = statistics.mean(row["samples"][str(size)]["s"] / row["full_s"] for row in r["rows"])
                print(f"| {size} | {statistics.mean(abs(g) for g in gaps):.4f} (mean {statistics.mean(gaps):+.4f}) "
                      f"| {max(gaps, key=abs):+.4f} | {spread:.4f} | {noise:.4f} | {ratio:.2f} |")
        if "profile" in questions:
            r = questions["profile"]
            print(f"\n{corpus}: steady CPU µs per connection, {r['sample_captures']} random captures "
                  f"({r['sample_mb']} MiB) vs all {r['captures']}, {r['repeat']} runs each\n")
            print("| configuration | whole corpus median (range) | sample median (range) | gap | whole corpus's "
                  "run-to-run range |")
            print("|---|---|---|---|---|")
            for row in r["rows"]:
                full, samp = row["full"], row["sample"]
                gap = statistics.median(samp) - statistics.median(full)
                print(f"| {row['config']} | {statistics.median(full):.1f} ({min(full):.1f}-{max(full):.1f}) | "
                      f"{statistics.median(samp):.1f} ({min(samp):.1f}-{max(samp):.1f}) | {gap:+.1f} | "
                      f"{max(full) - min(full):.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="question", required=True)
    a = sub.add_parser("cv")
    a.add_argument("--corpus", required=True)
    a.add_argument("--sizes", default="2000,5000,10000")
    a.add_argument("--configs", type=int, default=6, help="random configurations besides the baselines")
    a.add_argument("--draws", type=int, default=3)
    a.add_argument("--max-depth", type=int, default=50)
    b = sub.add_parser("profile")
    b.add_argument("--corpus", required=True)
    b.add_argument("--sample-mb", type=float, default=16)
    b.add_argument("--repeat", type=int, default=3)
    sub.add_parser("summarize")
    args = ap.parse_args()
    if args.question == "cv":
        cv(args.corpus, [int(s) for s in args.sizes.split(",")], args.configs, args.draws, args.max_depth)
    elif args.question == "profile":
        profile_question(args.corpus, args.sample_mb, args.repeat)
    summarize()


if __name__ == "__main__":
    main()
