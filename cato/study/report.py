"""``cato report``: a study's Pareto front, its baselines and hypervolumes, as JSON, a console table,
``pareto.png`` and a self-contained ``report.html``."""

from __future__ import annotations

import base64
import html
import io
import statistics
from collections import Counter
from pathlib import Path

from cato.model import FAMILY_NAMES
from cato.search.objectives import F1_TOLERANCE, OBJECTIVES, UNITS
from cato.search.pareto import hypervolume, reference
from cato.search.space import format_deadline
from cato.study.storage import TrialState
from cato.study.study import Study, Trial, best_within


def _point(t: Trial, objectives) -> dict:
    p = {"trial": t.number, "features": list(t.config.features), "depth": t.config.depth,
         "deadline_s": t.config.deadline, "model": str(t.config.model), "family": t.config.model.family}
    p.update({o: t.values[o] for o in objectives})
    ttd = t.details.get("time_to_decision_ms")
    if ttd:  # per connection, as Zeek emitted the vectors (capped at the deadline)
        p["time_to_decision_ms"] = {k: ttd[k] for k in ("mean", "p50", "p95", "max") if k in ttd}
    if t.name:
        p["name"] = t.name
    if "source" in t.details:
        p["source"] = t.details["source"]
    elif t.kind == "baseline":
        p["source"] = f"baseline {t.name}"
    return p


def hypervolume_curve(trials: list[Trial], objectives, ref: dict) -> list[dict]:
    """Hypervolume of the first n search trials, for every n."""
    return [{"evaluations": n, "hypervolume": hypervolume([t.values for t in trials[:n]], objectives, ref)}
            for n in range(1, len(trials) + 1)]


def study_report(study: Study) -> dict:
    objs = list(study.objectives)
    search, baselines = study.trials("search"), study.trials("baseline")
    ref = reference([t.values for t in search + baselines], objs)
    front = study.pareto()  # of everything measured, baselines included
    data: dict = {
        "study": str(study.directory), "corpus": study.settings.corpus, "sampler": study.settings.sampler,
        "prior": study.settings.use_prior, "model_seeds": study.settings.model_seeds,
        "profile_repeat": study.settings.profile_repeat,
        "objectives": objs, "units": {o: UNITS[o] for o in objs},
        "directions": {o: OBJECTIVES[o] for o in objs}, "trials": len(search),
        "failed": len(study.storage.trials("search", TrialState.FAILED)), "reference_point": ref,
        "pareto": [_point(t, objs) for t in front],
        "search_pareto": [t.number for t in study.pareto("search")],
        "baselines": [_point(t, objs) for t in baselines],
    }
    data["hypervolume"] = {
        "search": hypervolume([t.values for t in search], objs, ref),
        "baselines_together": hypervolume([t.values for t in baselines], objs, ref),
        **{f"baseline {t.name}": hypervolume([t.values], objs, ref) for t in baselines},
    }
    data["hypervolume_curve"] = hypervolume_curve(search, objs, ref)
    overhead = [t.details["bo_overhead_s"] for t in search if "bo_overhead_s" in t.details]
    evals = [t.details["eval_s"] for t in search if "eval_s" in t.details]
    data["timing_s"] = {
        "bo_overhead_median": statistics.median(overhead) if overhead else None,
        "bo_overhead_max": max(overhead) if overhead else None,
        "evaluation_median": statistics.median(evals) if evals else None,
    }
    all_max = [t for t in baselines if t.name == f"all@{study.settings.max_depth}"]
    if all_max and search:
        target = all_max[0]
        match = best_within(study.measured(), target.values["f1"])
        if match is not None:
            ratios = {o: target.values[o] / max(match.values[o], 1e-9) for o in objs if o != "f1"}
            # Time-to-decision is measured for every trial even when it is not an objective.
            if "latency" not in ratios and "latency_ms" in target.details and "latency_ms" in match.details:
                ratios["latency"] = target.details["latency_ms"] / max(match.details["latency_ms"], 1e-9)
            ttd = [t.details.get("time_to_decision_ms") or {} for t in (target, match)]
            for k in ("mean", "p95"):
                if k in ttd[0] and k in ttd[1]:
                    ratios[f"time_to_decision_{k}"] = ttd[0][k] / max(ttd[1][k], 1e-9)
            data["versus_all_max"] = {"baseline": _point(target, objs), "point": _point(match, objs),
                                      "cost_ratio": ratios}
    picks = Counter(f for t in front for f in t.config.features)
    data["feature_picks"] = dict(picks.most_common())
    data["sampling"] = study.storage.get("sampling")
    data["profile_sample"] = study.storage.get("profile_sample")
    return data


