"""Do repeated `cato profile` measurements agree within the spread they report, and is a cache hit instant?

    python benchmarks/profile_repeatability.py --corpus ../shared/corpora/iot-sentinel [--sessions 3] [--repeat 3]

Measures one cheap configuration (orig_pkts @1) and all features @50 several times from scratch (no
cache), each session with `--repeat` rounds of a baseline run and a script run (as `cato profile`
measures), the two configurations interleaved so that both see the same machine. A session reports a
median and a spread (min-max of its rounds); two sessions agree when their spreads overlap (and, the
stricter reading, when each one's median lies within the other's spread). Then it times `cato profile
--json` answering from the cache, as a user runs it (a new Python process), and the profile() call alone.
Results go to benchmarks/results/profile_repeatability.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cato.codegen import generate
from cato.corpus import load_corpus
from cato.features import resolve
from cato.zeek.profiling import profile

CONFIGS = {"orig_pkts @1": ("orig_pkts", 1), "all @50": ("all,-needs:analyzer", 50)}
#: Each figure and the runs whose min-max is its spread. The ratio pairs each script run with the
#: baseline run just before it; the absolute CPU seconds carry the machine's drift between measurements.
FIGURES = {"cpu_ratio": "cpu_ratio_runs", "cpu_s": "cpu_s_runs", "baseline_cpu_s": "baseline_cpu_s_runs"}


def agree(sessions: list[dict], figure: str) -> bool:
    """Every two sessions agree: their spreads (min-max) overlap, so they differ by no more than the
    spread each reports."""
    runs = FIGURES[figure]
    return all(max(min(a[runs]), min(b[runs])) <= min(max(a[runs]), max(b[runs]))
               for a, b in itertools.combinations(sessions, 2))


def median_within(sessions: list[dict], figure: str) -> bool:
    """Stricter: each session's median lies within every other session's min-max."""
    runs = FIGURES[figure]
    return all(min(b[runs]) <= a[figure] <= max(b[runs]) for a, b in itertools.permutations(sessions, 2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--sessions", type=int, default=3, help="Independent measurements of each configuration.")
    ap.add_argument("--repeat", type=int, default=3,
                    help="Rounds (a baseline run, then a script run) per measurement.")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "profile_repeatability.json")
    args = ap.parse_args()
    corpus = load_corpus(args.corpus)
    scripts = {name: generate(resolve(f), [d]) for name, (f, d) in CONFIGS.items()}
    cache = Path(tempfile.mkdtemp(prefix="cato-repeat-"))
    sessions: dict[str, list[dict]] = {name: [] for name in CONFIGS}
    for s in range(args.sessions):
        for name, script in scripts.items():
            r = profile(corpus, script, repeat=args.repeat, use_cache=False, cache_dir=cache, attribute=False)
            sessions[name].append(r.to_dict())
            print(f"session {s + 1} {name:12s} cpu {r.cpu_s:.2f} s ({min(r.cpu_s_runs):.2f}-{max(r.cpu_s_runs):.2f})"
                  f" bare {r.baseline_cpu_s:.2f} s ({min(r.baseline_cpu_s_runs):.2f}-"
                  f"{max(r.baseline_cpu_s_runs):.2f}) ratio {r.cpu_ratio:.2f}x ({min(r.cpu_ratio_runs):.2f}-"
                  f"{max(r.cpu_ratio_runs):.2f})", flush=True)

    # A cache hit, as a user sees it: a new process answering from the cache the last session filled.
    # (The CLI also attributes CPU with Zeek's profiler: fill that cache entry first.)
    profile(corpus, scripts["all @50"], repeat=args.repeat, cache_dir=cache)
    f, d = CONFIGS["all @50"]
    cmd = [sys.executable, "-m", "cato", "profile", str(args.corpus), "--features", f, "--depth", str(d),
           "--repeat", str(args.repeat), "--json"]
    t0 = time.perf_counter()
    hit = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True,
                                    env={**os.environ, "CATO_CACHE": str(cache)}).stdout)
    cli_hit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    profile(corpus, scripts["all @50"], repeat=args.repeat, cache_dir=cache)
    call_hit_s = time.perf_counter() - t0
    assert hit["cached"], "the cache did not answer"

    out = {"corpus": args.corpus.name, "repeat": args.repeat, "sessions": sessions,
           "agree": {name: {fig: agree(ss, fig) for fig in FIGURES} for name, ss in sessions.items()},
           "median_within": {name: {fig: median_within(ss, fig) for fig in FIGURES} for name, ss in sessions.items()},
           "cache_hit_cli_s": cli_hit_s, "cache_hit_call_s": call_hit_s}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))

    print(f"\n{args.corpus.name}: {args.sessions} measurements from scratch, {args.repeat} rounds each; "
          "median (min-max)\n")
    print("| configuration | " + " | ".join(f"measurement {i + 1}" for i in range(args.sessions))
          + " | spreads overlap | each median within the others' spreads |")
    print("|---|" + "---|" * (args.sessions + 2))
    for name, ss in sessions.items():
        for fig, runs in FIGURES.items():
            label = {"cpu_ratio": f"{name}: CPU ratio to bare zeek -b", "cpu_s": f"{name}: Zeek CPU s",
                     "baseline_cpu_s": f"bare zeek -b CPU s (beside {name})"}[fig]
            cells = [f"{x[fig]:.2f} ({min(x[runs]):.2f}-{max(x[runs]):.2f})" for x in ss]
            verdicts = ("yes" if agree(ss, fig) else "no", "yes" if median_within(ss, fig) else "no")
            print(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(verdicts) + " |")
    print(f"\ncache hit: `cato profile ... --json` {cli_hit_s:.2f} s in a new process "
          f"(Python start-up and imports included); the profile() call {call_hit_s * 1000:.0f} ms")


if __name__ == "__main__":
    main()
