"""cato serve: worker throughput, and Zeek -> worker -> Zeek verdict latency at rising connection rates.

    python benchmarks/serve.py --corpus ../shared/corpora/iot-sentinel [--rates 1000,5000,10000,20000]

Packages are compiled from a throw-away study of the corpus (depth 10 for throughput, depth 1 for
latency, so that a connection's vector goes out at its first packet): the features and model of a
front point of the committed IoT Sentinel study (12 features, a random forest of 50 trees), the same
features with a decision tree and with LightGBM, and every feature (the worst case).

* Throughput, in process (no sockets): ONNX Runtime alone, batched (256) and one vector at a time;
  and the worker's whole path in each form: parse and read one WebSocket message of Zeek's (a batch
  of 100 vectors: records, or one compact block), score, and encode the message that answers it.
* Latency: a synthetic capture of one-packet UDP connections at a fixed rate, replayed by Zeek at
  its own pace (--pseudo-realtime) with the package and the real worker over Zeek's WebSocket API;
  Zeek measures each verdict's latency from publishing the vector (batching included) to its arrival.
  Side by side, one native package in each form: records (the JSON form) and compact.

Results go to benchmarks/results/serve.json, stamped with the date and commit, and RESULTS.md's two
tables to stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cato.cache import default_cache_dir
from cato.corpus import load_corpus
from cato.dataset import load_dataset
from cato.deploy.compile import compile_config
from cato.deploy.replay import replay
from cato.deploy.block import Endpoints, VectorBlock, encode_vectors
from cato.deploy.links import Answer, Topics, WebSocketLink, compact_batch, records_batch, verdict_events
from cato.deploy.serve import Scorer
from cato.deploy.transport import (Address, Count, Enum, Port, Raw, Timespan, Timestamp, data_message, event_envelope,
                                   parse_message)
from cato.deploy.zeek_side import VECTOR_TOPIC, VERDICT_TOPIC
from cato.features import resolve
from cato.model import ModelSpec
from cato.search.space import Config
from cato.study import Study, StudySettings
from cato.zeek import read_zeek_log

import provenance

TESTS = Path(__file__).resolve().parent.parent / "tests"

#: The models: the most accurate two-objective front points of the committed IoT Sentinel study
#: (benchmarks/results/tune_iot-sentinel_label.json) pick a random forest of 50 trees, depth 16.
FOREST = ModelSpec("rf", 50, 16)
CONFIGS = {  # name -> (feature selection, model)
    "front, 12 features, rf(50,16)": ("duration,orig_port,resp_port,orig_pkts,orig_ip_bytes,orig_bytes,resp_ip_bytes,"
                                      "resp_bytes,orig_size_max,flow_size_mean,orig_win_std,orig_payload_max", FOREST),
    "front, 12 features, dt(16)": (None, ModelSpec("dt", 1, 16)),
    "front, 12 features, gbt(50,8)": (None, ModelSpec("gbt", 50, 8)),
    "all 97 features, rf(50,16)": ("all", FOREST),
}
LATENCY_CONFIG = "front, 12 features, rf(50,16)"
#: How RESULTS.md names each configuration.
LABELS = {
    "front, 12 features, rf(50,16)": "12 features, random forest (50 trees, depth 16)",
    "front, 12 features, dt(16)": "12 features, decision tree (depth 16)",
    "front, 12 features, gbt(50,8)": "12 features, LightGBM (50 rounds, depth 8)",
    "all 97 features, rf(50,16)": "all 97 features, random forest",
}


def packages(corpus_dir: Path, work: Path) -> dict[str, Path]:
    """Each configuration compiled at depth 10 for throughput, and the latency one at depth 1 on the
    native engine in both forms."""
    study = Study.open(work / "study", StudySettings(str(corpus_dir.resolve()), max_depth=10))
    front = CONFIGS[LATENCY_CONFIG][0]
    out = {}
    for name, (selection, model) in CONFIGS.items():
        features = tuple(f.name for f in resolve(selection or front) if f.dtype != "string")
        out[f"{name}@10"] = compile_config(study, Config(features, 10, model), work / f"pkg-{len(out)}").path
        if name == LATENCY_CONFIG:
            for form in ("records", "compact"):
                out[f"{name}@1 native {form}"] = compile_config(study, Config(features, 1, model),
                                                                work / f"pkg-{len(out)}", engine="native",
                                                                vector_form=form).path
    return out


def zeek_batch(features: np.ndarray, depth: int) -> list:
    """Vectors typed as Zeek sends them: the record's id fields, then the features (-1: unset)."""
    return [[Timestamp(1.7e9), f"C{i:017d}",
             [Address("10.0.0.1"), Port(f"{1024 + i % 60000}/udp"), Address("10.0.0.2"), Port("53/udp"), Count(17), []],
             Enum("udp"), Count(depth), Count(1), Timespan(0.0), Enum("Cato::DEPTH"),
             *[None if v == -1 else float(v) for v in row]]
            for i, row in enumerate(features)]


