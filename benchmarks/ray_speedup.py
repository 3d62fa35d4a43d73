"""How much faster does a study run on Ray with more trials in flight?

The same study (corpus, seed, budget, no baselines) three ways: locally, on a local Ray with one trial
in flight, and with two. Each run starts from the same cached dataset and with no cached costs or F1s,
so every run measures and fits everything itself. Wall time of the whole ``cato tune`` and of its
search phase (first trial started to last trial finished, from study.db).

    python benchmarks/ray_speedup.py --corpus ../shared/corpora/iot-sentinel --budget 6 --max-depth 10

Results: benchmarks/results/ray_speedup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cato.study import Study
from cato.study.storage import TrialState

RESULTS = Path(__file__).parent / "results" / "ray_speedup.json"
RUNS = {"local": [], "ray, 1 trial in flight": ["--ray", "local", "--ray-trials", "1"],
        "ray, 2 trials in flight": ["--ray", "local", "--ray-trials", "2"]}


def _search_span_s(study: Path) -> float:
    trials = Study.open(study).storage.trials("search", TrialState.COMPLETE)
    return max(t.finished for t in trials) - min(t.started for t in trials)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--budget", type=int, default=6)
    ap.add_argument("--max-depth", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cato = str(Path(sys.executable).parent / "cato")
    work = Path(tempfile.mkdtemp(prefix="cato-ray-speedup-"))
    cache = work / "cache"
    env = {**os.environ, "CATO_CACHE": str(cache), "RAY_USAGE_STATS_ENABLED": "0"}
    common = [args.corpus, "--budget", str(args.budget), "--max-depth", str(args.max_depth), "--seed",
              str(args.seed), "--no-baselines"]
    # The dataset once, outside the timed runs.
    subprocess.run([cato, "tune", *common, "--study", str(work / "warm"), "--budget", "1"], env=env, check=True,
                   capture_output=True)
    results = {}
    for name, extra in RUNS.items():
        for kept in ("profiles", "quality", "baselines"):
            shutil.rmtree(cache / kept, ignore_errors=True)
        study = work / name.replace(" ", "-").replace(",", "")
        t0 = time.perf_counter()
        run = subprocess.run([cato, "tune", *common, "--study", str(study), *extra], env=env, capture_output=True,
                             text=True)
        wall = time.perf_counter() - t0
        if run.returncode:
            sys.exit(f"{name}: cato tune failed:\n{run.stderr[-2000:]}")
        results[name] = {"wall_s": wall, "search_s": _search_span_s(study)}
        print(name, json.dumps(results[name]), flush=True)
    base = results["local"]
    print("\n| run | wall s | search phase s | speedup of the search phase against local |")
    print("|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['wall_s']:.1f} | {r['search_s']:.1f} | {base['search_s'] / r['search_s']:.2f}x |")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"corpus": args.corpus, "budget": args.budget, "max_depth": args.max_depth,
                                   "runs": results}, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
