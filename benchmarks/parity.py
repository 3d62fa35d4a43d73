"""Do replayed vectors equal the training vectors? Every capture of a corpus, bare and default (issue #30).

    python benchmarks/parity.py --corpus ../shared/corpora/iot-sentinel \
        --out benchmarks/results/parity-iot-sentinel.json
    python benchmarks/parity.py --corpus ../shared/corpora/ndpi --label-column app \
        --out benchmarks/results/parity-ndpi.json

Analyzer features (#32), whose codes the package's vocabularies give, under the default deployment:

    python benchmarks/parity.py --corpus ../shared/corpora/ndpi --label-column app --deployments default \
        --features resp_port,orig_size_mean,service_code,tls_server_name_code,dns_query_code,http_host_code \
        --out benchmarks/results/parity-ndpi-analyzers.json

One fixed configuration (``FEATURES`` at depth ``DEPTH``, ``MODEL``, seed 0; ``--features`` for others) is compiled with cato's
public API (``compile_config``) once per deployment, from a study of the corpus under that deployment,
so that each package is trained on the vectors its deployment makes. Then, per deployment:

* online: every capture of the corpus (every capture file, labelled or not) is replayed alone by
  ``cato.deploy.replay.replay`` (Zeek with the package, a real worker over Zeek's WebSocket API),
  with a site script that also logs the vectors Zeek publishes (``Cato::log_vectors = T``), two
  replays at a time. A capture the replay refuses or that fails is reported and skipped.
* offline: ``cato.dataset.extract(..., deployment=...)`` of the package's features and depth over the
  same captures, every connection (a file-level corpus of them all, so unlabelled connections are kept),
  and the package's model's predictions on those vectors; and the training dataset itself (what
  ``compile_config`` trained on: labelled connections only).

Compared per deployment, TCP and UDP only: the connection sets (conn.log against the extraction's
rows, joined on capture, protocol, 5-tuple and start time), every feature value of each joined pair
(relative and absolute tolerance 1e-6), and each verdict against the offline prediction. Every
connection on one side only, and every pair that differs, is given a cause (``CAUSES``), and the
causes are grouped by service, responder port and history with examples. Across deployments it also
compares the default replay with the bare extraction: what Zeek's default scripts change.

``--work DIR`` keeps the packages, the replays' logs and both sides' vectors (Parquet); ``--compare-only``
then compares them again (after a change to the comparison) without replaying. ``--limit N``: a trial
run on N captures spread over the corpus (the JSON says ``sampled``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from cato.cache import default_cache_dir
from cato.corpus import load_corpus
from cato.dataset import extract, load_dataset
from cato.deploy.compile import compile_config, package_vocabularies
from cato.deploy.manifest import Manifest
from cato.deploy.zeek_side import for_package
from cato.deploy.replay import replay
from cato.features import resolve
from cato.model import ModelSpec, OnnxModel, Vocabularies, learned_columns
from cato.search.space import Config
from cato.study import Study, StudySettings
from cato.zeek import find_zeek, read_zeek_log, zeek_version

import provenance

#: The fixed configuration: features of every kind (the connection record, sizes, times, TCP window and
#: handshake), most of them per direction so that a connection's roles show in its vector.
FEATURES = ("duration", "resp_port", "orig_pkts", "resp_ip_bytes", "orig_size_mean", "flow_iat_mean",
            "orig_win_max", "tcp_rtt")
DEPTH = 10
MODEL = ModelSpec("rf", 20, 8)
SEED = 0
DEPLOYMENTS = ("bare", "default")
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap")
#: Feature values equal: both unset, or within this relative and absolute tolerance (logged values).
RTOL = ATOL = 1e-6
#: Start times equal (cato extract maps times back from its merged streams exactly, to the µs).
TS_TOL = 1e-5
KEY = ["capture", "proto", "orig_h", "orig_p", "resp_h", "resp_p"]
#: The site script of every replay: the vectors Zeek publishes are logged too, to cato.log (written for
#: module Cato; moved to the package's own by zeek_side.for_package).
SITE = 'redef Cato::log_vectors = T;\nredef Cato::log_path = "cato";\n'
#: A deployment's figures that come from its run, not from the comparison (kept by --compare-only).
RUN_FIELDS = ("compile_s", "replay_wall_s", "replay_s_median", "replay_s_max", "extract_wall_s", "captures_failed",
              "replay_notes", "extraction_problems")


def captures_of(corpus: Path) -> list[str]:
    """Every capture file under the corpus folder (labelled or not), as paths relative to it."""
    return sorted(str(p.relative_to(corpus)) for p in corpus.rglob("*")
                  if p.is_file() and p.suffix.lower() in CAPTURE_SUFFIXES)


def every_connection_corpus(corpus: Path, captures: list[str], dest: Path) -> Path:
    """A file-level corpus of ``captures`` (links where they lie): extraction keeps every connection."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in captures:
        link = dest / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to((corpus / rel).resolve())
    pd.DataFrame({"pcap": captures, "label": "any"}).to_csv(dest / "labels.csv", index=False)
    return dest


