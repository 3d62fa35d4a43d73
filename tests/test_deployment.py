"""Training on what the deployment runs (#30): a dataset extracted under ``--deployment default`` holds the
connections a Zeek running its default scripts and local.zeek sees, which bare Zeek does not (its DNS
sessions split long mDNS flows, its analyzers flip roles); under ``bare``, those of ``zeek -b``."""

from __future__ import annotations

import pandas as pd
import pytest

from cato.corpus import link_subset, load_corpus
from cato.dataset.extract import extract
from cato.dataset.multidepth import dataset_key
from cato.features import resolve
from cato.study import StudySettings
from cato.zeek import deployment_invocation, read_zeek_log, run_zeek
from conftest import corpus_path

pytestmark = [pytest.mark.zeek, pytest.mark.corpora]

#: Captures where the two deployments see different connections (default: 8 and 17, bare: 6 and 16).
CAPTURES = ("pcaps/EdimaxCam2/Setup-A-1-STA.pcap", "pcaps/EdimaxPlug1101W/Setup-A-1-STA.pcap")
KEY = ["proto", "orig_h", "orig_p", "resp_h", "resp_p"]


def _seen_by(deployment: str, capture, workdir) -> pd.DataFrame:
    """The connections Zeek itself logs for ``capture`` under ``deployment`` (conn.log)."""
    bare, before = deployment_invocation(deployment)
    run = run_zeek(capture, [*before, *(["base/protocols/conn"] if bare else [])], workdir=workdir, bare=bare)
    conns = read_zeek_log(run.log("conn"))
    conns = conns.rename(columns={"id.orig_h": "orig_h", "id.orig_p": "orig_p", "id.resp_h": "resp_h",
                                  "id.resp_p": "resp_p"})
    return conns[conns["proto"].isin(["tcp", "udp"])]


def _connections(table: pd.DataFrame) -> list[tuple]:
    rows = table[table["proto"].isin(["tcp", "udp"])]
    return sorted((r.proto, str(r.orig_h), int(r.orig_p), str(r.resp_h), int(r.resp_p), round(float(r.ts), 6))
                  for r in rows.itertuples())


def test_a_dataset_holds_the_connections_its_deployment_sees(zeek, tmp_path):
    root = corpus_path("iot-sentinel")
    labels = pd.read_csv(root / "labels.csv")
    corpus = load_corpus(link_subset(root, list(CAPTURES), tmp_path / "corpus"))
    assert set(labels["pcap"]) >= set(CAPTURES)
    features = resolve("orig_pkts,resp_pkts,orig_bytes")
    tables = {d: extract(corpus, features, 10, deployment=d, zeek=zeek).table for d in ("bare", "default")}
    for capture in corpus.captures:
        for deployment, table in tables.items():
            seen = _seen_by(deployment, corpus.path_of(capture), tmp_path / f"{deployment}-{len(capture)}")
            extracted = table[table["capture"] == capture]
            assert _connections(extracted) == _connections(seen), (deployment, capture)
        bare, default = (tables[d][tables[d]["capture"] == capture] for d in ("bare", "default"))
        assert len(default) > len(bare), "the default scripts split connections bare Zeek keeps whole"


def test_the_deployment_keys_the_dataset_and_is_a_study_setting(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.pcap").write_bytes((corpus_path("iot-sentinel") / CAPTURES[0]).read_bytes())
    (corpus / "labels.csv").write_text("pcap,label\na.pcap,x\n")
    loaded = load_corpus(corpus)
    assert dataset_key(loaded, 5, "default") != dataset_key(loaded, 5, "bare") == dataset_key(loaded, 5)
    settings = StudySettings(str(corpus), max_depth=5, deployment="default")
    assert StudySettings.from_dict(settings.to_dict()).deployment == "default"
    old = settings.to_dict()
    del old["deployment"]  # a study made before deployments extracted bare
    assert StudySettings.from_dict(old).deployment == "bare"
    with pytest.raises(ValueError, match="deployment"):
        deployment_invocation("everything")
    # A site's own local.zeek: after Zeek's default scripts, as the site runs it.
    site = tmp_path / "local.zeek"
    site.write_text("@load base/protocols/conn\n")
    assert deployment_invocation(str(site)) == (False, [str(site.resolve())])
    with pytest.raises(ValueError, match="exists"):
        deployment_invocation(str(tmp_path / "missing.zeek"))
