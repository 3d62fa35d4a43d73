"""The compact form (Cato::vector_block and Cato::verdict_block) against the records form: the same
vectors and verdicts on real captures of both corpora, and a block that cannot be read is refused and
counted, never a crash."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cato.corpus.merge import merge_captures
from cato.corpus.pcapio import read_captures
from cato.deploy import replay as replay_module
from cato.deploy.block import (BlockError, Endpoints, VectorBlock, VerdictBlock, decode_vectors, decode_verdicts,
                               encode_vectors, encode_verdicts)
from cato.deploy.compile import CompileError, compile_config
from cato.deploy.links import COMPACT, RECORDS, Batch
from cato.deploy.replay import listening, replay
from cato.deploy.serve import Worker
from cato.features import resolve
from cato.model import ModelSpec
from cato.search.space import Config
from cato.study import Study, StudySettings
from cato.zeek import read_zeek_log
from conftest import in_package

ROWS = [("CHhAvVGS1DHFjwGM9", "10.0.0.1", 40000, "93.184.216.34", 443, "tcp"),
        ("Cx" + "z" * 21, "fe80::1", 5353, "ff02::fb", 5353, "udp"),
        ("C1", "192.168.1.2", 8, "192.168.1.1", 0, "icmp")]


def _vectors() -> VectorBlock:
    x = np.array([[1.5, np.nan, 3e9], [0.0, -1.0, 1e-9], [np.nan, np.nan, np.nan]], np.float32)
    return VectorBlock("abc123", Endpoints.of(ROWS), x)


def test_a_vector_block_and_a_verdict_block_round_trip():
    block = decode_vectors(encode_vectors(_vectors()))
    assert block.schema == "abc123" and block.endpoints.uids() == [r[0] for r in ROWS]
    np.testing.assert_array_equal(block.features, _vectors().features)
    assert block.endpoints.conn_ids() == [("10.0.0.1", "40000/tcp", "93.184.216.34", "443/tcp", 6),
                                          ("fe80::1", "5353/udp", "ff02::fb", "5353/udp", 17),
                                          ("192.168.1.2", "8/icmp", "192.168.1.1", "0/icmp", 1)]
    verdicts = VerdictBlock("abc123", ["benign", "évil"], block.endpoints, np.array([1, 0, 1], "u2"),
                            np.array([0.9, 0.5, 1.0], "f4"))
    back = decode_verdicts(encode_verdicts(verdicts))
    assert back.labels == ["benign", "évil"] and back.label.tolist() == [1, 0, 1]
    assert back.endpoints.conn_ids() == block.endpoints.conn_ids()


def test_every_truncated_or_garbled_block_is_refused_with_a_block_error():
    raw = base64.b64decode(encode_vectors(_vectors()))
    for n in range(len(raw)):  # every truncation, and a byte too many
        with pytest.raises(BlockError):
            decode_vectors(base64.b64encode(raw[:n]))
    with pytest.raises(BlockError, match="bytes of columns"):
        decode_vectors(base64.b64encode(raw + b"\0"))
    for text, why in (("not base64!", "not base64"), (base64.b64encode(b"XATO" + raw[4:]), "not a cato block"),
                      (base64.b64encode(raw[:4] + b"\x02" + raw[5:]), "version 2"),
                      (encode_vectors(_vectors()), None)):
        if why is None:
            with pytest.raises(BlockError, match="not verdicts"):
                decode_verdicts(text)
        else:
            with pytest.raises(BlockError, match=why):
                decode_vectors(text)
    verdicts = base64.b64decode(encode_verdicts(VerdictBlock("", ["a"], Endpoints.of(ROWS[:1]),
                                                             np.array([1], "u2"), np.array([1.0], "f4"))))
    with pytest.raises(BlockError, match="past the 1 labels"):
        decode_verdicts(base64.b64encode(verdicts))
    rng = random.Random(7)
    for _ in range(2000):  # garbled bytes: a block error or a block, nothing else
        garbled = bytearray(raw)
        for _ in range(rng.randint(1, 4)):
            garbled[rng.randrange(len(garbled))] = rng.randrange(256)
        try:
            decode_vectors(base64.b64encode(bytes(garbled)))
        except BlockError:
            pass


# Against Zeek: the two forms of one native package, on real captures -----------------------------


@pytest.fixture(scope="module")
def packages(mini_corpus, cache, native_plugin, tmp_path_factory) -> dict:
    """One point (every numeric feature at depth 10, a small forest), compiled in both forms."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CATO_CACHE", str(cache))
        study = Study.open(tmp_path_factory.mktemp("study") / "s", StudySettings(str(mini_corpus), max_depth=10))
        features = tuple(f.name for f in resolve("all,-needs:analyzer") if f.dtype != "string")
        out = tmp_path_factory.mktemp("packages")
        config = Config(features, 10, ModelSpec("rf", 10, 8))
        return {form: compile_config(study, config, out / form, engine="native", vector_form=form).path
                for form in ("compact", "records")}