def compile_packages(corpus: Path, label_column: str, work: Path, deployments) -> dict[str, dict]:
    out = {}
    for deployment in deployments:
        t0 = time.perf_counter()
        study = Study.open(work / f"study-{deployment}", StudySettings(
            str(corpus.resolve()), label_column=label_column, max_depth=DEPTH, seed=SEED, deployment=deployment))
        package = compile_config(study, Config(FEATURES, DEPTH, MODEL), work / f"package-{deployment}")
        out[deployment] = {"study": study, "package": package, "compile_s": time.perf_counter() - t0}
    return out


# Online ------------------------------------------------------------------------------------------------

CONN_COLUMNS = ["uid", "ts", "proto", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "service", "history",
                "conn_state", "orig_pkts", "resp_pkts"]


def replay_one(package: Path, corpus: Path, capture: str, out: Path, site: Path, timeout: float) -> dict:
    """One capture replayed: its TCP/UDP connections with their logged vector and verdict, or its problem."""
    t0 = time.perf_counter()
    try:
        result = replay(package, corpus / capture, out, timeout=timeout, default_scripts=True,
                        extra_scripts=(str(site),))
    except Exception as e:  # noqa: BLE001 (a bad capture is reported and skipped, whatever went wrong)
        return {"capture": capture, "error": f"{type(e).__name__}: {str(e).strip()[:500]}",
                "wall_s": time.perf_counter() - t0}
    conns = _log(out, "conn")
    conns = conns[conns["proto"].isin(["tcp", "udp"])] if len(conns) else pd.DataFrame(columns=CONN_COLUMNS)
    conns = conns[[c for c in CONN_COLUMNS if c in conns.columns]].rename(
        columns={"id.orig_h": "orig_h", "id.orig_p": "orig_p", "id.resp_h": "resp_h", "id.resp_p": "resp_p",
                 "orig_pkts": "conn_orig_pkts", "resp_pkts": "conn_resp_pkts"})  # not the features of that name
    vectors = _log(out, "cato")
    verdicts = _log(out, "cato_verdict")
    if len(vectors):
        keep = ["uid", "pkts_seen", "decided_by", *[f for f in FEATURES if f in vectors.columns]]
        vectors = vectors[keep]
        conns = conns.merge(vectors.drop_duplicates("uid"), on="uid", how="left", indicator="_vec")
        conns["has_vector"] = conns.pop("_vec") == "both"
        conns["vectors_logged"] = conns["uid"].map(vectors["uid"].value_counts()).fillna(0).astype(int)
    else:
        conns["has_vector"] = False
        conns["vectors_logged"] = 0
    if len(verdicts):
        conns = conns.merge(verdicts[["uid", "label", "score"]].drop_duplicates("uid").rename(
            columns={"label": "verdict"}), on="uid", how="left")
    else:
        conns["verdict"] = None
    conns.insert(0, "capture", capture)
    for col in ("service", "history"):
        if col not in conns.columns:
            conns[col] = None
    return {"capture": capture, "rows": conns, "notes": result.notes, "wall_s": time.perf_counter() - t0,
            "connections": result.connections, "answered": result.answered, "verdicts": result.verdicts,
            "dropped": result.stats.dropped}


def _log(out: Path, name: str) -> pd.DataFrame:
    path = out / f"{name}.log"
    return read_zeek_log(path) if path.exists() else pd.DataFrame()