def zeek_block(features: np.ndarray, schema: str) -> str:
    """The same vectors as one compact block, as the native engine writes it."""
    rows = [(f"C{i:017d}", "10.0.0.1", 1024 + i % 60000, "10.0.0.2", 53, "udp") for i in range(len(features))]
    x = np.where(features == -1, np.nan, features).astype(np.float32)
    return encode_vectors(VectorBlock(schema, Endpoints.of(rows), x))


def throughput(package: Path, x: np.ndarray, seconds: float = 2.0) -> dict:
    scorer = Scorer(package)
    n, manifest = scorer.n_features, scorer.manifest
    topics = Topics.of(manifest)
    # One batch message as Zeek sends it (100 vectors, its default batch size), as bytes, in each form.
    messages = {
        "records": json.dumps(data_message(VECTOR_TOPIC, topics.event("records"),
                                           [zeek_batch(x[:100], manifest.depth)])),
        "compact": json.dumps(data_message(VECTOR_TOPIC, topics.event("compact"),
                                           [zeek_block(x[:100], manifest.schema)])),
    }
    messages = {form: m.encode() for form, m in messages.items()}
    batch = np.resize(x[:100].astype(np.float32), (256, n))

    def rate(fn, per_call: int) -> float:
        calls, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            fn()
            calls += 1
        return calls * per_call / (time.perf_counter() - t0)

    def read(message: bytes):  # as WebSocketLink.next_batch reads a message
        topic, name, args = event_envelope(parse_message(message, max_bytes=1 << 24))
        if name == topics.event("records"):
            return records_batch(VERDICT_TOPIC, [WebSocketLink.read(item, n) for item in args[0]["data"]], n)
        return compact_batch(args[0]["data"], VERDICT_TOPIC)

    def whole_path(message: bytes) -> None:  # what the worker does per batch message, less the socket
        b = read(message)
        labels, scores = scorer.score(b.features)
        for topic, name, args in verdict_events(manifest.schema, manifest.labels, [Answer(b, labels, scores)], Raw,
                                                  topics.module):
            json.dumps(data_message(topic, name, args), default=lambda r: r.encoded)

    out = {"onnx_batched_per_s": rate(lambda: scorer.score(batch), len(batch)),
           "onnx_one_at_a_time_per_s": rate(lambda: scorer.score(batch[:1]), 1)}
    for form, message in messages.items():
        assert len(read(message)) == 100
        out[f"worker_path_{form}_per_s"] = rate(lambda: whole_path(message), 100)
        out[f"message_bytes_per_vector_{form}"] = len(message) / 100
    return out


#: A DNS-sized query: the payload of every synthetic connection.
DNS_QUERY = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x07example\x03com\x00\x00\x01\x00\x01"