def sample_lines(data: dict) -> list[str]:
    """What the study measured on samples of its corpus, in words (console and HTML)."""
    lines = []
    s = data.get("sampling")
    if s:
        lines.append(f"F1 is cross-validated on a stratified sample of {s['rows']:,} of {s['of']:,} connections; "
                     f"checked on {s['reference']}, its F1 lies within {s['bound']:.4f} of the whole corpus's "
                     f"({s['f1_full']:.4f}; {len(s['f1_samples'])} samples: "
                     + ", ".join(f"{v:.4f}" for v in s["f1_samples"]) + ")")
    p = data.get("profile_sample")
    if p:
        lines.append(f"Costs are measured on {p['captures']:,} of {p['of']:,} captures drawn at random "
                     f"({p['bytes'] / 2**20:.0f} of {p['of_bytes'] / 2**20:.0f} MiB)")
    return lines


TTD_HEADER = "time-to-decision ms mean / p50 / p95 / max"


def _deadline_text(p: dict) -> str:
    return format_deadline(p.get("deadline_s")).strip().removeprefix("T=") or "none"


def _ttd_text(p: dict) -> str:
    ttd = p.get("time_to_decision_ms")
    if not ttd:
        return ""
    return " / ".join(f"{ttd[k]:.4g}" if k in ttd else "?" for k in ("mean", "p50", "p95", "max"))


def _ratio_text(ratio: float) -> str:
    # A time-to-decision of 0 (decided at the first packet) makes the ratio meaningless, not large.
    return "0 (decided at the first packet)" if ratio > 1e9 else f"{ratio:.1f}x lower"


def render_console(data: dict, console) -> None:
    from rich.table import Table
    objs = data["objectives"]
    # A terminal is narrow: the deadline and the time-to-decision distribution get columns when the
    # study is about them (report.html and --json always have them).
    timed = "latency" in objs or any(p.get("deadline_s") is not None for p in data["pareto"])
    for title, rows in (("Pareto front", data["pareto"]), ("Baselines", data["baselines"])):
        table = Table(title=f"{title} ({data['corpus']})")
        cols = ["trial", "name" if title == "Baselines" else "source", "features", "depth",
                *(["deadline"] if timed else []), "model", *objs, *([TTD_HEADER] if timed else [])]
        for col in cols:
            table.add_column(col if col not in UNITS else UNITS[col],
                             justify="right" if col in objs or col == TTD_HEADER else "left")
        for p in rows:
            feats = ", ".join(p["features"]) if len(p["features"]) <= 6 else f"{len(p['features'])} features"
            cells = [str(p["trial"]), p.get("name" if title == "Baselines" else "source", ""), feats, str(p["depth"]),
                     *([_deadline_text(p)] if timed else []), p["model"], *(f"{p[o]:.4g}" for o in objs),
                     *([_ttd_text(p)] if timed else [])]
            table.add_row(*cells)
        console.print(table)
    # A point of many features is its count in the table: its features are listed below it, in full.
    for p in data["pareto"]:
        if len(p["features"]) > 6:
            console.print(f"trial {p['trial']} features ({len(p['features'])}): {', '.join(p['features'])}",
                          soft_wrap=True)
    hv = data["hypervolume"]
    console.print(f"hypervolume: search {hv['search']:.4f}, baselines together {hv['baselines_together']:.4f}")
    if "versus_all_max" in data:
        v = data["versus_all_max"]
        ratios = ", ".join(f"{o.replace('_', ' ')} {_ratio_text(r)}" for o, r in v["cost_ratio"].items())
        console.print(f"front point within {F1_TOLERANCE} F1 of {v['baseline']['name']} (F1 {v['baseline']['f1']:.3f}): "
                      f"trial {v['point']['trial']}, F1 {v['point']['f1']:.3f}, depth {v['point']['depth']}"
                      + (f", deadline {_deadline_text(v['point'])}" if timed else "") + f": {ratios}")
    for line in sample_lines(data):
        console.print(line)
    t = data["timing_s"]
    if t["bo_overhead_median"] is not None:
        console.print(f"BO overhead per iteration: median {t['bo_overhead_median']:.1f} s, "
                      f"max {t['bo_overhead_max']:.1f} s; evaluation median {t['evaluation_median']:.1f} s")


