"""How much cheaper does each point of a tuned front get with the native engine, at the same F1?

Takes the search front of each study given (the vectors, hence F1, are the same with either engine:
tests/test_native.py), profiles every point's script with the script engine and with the native
engine on the study's corpus, and prints the steady-state Zeek CPU per connection of both.

    python benchmarks/native_fronts.py STUDY [STUDY ...] --repeat 3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cato.codegen import generate
from cato.features import resolve
from cato.study import load_study
from cato.zeek.profiling import profile

ROOT = Path(__file__).resolve().parent


def front_costs(study_dir: Path, repeat: int) -> dict:
    study = load_study(study_dir)
    corpus = study.settings.load_corpus()
    rows = []
    for t in study.pareto("search"):
        c = t.config
        cpu = {}
        for engine in ("script", "native"):
            script = generate(resolve(",".join(c.features)), (c.depth,), "auto", c.deadline, engine)
            cost = profile(corpus, script, repeat=repeat, attribute=False, paired=False)
            cpu[engine] = cost.steady_cpu_us_per_conn
        rows.append({"trial": t.number, "features": len(c.features), "depth": c.depth, "deadline_s": c.deadline,
                     "f1": t.values["f1"], "script_cpu_us": cpu["script"], "native_cpu_us": cpu["native"],
                     "ratio": cpu["script"] / max(cpu["native"], 1e-9)})
    return {"study": study_dir.name, "corpus": Path(study.settings.corpus).name, "points": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("studies", type=Path, nargs="+")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "native_fronts.json")
    args = ap.parse_args()
    results = [front_costs(s, args.repeat) for s in args.studies]
    args.out.write_text(json.dumps(results, indent=1))
    for r in results:
        print(f"\n{r['corpus']} ({r['study']}):\n")
        print("| front point | F1 | script engine µs/conn | native µs/conn | × cheaper |\n|---|---|---|---|---|")
        for p in r["points"]:
            t = "" if p["deadline_s"] is None else f", T {p['deadline_s'] * 1e3:g} ms"
            print(f"| {p['features']} @{p['depth']}{t} | {p['f1']:.3f} | {p['script_cpu_us']:.1f} | "
                  f"{p['native_cpu_us']:.1f} | {p['ratio']:.2f}x |")


if __name__ == "__main__":
    main()
