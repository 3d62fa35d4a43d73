"""The native engine (cato's Zeek plugin, plugin/): it loads, and its vectors are the script engine's.

Both engines run over every capture of both corpora, with every feature at several depths (and once
with a decision deadline), and must agree: exactly for counts and sizes, within a microsecond for
times. Two differences are the script engine's, and left out here (the oracle, test_oracle.py, checks
the native engine's values independently):

* tunnelled connections (GTP, 6in4, Teredo): the script engine reads the current packet's outer
  headers (get_current_packet_header()), the native engine the connection's own;
* ICMP counters (orig/resp pkts, IP bytes, load): the script engine reads them a packet late, since
  Zeek 8.0 cannot look every ICMP connection up by its ID (zeek-scripts/main.zeek, current());
* ICMP between two ends of one address (nDPI's doq.pcapng, ::1 to ::1): the script engine tells the
  ends apart by port, which ICMP packet headers lack, and puts every packet on one side.

With a deadline, one more: the script engine misses the packet that moved time past an ICMP
connection's deadline (the ICMP lookup again): the comparison leaves ICMP out.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cato.codegen import GeneratorError, generate
from cato.codegen.native import native_spec
from cato.corpus import load_corpus
from cato.features.catalog import CATALOG, resolve
from cato.zeek import run_zeek
from cato.zeek.corpus_run import run_over_captures

pytestmark = [pytest.mark.zeek]

KEY = ["capture", "ts", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "depth"]
ICMP_LAG = [f"{d}_{x}" for d in ("orig", "resp") for x in ("pkts", "ip_bytes", "load")]
# Marks, in the script engine's run, the vectors of tunnelled connections.
TUNNEL_MARK = """
redef record Cato::Info += { tunnelled: bool &log &default=F; };
hook Cato::fill_vector(c: connection, info: Cato::Info) { info$tunnelled = c?$tunnel; }
"""


def test_every_feature_has_a_native_computation():
    specs = {f.name: native_spec(f) for f in CATALOG if f.analyzer_field is None}
    assert len(specs) == len(CATALOG) - len(resolve("needs:analyzer"))
    assert specs["orig_pkts"] == "pkts orig" and specs["flow_iat_std"] == "stat iat std both"
    assert specs["resp_syn_cnt"] == "flag 2 resp" and specs["tcp_rtt"] == "span syn ack"


def test_native_script_configures_exactly_the_selection():
    script = generate(resolve("orig_pkts,flow_size_mean,history"), (10, 5), engine="native")
    assert script.engine == "native" and script.strategy == "native" and script.depths == (5, 10)
    assert "@load-plugin Cato::Native" in script.text
    assert '"pkts orig",  # orig_pkts' in script.text and '"record string history",  # history' in script.text
    assert 'const native_columns: string_vec = vector("orig_pkts", "history", "flow_size_mean");' in script.text
    assert "new_packet" not in script.text and "connection_state_remove" not in script.text.split("module Cato;")[-1]
    with pytest.raises(GeneratorError):
        generate(resolve("orig_pkts"), 10, "thresholds", engine="native")
    with pytest.raises(GeneratorError):
        generate(resolve("orig_pkts"), 10, engine="turbo")


def test_plugin_is_listed(zeek, native_plugin):
    out = subprocess.run([str(zeek), "-N", "Cato::Native"], capture_output=True, text=True,
                         env={"ZEEK_PLUGIN_PATH": str(native_plugin), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and "Cato::Native" in out.stdout, out.stdout + out.stderr


def test_plugin_refuses_a_bad_spec(zeek, native_plugin, tmp_path):
    script = tmp_path / "bad.zeek"
    script.write_text('@load-plugin Cato::Native\n'
                      'event zeek_init() { print Cato::native_configure("Cato", vector(5), vector("stat size mode orig"), '
                      'vector("depth"), 0secs); }\n')
    run = run_zeek(None, [script], workdir=tmp_path / "run", native=True, check=False)
    assert run.returncode != 0
    assert "cannot read feature spec 'stat size mode orig'" in run.stderr


def _vectors(corpus, engine: str, depths, deadline=None) -> pd.DataFrame:
    script = generate(resolve("all,-needs:analyzer"), depths, deadline=deadline, engine=engine)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features.zeek"
        path.write_text(script.text + (TUNNEL_MARK if engine == "script" else ""))
        run = run_over_captures(path, [(c, corpus.path_of(c)) for c in corpus.captures], jobs=2,
                                native=engine == "native")
    assert not run.vectors.empty
    return run.vectors.drop(columns=["uid"])


def _compare(corpus_dir: Path, depths, deadline=None, min_rows=1000) -> None:
    corpus = load_corpus(corpus_dir)
    script = _vectors(corpus, "script", depths, deadline)
    native = _vectors(corpus, "native", depths, deadline)
    # The same connections, and the same number of vectors of each.
    assert len(script) == len(native)
    unique = [df[~df.duplicated(KEY, keep=False)] for df in (script, native)]
    m = unique[0].merge(unique[1], on=KEY, how="inner", suffixes=("_s", "_n"), validate="one_to_one")
    assert len(m) == len(unique[0]) == len(unique[1])
    m = m[~m["tunnelled"].astype(str).isin(["T", "True"])]
    m = m[~((m["proto"] == "icmp") & (m["id.orig_h"] == m["id.resp_h"]))]
    if deadline:
        m = m[m["proto"] != "icmp"]
    m = m.reset_index(drop=True)
    assert len(m) >= min_rows
    icmp = (m["proto"] == "icmp").to_numpy()
    problems = []
    for col in [c for c in native.columns if c not in KEY]:
        x, y = m[col + "_s"], m[col + "_n"]
        if not (pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y)):
            same = (x.astype(str) == y.astype(str)).to_numpy()
        else:
            xf, yf = x.astype(float).to_numpy(), y.astype(float).to_numpy()
            same = np.isclose(xf, yf, rtol=0, atol=1e-6) | (np.isnan(xf) & np.isnan(yf))
        if col in ICMP_LAG:
            same |= icmp
        if not same.all():
            i = int(np.flatnonzero(~same)[0])
            problems.append(f"{col}: {int((~same).sum())} differ, e.g. {m.at[i, 'capture']} "
                            f"{m.at[i, 'id.orig_h']}:{m.at[i, 'id.orig_p']} depth {m.at[i, 'depth']}: "
                            f"script {x[i]}, native {y[i]}")
    assert not problems, "\n".join(problems)


@pytest.mark.corpora
def test_native_equals_script_iot_sentinel(native_plugin, iot_corpus):
    _compare(iot_corpus, (1, 2, 5, 10, 50), min_rows=50000)


@pytest.mark.corpora
def test_native_equals_script_ndpi(native_plugin, ndpi_corpus):
    _compare(ndpi_corpus, (1, 2, 5, 10, 50), min_rows=20000)


@pytest.mark.corpora
def test_native_equals_script_with_a_deadline(native_plugin, iot_corpus):
    _compare(iot_corpus, (5, 50), deadline=0.1, min_rows=20000)


TRACES = Path(__file__).parent / "btest" / "Traces"


def test_cli_native_engine(native_plugin, tmp_path, monkeypatch):
    """generate, extract and profile take --engine native; profile says so and measures the plugin."""
    import json
    import shutil

    from typer.testing import CliRunner

    from cato.cli import app

    monkeypatch.setenv("CATO_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "c"
    root.mkdir()
    for i in range(3):
        shutil.copy(TRACES / "small.pcap", root / f"s{i}.pcap")
        shutil.copy(TRACES / "long.pcap", root / f"l{i}.pcap")
    (root / "labels.csv").write_text("pcap,label\n" + "".join(f"s{i}.pcap,a\nl{i}.pcap,b\n" for i in range(3)))
    runner = CliRunner()
    out = runner.invoke(app, ["generate", "--features", "orig_pkts,tcp_rtt", "--depth", "5", "--engine", "native"])
    assert out.exit_code == 0 and "@load-plugin Cato::Native" in out.stdout, out.output
    out = runner.invoke(app, ["generate", "--features", "orig_pkts", "--engine", "turbo"])
    assert out.exit_code == 2 and "--engine" in out.output
    tables = {}
    for engine in ("script", "native"):
        out = runner.invoke(app, ["extract", str(root), "--features", "all,-needs:analyzer", "--depths", "1,5", "-j", "1",
                                  "--engine", engine, "-o", str(tmp_path / f"{engine}.parquet")])
        assert out.exit_code == 0, out.output
        tables[engine] = pd.read_parquet(tmp_path / f"{engine}.parquet").drop(columns=["uid"])
    key = ["capture", "ts", "orig_p", "depth"]
    pd.testing.assert_frame_equal(tables["script"].sort_values(key).reset_index(drop=True),
                                  tables["native"].sort_values(key).reset_index(drop=True))
    out = runner.invoke(app, ["profile", str(root), "--features", "all,-needs:analyzer", "--depth", "50", "--repeat", "1", "--json",
                              "--engine", "native"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert result["engine"] == "native" and result["strategy"] == "native" and result["connections"] == 3 * 6


def test_study_settings_keep_the_engine():
    from cato.study.study import StudySettings

    settings = StudySettings("corpus", engine="native")
    assert StudySettings.from_dict(settings.to_dict()).engine == "native"
    # Studies made before engines existed measured with the script engine.
    old = {k: v for k, v in settings.to_dict().items() if k != "engine"}
    assert StudySettings.from_dict(old).engine == "script"