def test_a_compact_package_needs_the_native_engine(mini_corpus, cache, tmp_path, monkeypatch):
    monkeypatch.setenv("CATO_CACHE", str(cache))
    study = Study.open(tmp_path / "s", StudySettings(str(mini_corpus), max_depth=10))
    with pytest.raises(CompileError, match="needs --engine native"):
        compile_config(study, Config(("duration",), 10, ModelSpec("dt", 1, 4)), tmp_path / "p", engine="script",
                       vector_form="compact")


@pytest.fixture(scope="module", params=["iot-sentinel", "ndpi"])
def capture(request, tmp_path_factory):
    """Forty captures of the corpus merged into one (the Ethernet stream)."""
    corpus = request.getfixturevalue("iot_corpus" if request.param == "iot-sentinel" else "ndpi_corpus")
    labels = pd.read_csv(corpus / "labels.csv")
    named = [(str(p), corpus / p) for p in sorted(labels["pcap"])[:40]]
    captures, _ = read_captures(named)
    streams = merge_captures(captures, tmp_path_factory.mktemp(request.param), request.param)
    return max(streams, key=lambda s: len(s.times_us)).path


def test_the_compact_and_records_forms_carry_the_same_vectors_and_verdicts(packages, capture, monkeypatch, tmp_path):
    received: dict[str, dict[str, np.ndarray]] = {}

    class Recording(Worker):  # the real worker, keeping what it scored
        async def _answer(self, link, batches):
            for b in batches:
                uids = b.ids.uids() if isinstance(b.ids, Endpoints) else [uid for uid, _ in b.ids]
                received.setdefault(b.form, {}).update(zip(uids, b.features))
            await super()._answer(link, batches)

    monkeypatch.setattr(replay_module, "Worker", Recording)
    monkeypatch.setenv("ZEEK_SEED_VALUES", " ".join(["1"] * 21))  # the same uids in both runs
    logs = {}
    for form, package in packages.items():
        result = replay(package, capture, tmp_path / form, default_scripts=False, timeout=300)
        assert result.coverage == 1.0 and result.stats.refused == result.stats.unreadable == 0, form
        logs[form] = read_zeek_log(tmp_path / form / "cato_verdict.log").sort_values("uid").reset_index(drop=True)
    compact, records = received["compact"], received["records"]
    assert len(compact) > 50 and compact.keys() == records.keys()
    uids = sorted(compact)
    a, b = np.array([compact[u] for u in uids]), np.array([records[u] for u in uids])
    # The records form goes through Zeek's JSON, which prints a double with six decimals.
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=6e-7)
    # The same verdicts, for the same connections, with the endpoints each form echoes back.
    endpoints = ["uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"]
    pd.testing.assert_frame_equal(logs["compact"][endpoints], logs["records"][endpoints])
    same = np.all(a == b, axis=1)
    exact = pd.Series(same, index=uids)
    agree = logs["compact"]["label"].to_numpy() == logs["records"]["label"].to_numpy()
    assert agree[exact[logs["compact"]["uid"]].to_numpy()].all(), "the same vector got another verdict"
    assert np.allclose(logs["compact"]["score"][agree], logs["records"]["score"][agree], atol=1e-6)


