"""The native engine (cato's Zeek plugin) against the script engine and bare Zeek, side by side.

Whole-process Zeek CPU (user+sys, from wait4) over a corpus merged into streams (as `cato extract`
does), every configuration once per round, rounds interleaved; ratios are medians of the per-round
ratios to the round's own baseline. Vectors are published (``Cato::publish_vectors=T``), not
written to cato.log (``Cato::log_vectors=F``): what a deployment does. More rows per native
selection: with batches that fill (``Cato::publish_max_wait=1hr``), with no output at all, and in
the compact form (``Cato::vector_form=Cato::COMPACT``), as it comes and with batches that fill. With ``--baseline default``
the baseline is a default deployment (``zeek local``) and every configuration runs on top of it.
``--long`` runs the depth-scaling benchmark's synthetic corpora instead (300 TCP connections of 100
or of 1,000 packets): the cost must not grow past the depth.

    python benchmarks/native_engine.py --corpus ../shared/corpora/iot-sentinel [--repeat 5]
    python benchmarks/native_engine.py --corpus ../shared/corpora/iot-sentinel --baseline default --only "all 97"
    python benchmarks/native_engine.py --long [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "btest" / "Traces"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cato.codegen import generate  # noqa: E402
from cato.corpus import load_corpus  # noqa: E402
from cato.features import resolve  # noqa: E402
from cato.zeek import find_zeek, native_plugin_dir, static_load_script, zeek_version  # noqa: E402
from cato.zeek.profiling import corpus_streams, zeek_cpu  # noqa: E402

FIVE_COUNTERS = "duration,orig_pkts,resp_pkts,orig_ip_bytes,resp_ip_bytes"
FIVE_PACKET = "orig_size_mean,resp_size_mean,flow_iat_mean,orig_syn_cnt,tcp_rtt"
ONLINE = {"Cato::publish_vectors": "T", "Cato::log_vectors": "F"}
SELECTIONS = (("5 counters @10", FIVE_COUNTERS, 10), ("5 per-packet @10", FIVE_PACKET, 10), ("all 97 @50", "all,-needs:analyzer", 50))


#: Batches that fill before they go: what publishing costs where vectors come faster than
#: Cato::publish_max_wait (a busy link), unlike a corpus of sparse captures, where each goes alone.
FULL_BATCHES = {"Cato::publish_max_wait": "1hr"}
#: Neither logged nor published: the engine's own cost.
NO_OUTPUT = {"Cato::publish_vectors": "F", "Cato::log_vectors": "F"}
#: Published as compact blocks (Cato::vector_block) instead of records.
COMPACT = {"Cato::vector_form": "Cato::COMPACT"}


def configurations(tmp: Path, baseline: list) -> list[tuple[str, list, bool, dict]]:
    """(name, scripts, native?, redefs) of each configuration; the first is the baseline."""
    static = static_load_script()
    confs: list[tuple[str, list, bool, dict]] = [("baseline", list(baseline), False, {}),
                                                 ("cato static scripts only", [*baseline, static], False, ONLINE)]
    for label, sel, depth in SELECTIONS:
        for engine in ("script", "native"):
            path = tmp / f"{label}-{engine}.zeek".replace(" ", "_").replace("@", "")
            path.write_text(generate(resolve(sel), [depth], engine=engine).text)
            confs.append((f"{label} {engine}", [*baseline, static, path], engine == "native", ONLINE))
            if engine == "native":
                confs.append((f"{label} native, full batches", [*baseline, static, path], True,
                              {**ONLINE, **FULL_BATCHES}))
                confs.append((f"{label} native, no output", [*baseline, static, path], True, NO_OUTPUT))
                confs.append((f"{label} native, compact", [*baseline, static, path], True, {**ONLINE, **COMPACT}))
                confs.append((f"{label} native, compact, full batches", [*baseline, static, path], True,
                              {**ONLINE, **COMPACT, **FULL_BATCHES}))
    return confs


def measure(streams, confs, bare, repeat, tmp, zeek, tag) -> list[dict]:
    cpu: dict[str, list[float]] = {name: [] for name, *_ in confs}
    for r in range(repeat):
        for name, scripts, native, redefs in confs:
            cpu[name].append(zeek_cpu(streams, scripts, tmp / "runs" / tag / str(r), zeek=zeek, bare=bare,
                                       native=native, redefs=redefs))
            print(f"{tag:18s} round {r + 1} {name:36s} {cpu[name][-1]:7.3f}s", flush=True)
    base = cpu[confs[0][0]]
    return [{"config": name, "cpu_s": statistics.median(cpu[name]), "min": min(cpu[name]), "max": max(cpu[name]),
             "runs": cpu[name], "ratio": statistics.median(c / b for c, b in zip(cpu[name], base)),
             "marginal_s": statistics.median(c - b for c, b in zip(cpu[name], base))} for name, *_ in confs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path)
    ap.add_argument("--long", action="store_true", help="The synthetic long-flow corpora instead.")
    ap.add_argument("--baseline", choices=("bare", "default"), default="bare")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", action="append", default=[], help="Keep configurations whose name contains this.")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if native_plugin_dir() is None:
        sys.exit("cato's plugin is not built: run `make setup` (or plugin/configure && make -C plugin/build)")
    zeek = find_zeek()
    bare = args.baseline == "bare"
    results = {"zeek": zeek_version(zeek), "repeat": args.repeat, "baseline": args.baseline, "online": ONLINE,
               "sets": {}}
    with tempfile.TemporaryDirectory(prefix="cato-native-bench-") as t:
        tmp = Path(t)
        confs = configurations(tmp, [] if bare else ["local"])
        confs = [c for i, c in enumerate(confs) if i == 0 or not args.only or any(o in c[0] for o in args.only)]
        sets: dict[str, tuple[list[Path], int]] = {}
        if args.long:
            from depth_scaling import synth
            for label, rounds in (("100-packet flows", 48), ("1000-packet flows", 498)):
                p = tmp / f"{rounds}.pcap"
                sets[label] = ([p], synth(p, 300, rounds))
        else:
            corpus = load_corpus(args.corpus)
            streams, _ = corpus_streams(corpus, tmp / "cache", corpus.content_hash())
            sets[args.corpus.name] = (streams, 0)
        for label, (streams, _) in sets.items():
            results["sets"][label] = measure(streams, confs, bare, args.repeat, tmp, zeek, label)
    out = args.json or (Path(__file__).parent / "results" /
                        f"native_{'long' if args.long else args.corpus.name}_{args.baseline}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    labels = list(results["sets"])
    print(f"\n| configuration (baseline {args.baseline}) | "
          + " | ".join(f"{lab}: CPU s, median (min-max) | ×baseline" for lab in labels) + " |")
    print("|---|" + "---|---|" * len(labels))
    for i, (name, *_) in enumerate(confs):
        cells = []
        for lab in labels:
            r = results["sets"][lab][i]
            cells.append(f"{r['cpu_s']:.2f} ({r['min']:.2f}-{r['max']:.2f}) | {r['ratio']:.3f}x")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
