"""Whole-process Zeek CPU of each extraction strategy, against bare `zeek -b -r`.

Each corpus is merged into one stream per link type (as `cato extract` does), so start-up does not
drown the per-packet cost. For each configuration the Zeek CPU (user+sys, from wait4) is summed over
the streams; the median of --repeat runs is reported with the ratio to bare Zeek.

    python benchmarks/extraction_strategies.py --corpus ../shared/corpora/iot-sentinel \
        --corpus ../shared/corpora/ndpi [--repeat 3] [--zam] [--only TEXT ...] [--json out.json]

Runs are interleaved (each round runs every configuration once), so a slow spell of the machine
spreads over all rows instead of landing on one; ratios (to bare Zeek, and to the flowmeter-style
script) are medians of the per-round ratios. ``--zam`` runs every configuration, bare Zeek
included, with ``-O ZAM``; ``--only`` keeps the configurations whose name contains one of the texts
(bare Zeek is always measured). The JSON carries the date, commit, command line and machine
(``provenance.stamp``); ``results_tables`` renders RESULTS.md's tables from it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from cato.codegen import generate
from cato.corpus import load_corpus
from cato.features import resolve
from cato.zeek.profiling import corpus_streams, zeek_cpu
from cato.zeek import ZAM_ARGS, find_zeek, static_load_script, zeek_version

import provenance

FIVE_COUNTERS = "duration,orig_pkts,resp_pkts,orig_ip_bytes,resp_ip_bytes"
FIVE_PACKET = "orig_size_mean,resp_size_mean,flow_iat_mean,orig_syn_cnt,tcp_rtt"
EMPTY_NEW_PACKET = "event new_packet(c: connection, p: pkt_hdr) { }\n"
CONN_THRESHOLD_FRAMEWORK = """@load base/protocols/conn/thresholds
# The ConnThreshold framework re-armed for each of the first 10 packets (a common pattern).
event new_connection(c: connection) { ConnThreshold::set_packets_threshold(c, 1, T); ConnThreshold::set_packets_threshold(c, 1, F); }
event ConnThreshold::packets_threshold_crossed(c: connection, threshold: count, is_orig: bool)
	{ if ( c$orig$num_pkts + c$resp$num_pkts < 10 ) ConnThreshold::set_packets_threshold(c, threshold + 1, is_orig); }
