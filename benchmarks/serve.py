"""cato serve: worker throughput, and Zeek -> worker -> Zeek verdict latency at rising connection rates.

    python benchmarks/serve.py --corpus ../shared/corpora/iot-sentinel [--rates 1000,5000,10000,20000]

Packages are compiled from a throw-away study of the corpus (depth 10 for throughput, depth 1 for
latency, so that a connection's vector goes out at its first packet), with the models a study picks:
a random forest (50 trees, depth 16, as the baselines), a decision tree and LightGBM.

* Throughput, in process (no sockets): ONNX Runtime alone, batched (256) and one vector at a time;
  and the worker's whole path per vector: decode Zeek's JSON batch (100 vectors), score, encode one
  verdict message each.
* Latency: a synthetic capture of one-packet UDP connections at a fixed rate, replayed by Zeek at
  its own pace (--pseudo-realtime) with the package and the real worker over Zeek's WebSocket API;
  Zeek measures each verdict's latency from publishing the vector (batching included) to its arrival.

Results go to benchmarks/results/serve.json and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

from cato.cache import default_cache_dir
from cato.corpus import load_corpus
from cato.corpus.pcapio import write_packet, write_pcap_header
from cato.dataset import load_dataset
from cato.deploy.compile import compile_package
from cato.deploy.replay import replay
from cato.deploy.serve import VECTOR_EVENT, VECTOR_TOPIC, VERDICT_EVENT, Scorer, _conn_id
from cato.deploy.transport import Count, Enum, Timespan, Timestamp, data_message, decode_event
from cato.features import resolve
from cato.model import ModelSpec
from cato.search.space import Config
from cato.study import Study, StudySettings
from cato.zeek import read_zeek_log

MODELS = {"rf(50,16)": ModelSpec("rf", 50, 16), "dt(16)": ModelSpec("dt", 1, 16), "gbt(50,8)": ModelSpec("gbt", 50, 8)}


def packages(corpus_dir: Path, work: Path, features: list[str]) -> dict[str, Path]:
    study = Study.open(work / "study", StudySettings(str(corpus_dir.resolve()), max_depth=10))
    out = {}
    for depth in (10, 1):
        for name, spec in MODELS.items():
            if depth == 1 and name != "rf(50,16)":
                continue
            number = study.storage.start_trial("search", Config(tuple(features), depth, spec).to_dict())
            study.storage.finish_trial(number, {"f1": 0.0, "cpu": 0.0}, {})
            trial = next(t for t in study.trials("search") if t.number == number)
            out[f"{name}@{depth}"] = compile_package(study, trial, work / f"pkg-{name}-{depth}").path
    return out


def zeek_vectors(scorer: Scorer, x: np.ndarray) -> list[list]:
    """Vectors as the worker receives them from Zeek: the record's id fields, then the features."""
    return [[1.7e9, f"C{i:017d}", ["10.0.0.1", f"{1024 + i % 60000}/udp", "10.0.0.2", "53/udp", 17, []], "udp",
             scorer.manifest.depth, 1, 0.0, *[None if v == -1 else float(v) for v in row]] for i, row in enumerate(x)]


def _typed(vector: list) -> list:
    """A decoded vector typed again for encoding, as Zeek would send it."""
    ts, uid, cid, proto, depth, pkts, after, *features = vector
    return [Timestamp(ts), uid, _conn_id(cid), Enum(proto), Count(depth), Count(pkts), Timespan(after), *features]


def throughput(package: Path, x: np.ndarray, seconds: float = 2.0) -> dict:
    scorer = Scorer(package)
    vectors = zeek_vectors(scorer, x[: 4096])

    def rate(fn, per_call: int) -> float:
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            fn()
            n += per_call
        return n / (time.perf_counter() - t0)

    batch = vectors[:256]
    one = vectors[:1]
    message = json.dumps(data_message(VECTOR_TOPIC, VECTOR_EVENT, [[_typed(v) for v in vectors[:100]]]))
    schema = scorer.manifest.schema

    def whole_path() -> None:
        _topic, _name, args = decode_event(message)
        received = args[0]
        for label_score, v in zip(scorer.score(received), received):
            json.dumps(data_message("zeek/cato/verdicts", VERDICT_EVENT,
                                    [v[1], _conn_id(v[2]), label_score[0], label_score[1], schema]))

    return {"onnx_batched_per_s": rate(lambda: scorer.score(batch), len(batch)),
            "onnx_one_at_a_time_per_s": rate(lambda: scorer.score(one), 1),
            "worker_path_batched_per_s": rate(whole_path, 100)}


def synthetic_capture(path: Path, rate: int, seconds: float) -> int:
    """One-packet UDP connections (a DNS-sized query each, distinct source port and host) at ``rate``/s."""
    n = int(rate * seconds)
    with open(path, "wb") as out:
        write_pcap_header(out, 1)
        for i in range(n):
            src = socket.inet_aton(f"10.{1 + i // 65000 % 200}.{i // 250 % 250}.{1 + i % 250}")
            payload = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x07example\x03com\x00\x00\x01\x00\x01"
            udp = struct.pack("!HHHH", 1024 + i % 60000, 53, 8 + len(payload), 0) + payload
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0, src,
                             socket.inet_aton("192.0.2.53")) + udp
            frame = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + ip
            write_packet(out, int(1_700_000_000e9) + int(i * 1e9 / rate), frame, len(frame))
    return n


def latency(package: Path, rate: int, seconds: float, work: Path) -> dict:
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
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "serve.json")
    args = ap.parse_args()
    corpus = load_corpus(args.corpus)
    dataset = load_dataset(corpus, 10, default_cache_dir())
    features = [f.name for f in resolve("all") if f.name in dataset.features]
    out: dict = {"corpus": str(args.corpus), "features": len(features), "throughput": {}, "latency": []}
    with tempfile.TemporaryDirectory(prefix="cato-bench-serve-") as tmp:
        work = Path(tmp)
        pkgs = packages(args.corpus, work, features)
        x = dataset.matrix(features, 10)
        for name, pkg in pkgs.items():
            if name.endswith("@10"):
                out["throughput"][name] = throughput(pkg, x)
                print(name, out["throughput"][name], flush=True)
        for rate in (int(r) for r in args.rates.split(",")):
            out["latency"].append(latency(pkgs["rf(50,16)@1"], rate, args.seconds, work))
            print(out["latency"][-1], flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print("\n| model (all features @10) | ONNX batched /s | ONNX one at a time /s | worker path batched /s |")
    print("|---|---|---|---|")
    for name, t in out["throughput"].items():
        print(f"| {name} | {t['onnx_batched_per_s']:,.0f} | {t['onnx_one_at_a_time_per_s']:,.0f} | "
              f"{t['worker_path_batched_per_s']:,.0f} |")
    print("\n| conns/s | verdicts | coverage | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    for r in out["latency"]:
        print(f"| {r['rate_conns_per_s']:,} | {r['verdicts']:,} | {r['coverage']:.1%} | {r['latency_ms_p50']:.2f} | "
              f"{r['latency_ms_p99']:.2f} | {r['latency_ms_max']:.2f} |")


if __name__ == "__main__":
    main()
