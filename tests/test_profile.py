"""cato profile on real Zeek: figures present, ordered the way they must be, cached."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cato.cli import app

pytestmark = pytest.mark.zeek
TRACES = Path(__file__).parent / "btest" / "Traces"
KEYS = {"connections", "packets", "cpu_s", "baseline_cpu_s", "cpu_ratio", "script_cpu_us_per_conn",
        "marginal_cpu_us_per_conn", "peak_rss_mb", "time_to_decision_ms"}


def test_profile_cheap_and_expensive(zeek, tmp_path, monkeypatch):
    monkeypatch.setenv("CATO_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "c"
    root.mkdir()
    for i in range(20):  # enough packets for CPU differences to show
        shutil.copy(TRACES / "long.pcap", root / f"l{i}.pcap")
        shutil.copy(TRACES / "small.pcap", root / f"s{i}.pcap")
    (root / "labels.csv").write_text("pcap,label\n" + "".join(f"l{i}.pcap,a\ns{i}.pcap,b\n" for i in range(20)))
    runner = CliRunner()

    def profile(*args):
        out = runner.invoke(app, ["profile", str(root), "--repeat", "1", "--json", *args])
        assert out.exit_code == 0, out.output
        return json.loads(out.stdout)

    cheap = profile("--features", "orig_pkts", "--depth", "1")
    full = profile("--features", "all", "--depth", "50")
    assert KEYS <= set(cheap) and {"p50", "p95"} <= set(cheap["time_to_decision_ms"])
    assert cheap["connections"] == full["connections"] == 20 * 6
    assert cheap["packets"] == 20 * (82 + 21)
    assert cheap["script_cpu_us_per_conn"] < full["script_cpu_us_per_conn"]
    assert cheap["time_to_decision_ms"]["p95"] <= full["time_to_decision_ms"]["p95"]
    assert full["time_to_decision_ms"]["p95"] > 0
    assert full["baseline_cpu_s"] == cheap["baseline_cpu_s"]  # one cached baseline
    again = profile("--features", "all", "--depth", "50")
    assert again["cached"] and again["cpu_s"] == full["cpu_s"]