def pareto_png(study: Study, data: dict) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    costs = [o for o in data["objectives"] if o != "f1"]
    fig, axes = plt.subplots(1, len(costs), figsize=(6.5 * len(costs), 4.8), squeeze=False)
    search = study.trials("search")
    for ax, cost in zip(axes[0], costs):
        ax.scatter([t.values[cost] for t in search], [t.values["f1"] for t in search], s=14, c="0.7",
                   label="search trials")
        front = sorted(data["pareto"], key=lambda p: p[cost])
        ax.step([p[cost] for p in front], [p["f1"] for p in front], where="post", c="C0", lw=1.5)
        ax.scatter([p[cost] for p in front], [p["f1"] for p in front], s=26, c="C0", label="Pareto front", zorder=3)
        for i, b in enumerate(data["baselines"]):
            ax.scatter([b[cost]], [b["f1"]], marker="^", s=40, c=f"C{1 + i % 8}", label=b["name"], zorder=4)
        ax.set_xscale("log")
        ax.set_xlabel(UNITS[cost] + " (log)")
        ax.set_ylabel("macro-F1")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"cato tune: {Path(data['corpus']).name}, {data['trials']} trials ({data['sampler']})")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _table(rows: list[dict], objs, first: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in
                   ("trial", first, "features", "depth", "deadline", "model", *(UNITS[o] for o in objs), TTD_HEADER))
    body = []
    for p in rows:
        cells = [str(p["trial"]), p.get(first, ""), ", ".join(p["features"]), str(p["depth"]), _deadline_text(p),
                 p["model"], *(f"{p[o]:.4g}" for o in objs), _ttd_text(p)]
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def report_html(data: dict, png: bytes) -> str:
    objs = data["objectives"]
    hv_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in data["hypervolume"].items())
    picks = "".join(f"<tr><td>{html.escape(f)}</td><td>{n}</td></tr>" for f, n in data["feature_picks"].items())
    versus = ""
    if "versus_all_max" in data:
        v = data["versus_all_max"]
        ratios = ", ".join(f"{UNITS.get(o, o.replace('_', ' '))} {_ratio_text(r)}" for o, r in v["cost_ratio"].items())
        versus = (f"<p>Cheapest search point within {F1_TOLERANCE} macro-F1 of <b>{html.escape(v['baseline']['name'])}</b>"
                  f" (F1 {v['baseline']['f1']:.3f}): trial {v['point']['trial']}, F1 {v['point']['f1']:.3f}, "
                  f"{len(v['point']['features'])} features @ depth {v['point']['depth']}, deadline "
                  f"{html.escape(_deadline_text(v['point']))}, {ratios}.</p>")
    families = ", ".join(f"{k} = {v}" for k, v in FAMILY_NAMES.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>cato report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:80em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:.2em .5em;font-size:90%;text-align:left}}</style></head><body>
<h1>cato tune report</h1>
<p>Corpus <code>{html.escape(data['corpus'])}</code>; sampler {html.escape(data['sampler'])}
(MI prior {'on' if data['prior'] else 'off'}); {data['trials']} search trials, {data['failed']} failed;
objectives: {', '.join(html.escape(UNITS[o]) for o in objs)}. Models: {html.escape(families)}; F1 of a
random forest or decision tree is the mean of {data['model_seeds']} seeds; a cost is the median of
{data['profile_repeat']} Zeek run(s).</p>
{"".join(f"<p>{html.escape(line)}.</p>" for line in sample_lines(data))}
<img src="data:image/png;base64,{base64.b64encode(png).decode()}" alt="Pareto front">
{versus}
<h2>Pareto front</h2>{_table(data['pareto'], objs, 'source')}
<h2>Baselines</h2>{_table(data['baselines'], objs, 'name')}
<h2>Hypervolume</h2><p>Costs on a log scale; reference point {html.escape(str(data['reference_point']))}.</p>
<table><tr><th>set</th><th>hypervolume</th></tr>{hv_rows}</table>
<h2>Features picked on the front</h2><table><tr><th>feature</th><th>front points</th></tr>{picks}</table>
</body></html>
"""


def write_files(study: Study, data: dict) -> tuple[Path, Path]:
    png = pareto_png(study, data)
    png_path = study.directory / "pareto.png"
    html_path = study.directory / "report.html"
    png_path.write_bytes(png)
    html_path.write_text(report_html(data, png))
    return png_path, html_path
