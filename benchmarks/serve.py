"""cato serve: worker throughput, and Zeek -> worker -> Zeek verdict latency at rising connection rates.

    python benchmarks/serve.py --corpus ../shared/corpora/iot-sentinel [--rates 1000,5000,10000,20000]

Packages are compiled from a throw-away study of the corpus (depth 10 for throughput, depth 1 for
latency, so that a connection's vector goes out at its first packet): the features and model of a
front point of the committed IoT Sentinel study (12 features, a random forest of 50 trees), the same
features with a decision tree and with LightGBM, and every feature (the worst case).

* Throughput, in process (no sockets): ONNX Runtime alone, batched (256) and one vector at a time;
  and the worker's whole path: parse and read Zeek's JSON batch message (100 vectors), score, and
  encode the one verdict message that answers it.
* Latency: a synthetic capture of one-packet UDP connections at a fixed rate, replayed by Zeek at
  its own pace (--pseudo-realtime) with the package and the real worker over Zeek's WebSocket API;
  Zeek measures each verdict's latency from publishing the vector (batching included) to its arrival.

Results go to benchmarks/results/serve.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from cato.cache import default_cache_dir
from cato.corpus import load_corpus
from cato.corpus.pcapio import write_udp_connections
from cato.dataset import load_dataset
from cato.deploy.compile import compile_config
from cato.deploy.replay import replay
from cato.deploy.links import VECTOR_EVENT, VERDICTS_EVENT, WebSocketLink
from cato.deploy.serve import Scorer
from cato.deploy.transport import Address, Count, Enum, Port, Timespan, Timestamp, data_message, event_envelope
from cato.deploy.zeek_side import VECTOR_TOPIC, VERDICT_TOPIC
from cato.features import resolve
from cato.model import ModelSpec
from cato.search.space import Config
from cato.study import Study, StudySettings
from cato.zeek import read_zeek_log

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


def packages(corpus_dir: Path, work: Path) -> dict[str, Path]:
    """Each configuration compiled at depth 10 (throughput) and, for the latency one, at depth 1."""
    study = Study.open(work / "study", StudySettings(str(corpus_dir.resolve()), max_depth=10))
    front = CONFIGS[LATENCY_CONFIG][0]
    out = {}
    for name, (selection, model) in CONFIGS.items():
        features = tuple(f.name for f in resolve(selection or front) if f.dtype != "string")
        for depth in (10, 1) if name == LATENCY_CONFIG else (10,):
            out[f"{name}@{depth}"] = compile_config(study, Config(features, depth, model),
                                                    work / f"pkg-{len(out)}").path
    return out


def zeek_batch(features: np.ndarray, depth: int) -> list:
    """Vectors typed as Zeek sends them: the record's id fields, then the features (-1: unset)."""
    return [[Timestamp(1.7e9), f"C{i:017d}",
             [Address("10.0.0.1"), Port(f"{1024 + i % 60000}/udp"), Address("10.0.0.2"), Port("53/udp"), Count(17), []],
             Enum("udp"), Count(depth), Count(1), Timespan(0.0), Enum("Cato::DEPTH"),
             *[None if v == -1 else float(v) for v in row]]
            for i, row in enumerate(features)]


def throughput(package: Path, x: np.ndarray, seconds: float = 2.0) -> dict:
    scorer = Scorer(package)
    n = scorer.n_features
    # One batch message as Zeek sends it (100 vectors, its default batch size), as text.
    message = json.dumps(data_message(VECTOR_TOPIC, VECTOR_EVENT, [zeek_batch(x[:100], scorer.manifest.depth)]))
    link = WebSocketLink("ws://127.0.0.1:1")  # reads vectors as the worker does; never connects here
    vectors = [link.read(e, n) for e in event_envelope(json.loads(message))[2][0]["data"]]
    assert all(v is not None for v in vectors)
    batch = (vectors * 3)[:256]

    def rate(fn, per_call: int) -> float:
        calls, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            fn()
            calls += 1
        return calls * per_call / (time.perf_counter() - t0)

    def whole_path() -> None:  # what the worker does per batch message, less the socket
        received = [link.read(e, n) for e in event_envelope(json.loads(message))[2][0]["data"]]
        answers = [[v.uid, v.conn_id, label, score] for v, (label, score) in zip(received, scorer.score(received))]
        json.dumps(data_message(VERDICT_TOPIC, VERDICTS_EVENT, [scorer.manifest.schema, answers]))

    return {"onnx_batched_per_s": rate(lambda: scorer.score(batch), len(batch)),
            "onnx_one_at_a_time_per_s": rate(lambda: scorer.score(batch[:1]), 1),
            "worker_path_batched_per_s": rate(whole_path, len(vectors)),
            "message_bytes_per_vector": len(message) / len(vectors)}


#: A DNS-sized query: the payload of every synthetic connection.
DNS_QUERY = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x07example\x03com\x00\x00\x01\x00\x01"


def synthetic_capture(path: Path, rate: int, seconds: float) -> int:
    """One-packet UDP connections (a DNS-sized query each, distinct source port and host) at ``rate``/s."""
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--rates", default="1000,5000,10000,20000")
    ap.add_argument("--seconds", type=float, default=3.0, help="Length of each synthetic capture.")
    ap.add_argument("--trials", type=int, default=3, help="Replays per rate (near saturation they differ).")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "serve.json")
    args = ap.parse_args()
    corpus = load_corpus(args.corpus)
    dataset = load_dataset(corpus, 10, default_cache_dir())
    out: dict = {"corpus": str(args.corpus), "throughput": {}, "latency_config": LATENCY_CONFIG, "latency": []}
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
                out["latency"].append(latency(pkgs[f"{LATENCY_CONFIG}@1"], rate, args.seconds, work / f"t{trial}"))
                print(out["latency"][-1], flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print("\n| configuration (depth 10) | ONNX batched /s | ONNX one at a time /s | worker path /s | bytes/vector |")
    print("|---|---|---|---|---|")
    for name, t in out["throughput"].items():
        print(f"| {name} | {t['onnx_batched_per_s']:,.0f} | {t['onnx_one_at_a_time_per_s']:,.0f} | "
              f"{t['worker_path_batched_per_s']:,.0f} | {t['message_bytes_per_vector']:,.0f} |")
    print("\n| conns/s | replays | coverage (least) | p50 ms (median of replays) | p99 ms (median; worst) |")
    print("|---|---|---|---|---|")
    for rate in sorted({r["rate_conns_per_s"] for r in out["latency"]}):
        runs = [r for r in out["latency"] if r["rate_conns_per_s"] == rate]
        p50 = float(np.median([r["latency_ms_p50"] for r in runs]))
        p99 = [r["latency_ms_p99"] for r in runs]
        print(f"| {rate:,} | {len(runs)} | {min(r['coverage'] for r in runs):.1%} | {p50:.2f} | "
              f"{float(np.median(p99)):.2f}; {max(p99):.2f} |")


if __name__ == "__main__":
    main()