def replay_all(package: Path, corpus: Path, captures: list[str], work: Path, jobs: int, timeout: float,
               keep: bool, progress: bool = True) -> tuple[pd.DataFrame, list[dict], dict]:
    work.mkdir(parents=True, exist_ok=True)
    site = work / "parity-site.zeek"
    site.write_text(for_package(SITE, Manifest.read(package)))
    rows, failed, notes = [], [], []
    done, t0, walls = 0, time.perf_counter(), []

    def one(i_capture):
        i, capture = i_capture
        out = work / f"replay-{i:04d}"
        try:
            return replay_one(package, corpus, capture, out, site, timeout)
        finally:
            if not keep:
                shutil.rmtree(out, ignore_errors=True)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for r in pool.map(one, enumerate(captures)):
            done += 1
            walls.append(r["wall_s"])
            if "error" in r:
                failed.append({"capture": r["capture"], "error": r["error"]})
            else:
                rows.append(r["rows"])
                notes += r["notes"]
            if progress and (done % 25 == 0 or done == len(captures)):
                print(f"  replayed {done}/{len(captures)} in {time.perf_counter() - t0:.0f} s "
                      f"({len(failed)} failed)", file=sys.stderr, flush=True)
    online = pd.concat([r for r in rows if len(r)], ignore_index=True) if rows else pd.DataFrame()
    stats = {"wall_s": time.perf_counter() - t0, "replay_wall_s_median": float(np.median(walls)) if walls else 0.0,
             "replay_wall_s_max": float(max(walls)) if walls else 0.0, "notes": notes}
    return online, failed, stats


# Offline -----------------------------------------------------------------------------------------------

def offline_vectors(package, every: Path, deployment: str, jobs: int) -> tuple[pd.DataFrame, list[str], float]:
    t0 = time.perf_counter()
    manifest = package.manifest
    result = extract(load_corpus(every), resolve(",".join(manifest.features)), [manifest.depth], jobs=jobs,
                     deployment=deployment, vocabularies=package_vocabularies(package.path))
    table = result.table
    table = table[table["proto"].isin(["tcp", "udp"])].reset_index(drop=True)
    model = OnnxModel.load(package.path / "model.onnx")
    table["predicted"] = ([manifest.labels[i] for i in model.predict(model.matrix(table, manifest.features))]
                          if len(table) else [])
    return table, [str(p) for p in result.problems], time.perf_counter() - t0


