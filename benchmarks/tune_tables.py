"""Markdown tables for RESULTS.md from tune_compare.py and ground_truth.py results.

    python benchmarks/tune_tables.py benchmarks/results/tune_*.json benchmarks/results/ground_truth_*[!e].json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


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
    for arg in sys.argv[1:]:
        path = Path(arg)
        data = json.loads(path.read_text())
        print(ground_truth_table(path) if "searches" in data else compare_table(path))
        print()


if __name__ == "__main__":
    main()