def test_a_garbled_vector_block_is_counted_by_the_worker_which_goes_on(packages, tmp_path):
    garble = tmp_path / "garble.zeek"
    garble.write_text(in_package("""
event Cluster::websocket_client_added(endpoint: Cluster::EndpointInfo, subscriptions: string_vec)
	{
	for ( _, b in vector("not base64!", "", encode_base64("CATO\\x01\\x01\\x05\\x00\\x00\\x00")) )
		Cluster::publish(Cato::vector_topic, Cato::vector_block, b);
	}
""", packages["compact"]))
    capture = Path(__file__).parent / "btest" / "Traces" / "small.pcap"
    result = replay(packages["compact"], capture, tmp_path / "out", default_scripts=False,
                    extra_scripts=(str(garble),), timeout=120)
    assert result.coverage == 1.0 and result.stats.malformed_blocks == 3 and result.stats.scored > 0


def test_a_worker_refuses_a_batch_of_another_form_or_schema_and_says_why(packages, caplog):
    worker = Worker(packages["compact"])
    x = np.zeros((2, worker.scorer.n_features), np.float32)
    records = Batch(RECORDS, "t", x, [("C1", None), ("C2", None)])
    assert not worker._check(records) and worker.stats.refused == 2
    module = worker.scorer.manifest.module
    assert f"Zeek publishes records vectors ({module}::vector_batch)" in caplog.text
    assert f"speaks compact ({module}::vector_block)" in caplog.text
    other = Batch(COMPACT, "t", x, Endpoints.of(ROWS[:2]), schema="other")
    assert not worker._check(other) and worker.stats.refused == 4
    assert worker._check(Batch(COMPACT, "t", x, Endpoints.of(ROWS[:2]), schema=worker.scorer.manifest.schema))


def test_the_compact_form_over_broker(packages, zeek, tmp_path):
    """--transport broker: Broker's binary form carries the block as a string; every connection answered."""
    import subprocess

    from cato.deploy.replay import free_port
    from cato.deploy.manifest import Manifest
    from cato.deploy.zeek_side import serving_text
    from cato.zeek import native_plugin_dir
    port = free_port()
    driver, replaying = tmp_path / "driver.zeek", tmp_path / "replay.zeek"
    replaying.write_text(serving_text("replay.zeek", Manifest.read(packages["compact"]).module))
    # replay.zeek holds the trace until a worker comes (here: a Broker peer) and ends when all is answered.
    driver.write_text(f"""
redef Cato::websocket_listen = F;
redef Cato::broker_listen = T;
redef Cato::broker_port = {port}/tcp;
event Broker::peer_added(endpoint: Broker::EndpointInfo, msg: string) {{ continue_processing(); }}
""")
    capture = Path(__file__).parent / "btest" / "Traces" / "small.pcap"
    env = {**os.environ, "ZEEK_PLUGIN_PATH": str(native_plugin_dir())}
    proc = subprocess.Popen([str(zeek), "-b", "-C", "-r", str(capture), "base/protocols/conn",
                             str(packages["compact"] / "scripts"), str(replaying), str(driver)],
                            cwd=tmp_path, env=env, stdout=open(tmp_path / "stdout", "w"), stderr=subprocess.STDOUT)
    try:
        worker = Worker(packages["compact"], f"tcp://127.0.0.1:{port}", reconnect=False)
        for _ in range(100):  # until Zeek listens
            if listening(port):
                break
            time.sleep(0.1)
        stats = asyncio.run(asyncio.wait_for(worker.run(), 60))
        assert proc.wait(timeout=60) == 0, (tmp_path / "stdout").read_text()
    finally:
        proc.kill()
    connections = read_zeek_log(tmp_path / "conn.log")
    verdicts = read_zeek_log(tmp_path / "cato_verdict.log")
    assert stats.verdicts_sent == len(verdicts) == len(connections) > 0 and stats.malformed_blocks == 0
    assert set(verdicts["uid"]) == set(connections["uid"])
