"""Markdown tables for RESULTS.md from tune_compare.py and ground_truth.py results.

    python benchmarks/tune_tables.py benchmarks/results/tune_*.json benchmarks/results/ground_truth_*[!e].json

Given tune_compare.py results of one corpus for several seeds, it also prints cato's study per seed,
every hypervolume on one reference point.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cato.search.pareto import hypervolume


def ttd_ratio(point: dict) -> str:
    """A depth-1 script decides at the first packet: 0 ms, which no ratio describes."""
    return "first packet" if point["latency_ms"] < 1e-6 else f"{point['latency_ratio']:.1f}x"


def _s(v, fmt=".3f") -> str:
    return "–" if v is None else format(v, fmt)


def compare_table(path: Path) -> str:
    r = json.loads(path.read_text())
    all_max = r["all_max"]
    lines = [f"**{path.stem}** (budget {r['budget']} evaluations; hypervolume on (macro-F1, log10 CPU), "
             f"reference {json.dumps({k: round(v, 1) for k, v in r['reference_point'].items()})})", "",
             "| method | evaluations | hypervolume | x ALL@max's | HV @10 / @25 / @50 | BO overhead s (median / max) "
             "| evaluation s (median) | study wall min |", "|---|---|---|---|---|---|---|---|"]
    base_hv = r["baselines"][all_max["name"]]["hypervolume"]
    for name, e in r["samplers"].items():
        at = " / ".join(_s(e["hypervolume_at"].get(k)) for k in ("10", "25", "50"))
        lines.append(f"| {name} | {e['trials']} | {e['hypervolume']:.3f} | {e['hypervolume'] / base_hv:.1f}x | {at} | "
                     f"{_s(e['bo_overhead_s_median'], '.1f')} / {_s(e['bo_overhead_s_max'], '.1f')} | "
                     f"{_s(e['evaluation_s_median'], '.1f')} | {e['study_wall_s'] / 60:.1f} |")
    lines.append(f"| all baselines together | {len(r['baselines'])} | {r['baselines_together_hypervolume']:.3f} | "
                 f"{r['baselines_together_hypervolume'] / base_hv:.1f}x | | | | |")
    lines += ["", "| baseline | features | depth | macro-F1 | Zeek CPU µs/conn | time-to-decision ms | hypervolume |",
              "|---|---|---|---|---|---|---|"]
    for name, b in r["baselines"].items():
        lines.append(f"| {name} | {b['features']} | {b['depth']} | {b['f1']:.3f} | {b['cpu']:.1f} | "
                     f"{b['latency_ms']:.1f} | {b['hypervolume']:.3f} |")
    lines += ["", f"Cheapest search point within 0.01 macro-F1 of {all_max['name']} "
                  f"(F1 {all_max['f1']:.3f}, {all_max['cpu']:.1f} µs/conn, {all_max['latency_ms']:.1f} ms):", "",
              "| method | trial | features | depth | model | macro-F1 | CPU µs/conn | CPU x lower | "
              "time-to-decision ms | TTD x lower |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, e in r["samplers"].items():
        v = e.get("versus_all_max")
        if v is None:
            lines.append(f"| {name} | none within 0.01 | | | | | | | | |")
            continue
        lines.append(f"| {name} | {v['trial']} | {len(v['features'])} | {v['depth']} | {v['model']} | {v['f1']:.3f} | "
                     f"{v['cpu']:.1f} | {v['cpu_ratio']:.2f}x | {v['latency_ms']:.1f} | {ttd_ratio(v)} |")
    return "\n".join(lines)


def seeds_table(corpus: str, runs: list[dict], sampler: str = "botorch") -> str:
    """cato's study of one corpus per seed: hypervolume at 50 on the largest of the runs' reference points
    (a front scored on it is what its trials would score), ALL@max, and the point within 0.01 of it."""
    runs = sorted((r for r in runs if sampler in r["samplers"]), key=lambda r: r["seed"])
    objs = runs[0]["objectives"]
    ref = {"f1": 0.0, **{o: max(r["reference_point"][o] for r in runs) for o in objs if o != "f1"}}
    lines = [f"**{corpus}, {sampler} by seed** (hypervolume on reference {json.dumps({k: round(v, 1) for k, v in ref.items()})})",
             "", "| seed | model seeds | hypervolume | ALL@max F1 | best F1 | within 0.01 of ALL@max | CPU x lower | "
             "TTD x lower |", "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        e = r["samplers"][sampler]
        hv = hypervolume([{o: p[o] for o in objs} for p in e["front"]], objs, ref)
        v = e.get("versus_all_max")
        within = (f"{len(v['features'])} features @{v['depth']}, F1 {v['f1']:.3f}, {v['cpu']:.1f} µs" if v
                  else "none")
        ratios = f"{v['cpu_ratio']:.2f}x | {ttd_ratio(v)}" if v else "– | –"
        lines.append(f"| {r['seed']} | {r['model_seeds']} | {hv:.3f} | {r['all_max']['f1']:.3f} | "
                     f"{max(p['f1'] for p in e['front']):.3f} | {within} | {ratios} |")
    return "\n".join(lines)


def ground_truth_table(path: Path) -> str:
    r = json.loads(path.read_text())
    lines = [f"**{path.stem}**: {r['configurations']} configurations ({', '.join(r['features'])} × depths 1..50, "
             f"{r['model']}), exhaustive hypervolume {r['exhaustive_hypervolume']:.3f}; {r['seeds']} seeds, "
             f"mean (min) HVI", "",
             "| search | HVI @10 | HVI @25 | HVI @50 | denoised HVI @10 | @25 | @50 | BO overhead s (median) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, e in r["searches"].items():
        cells = [f"{e[f'{label}_mean'][k]:.3f} ({e[f'{label}_min'][k]:.3f})" if f"{label}_mean" in e else "–"
                 for label in ("hvi", "hvi_denoised") for k in ("10", "25", "50")]
        lines.append(f"| {name} | {' | '.join(cells)} | {_s(e['bo_overhead_s_median'], '.2f')} |")
    return "\n".join(lines)


def main() -> None:
    by_corpus: dict[str, list[dict]] = {}
    for arg in sys.argv[1:]:
        path = Path(arg)
        data = json.loads(path.read_text())
        print(ground_truth_table(path) if "searches" in data else compare_table(path))
        print()
        if "samplers" in data and "corpus" in data:
            by_corpus.setdefault(data["corpus"], []).append(data)
    for corpus, runs in by_corpus.items():
        if len({r["seed"] for r in runs}) > 1:
            print(seeds_table(corpus, runs))
            print()


if __name__ == "__main__":
    main()