def synthetic_capture(path: Path, rate: int, seconds: float) -> int:
    """One-packet UDP connections (a DNS-sized query each, distinct source port and host) at ``rate``/s."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from synthetic import write_udp_connections  # tests/synthetic.py

    return write_udp_connections(path, rate, seconds, payload=DNS_QUERY)


def latency(package: Path, rate: int, seconds: float, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    capture = work / f"rate-{rate}.pcap"
    n = synthetic_capture(capture, rate, seconds)
    result = replay(package, capture, work / f"out-{rate}", default_scripts=False, pseudo_realtime=1.0,
                    timeout=120 + 4 * seconds)
    verdicts = read_zeek_log(work / f"out-{rate}" / "cato_verdict.log")
    ms = verdicts["latency"].dropna().to_numpy(float) * 1000.0
    return {"rate_conns_per_s": rate, "connections": n, "verdicts": int(len(verdicts)),
            "coverage": result.coverage, "dropped": result.stats.dropped,
            "latency_ms_p50": float(np.percentile(ms, 50)) if len(ms) else None,
            "latency_ms_p99": float(np.percentile(ms, 99)) if len(ms) else None,
            "latency_ms_max": float(ms.max()) if len(ms) else None}


def throughput_table(out: dict) -> str:
    """Vectors per second of each configuration, and the bytes of a vector in each wire form."""
    lines = ["| configuration (depth 10) | ONNX Runtime, batches of 256 | one at a time | worker path, records "
             "| compact | compact / records | bytes per vector, records / compact |", "|---|---|---|---|---|---|---|"]
    rates = ("onnx_batched_per_s", "onnx_one_at_a_time_per_s", "worker_path_records_per_s",
             "worker_path_compact_per_s")
    for name, t in out["throughput"].items():
        cells = [LABELS.get(name, name), *(f"{t[rate]:,.0f}" for rate in rates),
                 f"{t['worker_path_compact_per_s'] / t['worker_path_records_per_s']:.1f}x",
                 f"{t['message_bytes_per_vector_records']:,.0f} / {t['message_bytes_per_vector_compact']:,.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def latency_table(out: dict) -> str:
    """Verdict latency per rate: each form's median p50 and p99 over its replays, the worst p99, and how
    many replays kept p99 within 10 ms."""
    forms = ("records", "compact")
    rates = sorted({r["rate_conns_per_s"] for r in out["latency"]})
    runs = {(rate, f): [r for r in out["latency"] if r["rate_conns_per_s"] == rate and r["form"] == f]
            for rate in rates for f in forms}
    replays = len(runs[rates[0], forms[0]])  # per rate and form (--trials)
    lines = [f"| connections/s | p50 ms, records / compact | p99 ms, median of {replays} (worst), records | compact "
             "| p99 ≤ 10 ms, records / compact |", "|---|---|---|---|---|"]
    for rate in rates:
        p99 = {f: [r["latency_ms_p99"] for r in runs[rate, f]] for f in forms}
        p50 = " / ".join(f"{float(np.median([r['latency_ms_p50'] for r in runs[rate, f]])):.2f}" for f in forms)
        within = " / ".join(str(sum(p <= 10 for p in p99[f])) for f in forms)
        lines.append(f"| {rate:,} | {p50} | "
                     + " | ".join(f"{float(np.median(p99[f])):.2f} ({max(p99[f]):.2f})" for f in forms)
                     + f" | {within} of {replays} |")
    return "\n".join(lines)


def results_tables(results: Path) -> dict[str, str]:
    """This benchmark's RESULTS.md tables, by block name, from its results files under ``results``."""
    out = provenance.load("serve.json", results)
    return {"serve-throughput": f"Measured {provenance.measured('serve.json', results=results)}.\n\n"
                                f"{throughput_table(out)}",
            "serve-latency": latency_table(out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--rates", default="1000,5000,10000,20000")
    ap.add_argument("--seconds", type=float, default=3.0, help="Length of each synthetic capture.")
    ap.add_argument("--trials", type=int, default=5, help="Replays per rate and form (near saturation they differ).")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "serve.json")
    args = ap.parse_args()
    corpus = load_corpus(args.corpus)
    dataset = load_dataset(corpus, 10, default_cache_dir())
    out: dict = {**provenance.stamp(), "corpus": str(args.corpus), "throughput": {}, "latency_config": LATENCY_CONFIG,
                 "latency": []}
    with tempfile.TemporaryDirectory(prefix="cato-bench-serve-") as tmp:
        work = Path(tmp)
        pkgs = packages(args.corpus, work)
        for name, pkg in pkgs.items():
            if name.endswith("@10"):
                features = Scorer(pkg).manifest.features
                out["throughput"][name[:-3]] = throughput(pkg, dataset.matrix(features, 10))
                print(name, out["throughput"][name[:-3]], flush=True)
        for rate in (int(r) for r in args.rates.split(",")):
            for trial in range(args.trials):
                for form in ("records", "compact"):  # interleaved: both see the same machine
                    run = latency(pkgs[f"{LATENCY_CONFIG}@1 native {form}"], rate, args.seconds,
                                  work / f"t{trial}-{form}")
                    out["latency"].append({"form": form, **run})
                    print(out["latency"][-1], flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print("\n" + throughput_table(out) + "\n\n" + latency_table(out))
    print(f"least coverage of a replay: {min(r['coverage'] for r in out['latency']):.1%}")


if __name__ == "__main__":
    main()
