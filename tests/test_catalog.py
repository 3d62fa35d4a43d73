import json
import re

import pytest
from typer.testing import CliRunner

from cato.cli import app
from cato.features import CATALOG, FEATURES_BY_NAME, UnknownFeatureError, resolve
from cato.features.catalog import ConnExpr, FlagCount, Handshake, PacketStat


def test_catalog_is_large_and_names_are_log_columns():
    assert len(CATALOG) >= 60
    for f in CATALOG:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", f.name), f.name
        assert f.dtype in ("count", "double", "string")
        assert f.direction in ("orig", "resp", "both", "none")
        assert f.needs and set(f.needs) <= {"conn_record", "packet_header", "analyzer"}
        assert f.description


def test_catalog_covers_what_cato_uses():
    names = set(FEATURES_BY_NAME)
    for d in ("orig", "resp"):
        for q in ("size", "iat"):
            for s in ("sum", "mean", "min", "max", "median", "std"):
                assert f"{d}_{q}_{s}" in names
        for flag in ("cwr", "ece", "urg", "ack", "psh", "rst", "syn", "fin"):
            assert f"{d}_{flag}_cnt" in names
        for s in ("mean", "min", "max", "median", "std"):
            assert f"{d}_ttl_{s}" in names and f"{d}_win_{s}" in names
        assert {f"{d}_pkts", f"{d}_ip_bytes", f"{d}_bytes", f"{d}_load"} <= names
    assert {"duration", "ip_proto", "orig_port", "resp_port", "tcp_rtt", "tcp_syn_synack", "tcp_ack_data",
            "history"} <= names


def test_needs_follow_from_computation():
    for f in CATALOG:
        if isinstance(f.computation, ConnExpr):
            assert f.needs == ("conn_record",), f.name
        elif f.analyzer_field is not None:
            assert f.needs == ("analyzer",) and not f.per_packet, f.name
            assert f.analyzer_field.scripts.startswith("base/") and f.analyzer_field.known, f.name
        else:
            assert isinstance(f.computation, (PacketStat, FlagCount, Handshake))
            assert f.per_packet, f.name


def test_resolve_selections():
    assert len(resolve("all")) == len(CATALOG)
    sel = resolve("resp_pkts,orig_pkts")
    assert [f.name for f in sel] == ["orig_pkts", "resp_pkts"]  # catalog order
    assert {f.group for f in resolve("group:flags")} == {"flags"}
    with pytest.raises(UnknownFeatureError, match="nope"):
        resolve("orig_pkts,nope")
    with pytest.raises(UnknownFeatureError):
        resolve("")


def test_features_cli_json():
    out = CliRunner().invoke(app, ["features", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["count"] == len(CATALOG) >= 60
    first = data["features"][0]
    assert {"name", "group", "needs", "dtype", "direction", "computation", "not_applicable"} <= set(first)
    assert [f["name"] for f in data["features"]] == [f.name for f in CATALOG]


def test_features_cli_table():
    out = CliRunner().invoke(app, ["features", "--group", "handshake"])
    assert out.exit_code == 0
    assert "tcp_rtt" in out.stdout and "orig_pkts" not in out.stdout