"""


def merged_streams(corpus_dir: Path, cache_dir: Path) -> list[Path]:
    corpus = load_corpus(corpus_dir)
    return corpus_streams(corpus, cache_dir, corpus.content_hash())[0]


def configurations(tmp: Path) -> list[tuple[str, list[Path]]]:
    def script(name: str, text: str) -> Path:
        p = tmp / f"{name}.zeek"
        p.write_text(text)
        return p

    static = static_load_script()
    confs: list[tuple[str, list[Path]]] = [
        ("bare zeek -b", []),
        ("cato static scripts only", [static]),
        ("empty new_packet handler", [script("empty", EMPTY_NEW_PACKET)]),
        ("ConnThreshold framework, first 10 packets", [script("ctf", CONN_THRESHOLD_FRAMEWORK)]),
        ("flowmeter-style: all features, new_packet, whole connections",
         [static, script("flowmeter", generate(resolve("all,-needs:analyzer"), [10**9], "new_packet").text)]),
    ]
    for label, sel in (("5 counters", FIVE_COUNTERS), ("5 per-packet", FIVE_PACKET), ("all 97", "all,-needs:analyzer")):
        feats = resolve(sel)
        strategies = ["counters"] if not any(f.per_packet for f in feats) else ["new_packet", "thresholds"]
        for depth in (1, 10, 50):
            for strat in strategies:
                gen = generate(feats, [depth], strat)
                confs.append((f"{label} @{depth} {strat}", [static, script(f"{label}-{depth}-{strat}".replace(" ", "_"),
                                                                        gen.text)]))
    gen = generate(resolve("all,-needs:analyzer"), [1, 2, 5, 10, 20, 50], "thresholds")
    confs.append(("all 97 @1,2,5,10,20,50 thresholds (one pass)", [static, script("multi", gen.text)]))
    return confs


def table(results: dict) -> str:
    """One run's table: a column per corpus, each row's median CPU, its ratios and its spread."""
    names = list(results["corpora"])
    lines = ["| configuration | " + " | ".join(f"{n} CPU s (×bare; ×flowmeter-style; min-max)" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for i, row in enumerate(results["corpora"][names[0]]["rows"]):
        cells = []
        for n in names:
            r = results["corpora"][n]["rows"][i]
            vs = "–" if r["vs_flowmeter"] is None else f"{r['vs_flowmeter']:.2f}x"
            cells.append(f"{r['cpu_s']:.2f} ({r['ratio']:.2f}x; {vs}; {r['min']:.2f}-{r['max']:.2f})")
        lines.append(f"| {row['config']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


Rows = tuple[tuple[str, tuple[str, ...]], ...]
#: RESULTS.md's rows: a label, and the configurations it shows side by side (" / ").
RESULTS_ROWS: Rows = (
    ("bare `zeek -b`", ("bare zeek -b",)),
    ("cato's scripts loaded, no feature selected", ("cato static scripts only",)),
    ("5 counters @1 / @10 / @50", ("5 counters @1 counters", "5 counters @10 counters", "5 counters @50 counters")),
    ("5 per-packet @1, new_packet / thresholds", ("5 per-packet @1 new_packet", "5 per-packet @1 thresholds")),
    ("5 per-packet @10, new_packet / thresholds", ("5 per-packet @10 new_packet", "5 per-packet @10 thresholds")),
    ("all 97 @50, new_packet / thresholds", ("all 97 @50 new_packet", "all 97 @50 thresholds")),
    ("flowmeter-style", ("flowmeter-style: all features, new_packet, whole connections",)),
)
FLOOR_ROWS: Rows = (RESULTS_ROWS[0], RESULTS_ROWS[1], ("5 counters @10", ("5 counters @10 counters",)))


def interpreted_and_zam(interpreted: dict, zam: dict, rows: Rows, corpus: str = "iot-sentinel") -> str:
    """RESULTS.md's table of one corpus, interpreted and under ``-O ZAM`` side by side: a row of one
    configuration shows its median (min-max), a row of several their medians."""
    def cells(results: dict, configs: tuple[str, ...]) -> tuple[str, str]:
        by_config = {r["config"]: r for r in results["corpora"][corpus]["rows"]}
        found = [by_config.get(c) for c in configs]
        if not any(found):  # not measured in this mode at all
            return "", ""
        if len(found) == 1:
            r = found[0]
            return f"{r['cpu_s']:.2f} ({r['min']:.2f}-{r['max']:.2f})", f"{r['ratio']:.2f}x"
        return (" / ".join("–" if r is None else f"{r['cpu_s']:.2f}" for r in found),
                " / ".join("–" if r is None else f"{r['ratio']:.2f}x" for r in found))

    lines = ["| configuration | interpreted: CPU s, median (min-max) | ×bare | `-O ZAM`: CPU s | ×bare (ZAM) |",
             "|---|---|---|---|---|"]
    for label, configs in rows:
        row = (label, *cells(interpreted, configs), *cells(zam, configs))
        lines.append("|" + "".join(f" {c} |" if c else " |" for c in row))
    return "\n".join(lines)


def results_tables(results: Path) -> dict[str, str]:
    """This benchmark's RESULTS.md tables, by block name, from its results files under ``results``."""
    def block(interpreted: str, zam: str, rows: Rows) -> str:
        return (f"Measured {provenance.measured(interpreted, zam, results=results)}.\n\n"
                + interpreted_and_zam(provenance.load(interpreted, results), provenance.load(zam, results), rows))

    return {"extraction": block("targets_iot.json", "targets_iot_zam.json", RESULTS_ROWS),
            "extraction-floor": block("extraction_floor.json", "extraction_floor_zam.json", FLOOR_ROWS)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", action="append", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--zam", action="store_true", help="Run every configuration with -O ZAM.")
    ap.add_argument("--only", action="append", default=[], help="Keep configurations whose name contains this.")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "extraction_strategies.json")
    args = ap.parse_args()
    zeek = find_zeek()
    zeek_args = list(ZAM_ARGS) if args.zam else []
    version = zeek_version(zeek)
    results = {**provenance.stamp(zeek=version), "zeek": version, "repeat": args.repeat, "zam": args.zam,
               "corpora": {}}
    with tempfile.TemporaryDirectory(prefix="cato-bench-") as t:
        tmp = Path(t)
        confs = [c for i, c in enumerate(configurations(tmp))
                 if i == 0 or not args.only or any(o in c[0] for o in args.only)]
        for corpus in args.corpus:
            streams = merged_streams(corpus, tmp)
            cpu: dict[str, list[float]] = {name: [] for name, _ in confs}
            for r in range(args.repeat):
                for name, scripts in confs:
                    cpu[name].append(zeek_cpu(streams, scripts, tmp / "runs" / str(r), zeek=zeek, extra_args=zeek_args))
                    print(f"{corpus.name:14s} round {r + 1} {name:60s} {cpu[name][-1]:7.3f}s", flush=True)
            bare = cpu[confs[0][0]]
            flowmeter = next((cpu[name] for name, _ in confs if name.startswith("flowmeter")), None)
            # Ratios are medians of per-round ratios: runs seconds apart share the machine's slow spells.
            rows = [{"config": name, "cpu_s": statistics.median(cpu[name]), "min": min(cpu[name]),
                     "max": max(cpu[name]), "runs": cpu[name],
                     "ratio": statistics.median(c / b for c, b in zip(cpu[name], bare)),
                     "vs_flowmeter": (statistics.median(c / f for c, f in zip(cpu[name], flowmeter))
                                      if flowmeter else None)} for name, _ in confs]
            results["corpora"][corpus.name] = {"streams": len(streams), "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print("\n" + table(results))


if __name__ == "__main__":
    main()
