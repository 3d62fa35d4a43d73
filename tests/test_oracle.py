"""Cross-check: features from generated Zeek scripts against an independent Python recomputation
(tests/oracle.py, dpkt) on real connections of both corpora."""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

import oracle
from cato.corpus import load_corpus
from cato.dataset.extract import extract
from cato.features import resolve

pytestmark = [pytest.mark.zeek, pytest.mark.corpora]

DEPTHS = (1, 3, 10, 25)
EXACT = [f"{d}_{q}_{s}" for d in ("orig", "resp", "flow") for q in ("size",) for s in ("sum", "min", "max")] + [
    f"{d}_{x}" for d in ("orig", "resp") for x in (
        "pkts", "ip_bytes", "ttl_min", "ttl_max", "win_min", "win_max", "init_win", "data_pkts", "payload_max",
        "cwr_cnt", "ece_cnt", "urg_cnt", "ack_cnt", "psh_cnt", "rst_cnt", "syn_cnt", "fin_cnt")] + ["pkts_seen"]
CLOSE = [f"{d}_{q}_{s}" for d in ("orig", "resp", "flow") for q in ("size", "iat")
         for s in ("sum", "mean", "median", "std", "min", "max") if not (q == "size" and s in ("sum", "min", "max"))] + [
    f"{d}_{q}_{s}" for d in ("orig", "resp") for q in ("ttl", "win") for s in ("mean", "median", "std")] + [
    f"{d}_payload_mean" for d in ("orig", "resp")] + ["tcp_syn_synack", "tcp_synack_ack", "tcp_rtt", "tcp_ack_data",
                                                      "duration"]


def _sample(corpus_dir: Path, n: int, seed: int) -> list[str]:
    corpus = load_corpus(corpus_dir)
    caps = [c for c in corpus.captures if oracle.LINKTYPES.get(_linktype(corpus.path_of(c))) is not None]
    return sorted(random.Random(seed).sample(caps, min(n, len(caps))))


def _linktype(path: Path) -> int:
    f, reader = oracle._reader(str(path))
    with f:
        return reader.datalink()


def _check(corpus_dir: Path, captures: list[str], min_compared: int, engine: str = "script") -> None:
    corpus = load_corpus(corpus_dir)
    corpus.labels = corpus.labels[corpus.labels["pcap"].isin(captures)].reset_index(drop=True)
    # All connections, labelled or not: label every connection with its capture.
    corpus.flow_level = False
    result = extract(corpus, resolve("all,-needs:analyzer"), DEPTHS, jobs=2, engine=engine)
    table = result.table
    compared = Counter()
    mismatches: list[str] = []
    for cap in captures:
        flows = oracle.read_flows(str(corpus.path_of(cap)))
        rows = table[table["capture"] == cap]
        def flow_of(r) -> tuple:
            return (r["proto"], frozenset({(r["orig_h"], int(r["orig_p"])), (r["resp_h"], int(r["resp_p"]))}))

        tuples = Counter(flow_of(row._asdict()) for row in rows.itertuples(index=False))
        for row in rows.itertuples(index=False):
            r = row._asdict()
            key = flow_of(r)
            if r["proto"] not in ("tcp", "udp") or tuples[key] != len(DEPTHS):
                continue  # 5-tuple reused within the capture: Zeek split it, the oracle cannot
            if key not in flows or flows[key][0].fragmented:
                continue
            flow = flows[key][0]
            if abs(flow.packets[0].raw_t - r["ts"]) > 2e-6:
                continue  # not the same connection (e.g. Zeek saw a tunnelled one)
            expect = oracle.features(flow, (r["orig_h"], int(r["orig_p"])), int(r["depth"]))
            monotonic = all(a.raw_t <= b.raw_t for a, b in zip(flow.packets, flow.packets[1:]))
            # Zeek stops a TCP connection's clock once both sides closed: compare durations only
            # where no FIN or RST came within the depth.
            closing = any(p.flags is not None and p.flags & 0x05 for p in flow.packets[:int(r["depth"])])
            for name in EXACT + CLOSE:
                if name == "duration" and (not monotonic or closing):
                    continue
                got, want = r[name], expect[name]
                got_missing = got is None or pd.isna(got)
                if want is None:
                    ok = got_missing
                elif got_missing:
                    ok = False
                elif name in EXACT:
                    ok = int(got) == int(want)
                else:
                    ok = math.isclose(float(got), float(want), rel_tol=1e-6, abs_tol=2e-6)
                if not ok:
                    mismatches.append(f"{cap} {key} depth {r['depth']}: {name} zeek={got} oracle={want}")
            compared[r["proto"]] += 1
    assert not mismatches, f"{len(mismatches)} mismatches: " + "\n".join(mismatches[:15]) + str(Counter(m.split(": ")[1].split()[0] for m in mismatches))
    assert sum(compared.values()) >= min_compared, compared
    assert compared["tcp"] > 0 and compared["udp"] > 0, compared


@pytest.fixture(params=["script", "native"])
def engine(request) -> str:
    if request.param == "native":
        request.getfixturevalue("native_plugin")
    return request.param


def test_oracle_iot_sentinel(zeek, iot_corpus, engine):
    _check(iot_corpus, _sample(iot_corpus, 40, seed=1), min_compared=800, engine=engine)


def test_oracle_ndpi(zeek, ndpi_corpus, engine):
    _check(ndpi_corpus, _sample(ndpi_corpus, 60, seed=2), min_compared=800, engine=engine)