def _normal(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for col in ("capture", "proto", "orig_h", "resp_h"):
        df[col] = df[col].astype(str)
    for col in ("orig_p", "resp_p"):
        df[col] = df[col].astype("int64")
    df["ts"] = df["ts"].astype("float64")
    return df


# Comparison --------------------------------------------------------------------------------------------

def join(online: pd.DataFrame, offline: pd.DataFrame,
         features=None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """One-to-one pairs on capture, protocol, 5-tuple and start time; then the rows of each side alone.

    Several connections can share a 5-tuple and a start time (in captures stamped to the millisecond,
    nDPI's agora-sd-rtn and ipsec_isakmp_esp, Zeek makes dozens of one-packet connections of one flow):
    those are paired in the order of their vectors, not at random."""
    features = FEATURES if features is None else features
    on = _normal(online).reset_index(drop=True).rename_axis("i_on").reset_index()
    off = _normal(offline).reset_index(drop=True).rename_axis("i_off").reset_index()
    for df in (on, off):
        df["ts_us"] = (df["ts"] * 1e6).round().astype("int64")
        order = df.sort_values(KEY + ["ts_us", *[f for f in features if f in df.columns]], na_position="last")
        df["rank"] = order.groupby(KEY + ["ts_us"]).cumcount().reindex(df.index)
    exact = on.merge(off, on=KEY + ["ts_us", "rank"], suffixes=("_on", "_off"))
    # The rest within the tolerance (none, where cato extract maps times back exactly).
    rest_on, rest_off = on[~on["i_on"].isin(exact["i_on"])], off[~off["i_off"].isin(exact["i_off"])]
    near = rest_on.merge(rest_off, on=KEY, suffixes=("_on", "_off"))
    near = near[(near["ts_on"] - near["ts_off"]).abs() < TS_TOL]
    near = near.drop_duplicates("i_on").drop_duplicates("i_off")
    pairs = pd.concat([exact, near], ignore_index=True)
    only_on = on[~on["i_on"].isin(pairs["i_on"])]
    only_off = off[~off["i_off"].isin(pairs["i_off"])]
    return pairs.reset_index(drop=True), only_on.reset_index(drop=True), only_off.reset_index(drop=True)


def _flip(df: pd.DataFrame) -> pd.DataFrame:
    return df.rename(columns={"orig_h": "resp_h", "resp_h": "orig_h", "orig_p": "resp_p", "resp_p": "orig_p"})


def why_alone(only_on: pd.DataFrame, only_off: pd.DataFrame, online: pd.DataFrame,
              offline: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """A cause for each connection on one side only.

    * ``roles flipped``: the other side has the connection (same start) with originator and responder
      swapped;
    * ``other boundaries``: the other side has the same 5-tuple in the capture, starting at other times
      (one connection there is several here, or the reverse: Zeek's timeouts split it differently);
    * ``boundaries of a flip`` (set by :func:`compare`): other boundaries where one side flipped the
      connection (history ``^``);
    * ``no counterpart``: nothing of that 5-tuple on the other side.
    """
    def causes(alone: pd.DataFrame, other: pd.DataFrame, other_all: pd.DataFrame) -> pd.Series:
        if not len(alone):
            return pd.Series([], dtype=object)
        other, other_all = _normal(other), _normal(other_all)
        flipped = alone.merge(_flip(other)[KEY + ["ts"]], on=KEY, suffixes=("", "_o"))
        flipped = set(flipped.loc[(flipped["ts"] - flipped["ts_o"]).abs() < TS_TOL, "i"])
        same = set(alone.merge(other_all[KEY].drop_duplicates(), on=KEY)["i"])
        same |= set(alone.merge(_flip(other_all)[KEY].drop_duplicates(), on=KEY)["i"])
        return alone["i"].map(lambda i: "roles flipped" if i in flipped else
                              "other boundaries" if i in same else "no counterpart")

    on = only_on.rename(columns={"i_on": "i"})
    off = only_off.rename(columns={"i_off": "i"})
    return causes(on, only_off, offline).set_axis(only_on.index), causes(off, only_on, online).set_axis(only_off.index)


#: What each named cause is (``named_causes`` in the figures counts connections by these names).
CAUSES = {
    "roles flipped by Zeek (history ^)": "Zeek made the other endpoint the originator on one side (or, around "
        "such a flip, cut the flow into other connections): with Zeek's default scripts, a flow whose first "
        "packet comes from a port in likely_server_ports (the ports the analyzers register: DHCP 67, DNS "
        "53/5353, NTP 123, HTTP 80, TLS 443, ...) is flipped at once; bare Zeek flips on TCP handshake "
        "evidence only",
    "DNS session split (dns_session_timeout)": "with Zeek's default scripts the DNS analyzer sets a DNS "
        "flow's inactivity timeout to dns_session_timeout (10 s, not udp_inactivity_timeout's 1 min): a "
        "DNS/mDNS flow with a longer gap is several connections, whose first one holds fewer packets",
    "network_time() clamped to 1.0": "a capture stamped within 1 s of the epoch: reading it, Zeek's "
        "network_time() (cato's per-packet clock) stays at 1.0, so inter-arrival and handshake times "
        "read 0 in the replay; cato extract shifts every capture into 1973 and reads the real times",
    "unexplained": "no rule above names it (see the groups)",
}


def named_cause(row) -> str:
    """The named cause of one connection that is on one side only, or whose vectors differ."""
    def text(name: str) -> str:
        value = getattr(row, name, None)
        return "" if value is None or pd.isna(value) else str(value)

    service, cause = text("service"), text("cause")
    if cause in ("roles flipped", "boundaries of a flip"):
        return "roles flipped by Zeek (history ^)"
    if "dns" in service or (cause == "other boundaries" and int(row.resp_p) in (53, 5353)):
        return "DNS session split (dns_session_timeout)"
    differs = text("differs_in").split(",")
    if float(row.ts) < 1.0 and set(differs) <= TIMED:
        return "network_time() clamped to 1.0"
    return "unexplained"


#: Features read from Zeek's network_time() in the script engine (per-packet times).
TIMED = {"orig_iat_sum", "orig_iat_mean", "orig_iat_min", "orig_iat_max", "orig_iat_median", "orig_iat_std",
         "resp_iat_sum", "resp_iat_mean", "resp_iat_min", "resp_iat_max", "resp_iat_median", "resp_iat_std",
         "flow_iat_sum", "flow_iat_mean", "flow_iat_min", "flow_iat_max", "flow_iat_median", "flow_iat_std",
         "tcp_syn_synack", "tcp_synack_ack", "tcp_rtt", "tcp_ack_data"}


def features_equal(a: pd.DataFrame, b: pd.DataFrame, features) -> pd.DataFrame:
    """Per pair and feature: equal (both unset, or within the tolerance)."""
    out = {}
    for f in features:
        x, y = a[f].astype("float64").to_numpy(), b[f].astype("float64").to_numpy()
        out[f] = (np.isnan(x) & np.isnan(y)) | np.isclose(x, y, rtol=RTOL, atol=ATOL)
    return pd.DataFrame(out, index=a.index)


def groups(df: pd.DataFrame, by: list[str], cause: str | None = None, examples: int = 3, top: int = 12) -> list:
    """Counts by ``by`` (largest first) with a few example connections each."""
    if not len(df):
        return []
    df = df.copy()
    for col in by:
        df[col] = df[col].astype(object).where(df[col].notna(), "-").astype(str) if col in df.columns else "-"
    out = []
    for values, g in sorted(df.groupby(by, dropna=False), key=lambda kv: -len(kv[1]))[:top]:
        values = values if isinstance(values, tuple) else (values,)
        ex = [f"{r.capture} {r.proto} {r.orig_h}:{r.orig_p} > {r.resp_h}:{r.resp_p} ts {r.ts:.6f}"
              for r in g.head(examples).itertuples()]
        item = dict(zip(by, values))
        item.update({"count": len(g), "examples": ex})
        if cause:
            item["cause"] = cause
        out.append(item)
    rest = len(df.groupby(by, dropna=False)) - top
    if rest > 0:
        out.append({"other_groups": rest})
    return out


def compare(online: pd.DataFrame, offline: pd.DataFrame, features, verdicts: bool = True) -> dict:
    pairs, only_on, only_off = join(online, offline)
    cause_on, cause_off = why_alone(only_on, only_off, online, offline)
    only_on = only_on.assign(cause=cause_on.values if len(only_on) else [])
    only_off = only_off.assign(cause=cause_off.values if len(only_off) else [])
    if len(only_on):
        flipped_here = (only_on["cause"] == "other boundaries") & only_on["history"].astype(str).str.startswith("^")
        only_on.loc[flipped_here, "cause"] = "boundaries of a flip"
    if len(only_off) and "history" in online.columns:  # the other side holds that 5-tuple as a flipped connection
        on_all = _normal(online)
        flips = on_all[on_all["history"].astype(str).str.startswith("^")]
        near_flip = set(only_off.merge(flips[KEY].drop_duplicates(), on=KEY)["i_off"])
        near_flip |= set(only_off.merge(_flip(flips)[KEY].drop_duplicates(), on=KEY)["i_off"])
        only_off.loc[(only_off["cause"] == "other boundaries") & only_off["i_off"].isin(near_flip),
                     "cause"] = "boundaries of a flip"
    eq = features_equal(pairs[[f + "_on" for f in features]].set_axis(features, axis=1),
                        pairs[[f + "_off" for f in features]].set_axis(features, axis=1), features)
    pairs["vector_equal"] = eq.all(axis=1)
    pairs["differs_in"] = eq.apply(lambda r: ",".join(f for f in features if not r[f]), axis=1) if len(pairs) else []
    differ = pairs[~pairs["vector_equal"]].rename(columns={"ts_on": "ts"})
    named = {side: pd.Series([named_cause(r) for r in frame.itertuples()], dtype=object).value_counts().to_dict()
             for side, frame in (("only_online", only_on), ("only_offline", only_off), ("vectors_differ", differ))
             if len(frame)}
    out = {
        "online_tcp_udp": len(online), "offline_tcp_udp": len(offline),
        "joined": len(pairs), "only_online": len(only_on), "only_offline": len(only_off),
        "named_causes": named,
        "only_online_by_cause": only_on["cause"].value_counts().to_dict() if len(only_on) else {},
        "only_offline_by_cause": only_off["cause"].value_counts().to_dict() if len(only_off) else {},
        "only_online_groups": groups(only_on, ["cause", "proto", "service", "resp_p", "history"]),
        "only_offline_groups": groups(only_off, ["cause", "proto", "resp_p", "decided_by"]),
        "vectors_equal": int(pairs["vector_equal"].sum()), "vectors_differ": int((~pairs["vector_equal"]).sum()),
        "features_differing": {f: int((~eq[f]).sum()) for f in features if (~eq[f]).any()},
        "differing_groups": groups(differ, ["differs_in", "proto", "service", "resp_p", "history"]),
    }
    if verdicts:
        agree = pairs["verdict"].astype(str) == pairs["predicted"].astype(str)
        out.update({
            "online_with_verdict": int(online["verdict"].notna().sum()),
            "online_with_vector": int(online["has_vector"].sum()),
            "online_vectors_per_connection_max": int(online["vectors_logged"].max()) if len(online) else 0,
            "verdicts_equal": int(agree.sum()), "verdicts_differ": int((~agree).sum()),
            "verdicts_differ_with_equal_vectors": int((~agree & pairs["vector_equal"]).sum()),
            "verdict_differences": groups(pairs[~agree].rename(columns={"ts_on": "ts"}),
                                          ["verdict", "predicted", "proto", "resp_p"]),
        })
    return out


def training_parity(online: pd.DataFrame, study: Study, package) -> dict:
    """The online vectors of labelled connections against the training dataset's own rows (float32, as the
    model reads them). A dataset row carries its connection's 5-tuple as at its depth-1 vector: where Zeek
    flipped the roles later (history ``^``), it is joined with originator and responder swapped."""
    settings = study.settings
    dataset = load_dataset(settings.load_corpus(), settings.max_depth, default_cache_dir(),
                           deployment=settings.deployment)
    features = list(package.manifest.features)
    x = dataset.matrix(features, package.manifest.depth)
    x = Vocabularies(learned_columns(features)).fit(x).transform(x)  # the codes compile learned
    train = dataset.ids.assign(**{f: x[:, k].astype("float64") for k, f in enumerate(features)})
    train = train[train["proto"].astype(str).isin(["tcp", "udp"])]
    pairs, only_on, only_off = join(online, train)
    flipped = only_on.drop(columns=["i_on"]).merge(
        _flip(only_off.drop(columns=["i_off"])), on=KEY, suffixes=("_on", "_off"))
    flipped = flipped[(flipped["ts_on"] - flipped["ts_off"]).abs() < TS_TOL]
    model = OnnxModel.load(package.path / "model.onnx")

    def equal(df: pd.DataFrame) -> pd.DataFrame:
        a = df[[f + "_on" for f in features]].astype("float32").set_axis(features, axis=1)
        b = df[[f + "_off" for f in features]].set_axis(features, axis=1)
        # Unset values: the dataset stores them as the model reads them (MISSING_VALUE).
        a, b = (pd.DataFrame(model.matrix(v, features).astype("float64"), columns=features, index=df.index)
                for v in (a, b))
        return features_equal(a, b, features)

    eq, eq_flipped = equal(pairs), equal(flipped)
    return {"training_rows_tcp_udp": len(train), "joined": len(pairs),
            "joined_roles_as_at_depth_1": len(flipped),
            "joined_roles_as_at_depth_1_history": flipped["history"].astype(str).value_counts().to_dict(),
            "training_rows_not_replayed": len(only_off) - len(flipped),
            "online_not_in_training": len(only_on) - len(flipped),
            "vectors_equal": int(eq.all(axis=1).sum() + eq_flipped.all(axis=1).sum()),
            "vectors_differ": int((~eq.all(axis=1)).sum() + (~eq_flipped.all(axis=1)).sum()),
            "features_differing": {f: int((~eq[f]).sum() + (~eq_flipped[f]).sum()) for f in features
                                   if (~eq[f]).any() or (~eq_flipped[f]).any()}}


# RESULTS.md -------------------------------------------------------------------------------------------

#: RESULTS.md's table: FEATURES on both corpora (each deployment, then the default replay against the
#: bare extraction), and analyzer features (#32) under the default deployment.
RESULTS_FILES = ("parity-iot-sentinel.json", "parity-ndpi.json")
ANALYZER_RESULTS_FILES = ("parity-iot-sentinel-analyzers.json", "parity-ndpi-analyzers.json")
#: Corpus folders as RESULTS.md names them.
CORPUS_NAMES = {"iot-sentinel": "IoT Sentinel", "ndpi": "nDPI"}


def _corpus_name(result: dict) -> str:
    name = Path(result["corpus"]).name
    return CORPUS_NAMES.get(name, name)


def table_row(label: str, figures: dict) -> str:
    """One row of RESULTS.md's table: ``compare``'s figures, with ``training_parity``'s under ``training``
    (a comparison without verdicts or training rows shows – there)."""
    def n(x: int) -> str:
        return f"{x:,}"

    def of_joined(x: int) -> str:
        return n(x) + (" (all)" if x == figures["joined"] else "")

    training = figures.get("training")
    cells = [label, f"{n(figures['online_tcp_udp'])} / {n(figures['offline_tcp_udp'])}", n(figures["joined"]),
             f"{n(figures['only_online'])} / {n(figures['only_offline'])}", of_joined(figures["vectors_equal"]),
             of_joined(figures["verdicts_equal"]) if "verdicts_equal" in figures else "–",
             f"{n(training['vectors_equal'])} of {n(training['training_rows_tcp_udp'])}" if training else "–"]
    return "| " + " | ".join(cells) + " |"


def results_tables(results: Path) -> dict[str, str]:
    """This benchmark's RESULTS.md tables, by block name, from its results files under ``results``."""
    runs = [provenance.load(name, results) for name in RESULTS_FILES]
    rows = [table_row(f"{_corpus_name(r)}, {deployment}", figures)
            for r in runs for deployment, figures in r["deployments"].items()]
    features = None
    for r in (provenance.load(name, results) for name in ANALYZER_RESULTS_FILES):
        these = r["configuration"]["features"]
        if these == features:
            what = f"the same {len(these)}"
        else:
            analyzers = sum("analyzer" in f.needs for f in resolve(",".join(these)))
            what = f"{len(these)} features with {analyzers} from Zeek's analyzers"
        features = these
        rows += [table_row(f"{_corpus_name(r)}, {deployment}, {what} (#32)", figures)
                 for deployment, figures in r["deployments"].items()]
    cross = [r for r in runs if "default_replay_vs_bare_extraction" in r]
    rows += [table_row(f"{'*default replay, bare training*' if i == 0 else '*same*'}: {_corpus_name(r)}",
                       r["default_replay_vs_bare_extraction"]) for i, r in enumerate(cross)]
    head = ["| corpus, deployment | conn.log / extracted | joined | only online / offline | vectors equal "
            "| verdicts = offline predictions | training rows equal |", "|---|---|---|---|---|---|---|"]
    source = provenance.measured(*RESULTS_FILES, *ANALYZER_RESULTS_FILES, results=results)
    return {"parity": f"Measured {source}.\n\n" + "\n".join(head + rows)}


def main() -> None:
    global FEATURES  # --features sets the configuration every step compares
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--label-column", default="label")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--deployments", default=",".join(DEPLOYMENTS))
    ap.add_argument("--jobs", type=int, default=2, help="replays (and extraction processes) at a time")
    ap.add_argument("--limit", type=int, default=0, help="only the first N captures (a trial run); 0: every one")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per replay")
    ap.add_argument("--work", type=Path, help="keep the packages, replays' logs and vectors here (default: a temp dir)")
    ap.add_argument("--features", default=",".join(FEATURES),
                    help="the configuration's features (analyzer features: with --deployments default)")
    ap.add_argument("--compare-only", action="store_true",
                    help="compare again what a run with --work kept there (its packages, online and offline "
                         "vectors), keeping the timings and failures of its --out file")
    args = ap.parse_args()
    FEATURES = tuple(f.name for f in resolve(args.features))
    deployments = [d for d in args.deployments.split(",") if d]
    corpus = args.corpus
    captures = captures_of(corpus)
    if args.limit:
        captures = captures[:: max(1, len(captures) // args.limit)][: args.limit]
    t_start = time.perf_counter()
    result = {
        "question": "Do replayed vectors equal the training vectors?",
        **provenance.stamp(zeek=zeek_version(find_zeek())),
        "corpus": str(corpus), "label_column": args.label_column, "captures": len(captures),
        "sampled": bool(args.limit),
        "causes": CAUSES,
        "configuration": {"features": list(FEATURES), "depth": DEPTH, "model": str(MODEL), "seed": SEED,
                          "engine": "script", "vector_form": "records",
                          "site": SITE.strip(), "tolerance": {"rtol": RTOL, "atol": ATOL, "ts_s": TS_TOL}},
        "deployments": {},
    }
    tmp = None
    work = args.work
    if work is None:
        tmp = tempfile.TemporaryDirectory(prefix="cato-parity-")
        work = Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    try:
        every = every_connection_corpus(corpus, captures, work / "every") if not args.compare_only else None
        if args.compare_only:
            previous = json.loads(args.out.read_text())
            result.update({k: previous[k] for k in ("date", "commit", "command", "wall_s") if k in previous})
            result["compared_again"] = f"{dt.date.today().isoformat()}, by --compare-only on the run's kept vectors"
            packages = {d: {"study": Study.open(work / f"study-{d}"),
                            "package": SimpleNamespace(path=work / f"package-{d}",
                                                       manifest=Manifest.read(work / f"package-{d}"))}
                        for d in deployments}
        else:
            print(f"compiling {len(deployments)} package(s)", file=sys.stderr, flush=True)
            packages = compile_packages(corpus, args.label_column, work, deployments)
        online_of, offline_of = {}, {}
        for deployment in deployments:
            package = packages[deployment]["package"]
            if args.compare_only:
                online = pd.read_parquet(work / f"online-{deployment}.parquet")
                offline = pd.read_parquet(work / f"offline-{deployment}.parquet")
                run = {k: v for k, v in previous["deployments"][deployment].items()
                       if k in RUN_FIELDS}
            else:
                print(f"{deployment}: replaying {len(captures)} captures", file=sys.stderr, flush=True)
                online, failed, stats = replay_all(package.path, corpus, captures, work / f"replays-{deployment}",
                                                   args.jobs, args.timeout, keep=args.work is not None)
                print(f"{deployment}: extracting", file=sys.stderr, flush=True)
                offline, problems, extract_s = offline_vectors(package, every, deployment, args.jobs)
                online.to_parquet(work / f"online-{deployment}.parquet", index=False)
                offline.to_parquet(work / f"offline-{deployment}.parquet", index=False)
                run = {"compile_s": round(packages[deployment]["compile_s"], 1),
                       "replay_wall_s": round(stats["wall_s"], 1),
                       "replay_s_median": round(stats["replay_wall_s_median"], 2),
                       "replay_s_max": round(stats["replay_wall_s_max"], 2), "extract_wall_s": round(extract_s, 1),
                       "captures_failed": failed, "replay_notes": stats["notes"], "extraction_problems": problems}
            online_of[deployment], offline_of[deployment] = online, offline
            figures = compare(online, offline, list(FEATURES))
            figures["training"] = training_parity(online, packages[deployment]["study"], package)
            result["deployments"][deployment] = {"package_labels": len(package.manifest.labels), **run, **figures}
            _print(deployment, result["deployments"][deployment])
        if {"bare", "default"} <= set(deployments):
            cross = compare(online_of["default"], offline_of["bare"], list(FEATURES), verdicts=False)
            result["default_replay_vs_bare_extraction"] = cross
            _print("default replay vs bare extraction", cross)
    finally:
        if tmp is not None:
            tmp.cleanup()
    if not args.compare_only:
        result["wall_s"] = round(time.perf_counter() - t_start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=_json) + "\n")
    print(f"wrote {args.out} ({result.get('wall_s', 0):.0f} s)", file=sys.stderr)


def _json(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    return str(o)


def _print(name: str, f: dict) -> None:
    print(f"\n## {name}")
    for k in ("online_tcp_udp", "offline_tcp_udp", "joined", "only_online", "only_offline", "named_causes",
              "only_online_by_cause",
              "only_offline_by_cause", "vectors_equal", "vectors_differ", "features_differing", "verdicts_equal",
              "verdicts_differ", "verdicts_differ_with_equal_vectors", "online_with_verdict", "captures_failed",
              "training"):
        if k in f:
            v = f[k]
            print(f"- {k}: {v if not isinstance(v, list) else len(v)}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
