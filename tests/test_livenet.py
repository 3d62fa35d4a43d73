"""The live-traffic harness (tests/livenet.py): a network namespace of its own (`ip netns`), a veth pair
inside it, tcpreplay and a live Zeek; traffic goes only to the namespace's own rewritten addresses.

A real IoT Sentinel capture, its addresses rewritten, is replayed to a Zeek capturing with AF_PACKET;
its conn.log must hold the connections ``zeek -r`` finds in the same rewritten capture, and nothing
outside the benchmarking range. Outside CI the tests skip where no namespace can be made (not root);
with CI=true that is a failure, as is a missing corpus.
"""

from __future__ import annotations

import ipaddress
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import IN_CI, corpus_path
from livenet import (BENCH_NET_V4, BENCH_NET_V6, LiveNet, LiveNetError, LiveNetUnavailable, rewrite,
                     rewritten_info, wait_idle)

pytestmark = [pytest.mark.zeek, pytest.mark.corpora]

#: 180 TCP/UDP connections (90 TCP), every 5-tuple once: a live replay, which compresses the capture's
#: minutes into a fraction of a second, cannot merge two of them into one connection.
CAPTURE = "pcaps/HueBridge/Setup-C-13-STA.pcap"


@pytest.fixture
def net():
    try:
        live = LiveNet()
        live.__enter__()
    except LiveNetUnavailable as e:
        if IN_CI:
            pytest.fail(f"CI=true but no live network can be made here: {e}")
        pytest.skip(f"no live network here: {e}")
    try:
        yield live
    finally:
        live.close()
    assert not live.exists(), f"namespace {live.name} still exists after close()"


def _connections(conn_log: Path) -> list[tuple[str, ...]]:
    """(proto, orig_h, orig_p, resp_h, resp_p) of each TCP/UDP row of a conn.log."""
    fields: list[str] = []
    rows = []
    for line in conn_log.read_text().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            row = dict(zip(fields, line.split("\t")))
            if row["proto"] in ("tcp", "udp"):
                rows.append((row["proto"], row["id.orig_h"], row["id.orig_p"], row["id.resp_h"], row["id.resp_p"]))
    return rows


def _all_addresses(conn_log: Path) -> set[str]:
    fields: list[str] = []
    addrs = set()
    for line in conn_log.read_text().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line and not line.startswith("#"):
            row = dict(zip(fields, line.split("\t")))
            addrs.update((row["id.orig_h"], row["id.resp_h"]))
    return addrs


def test_live_zeek_sees_every_connection_of_a_rewritten_capture(net, zeek, iot_corpus, tmp_path):
    rewritten = rewrite(iot_corpus / CAPTURE, tmp_path / "rewritten.pcap")
    info = rewritten_info(rewritten)
    assert all(ipaddress.ip_address(new) in (BENCH_NET_V4 if "." in new else BENCH_NET_V6)
               for new in info["mapping"].values())
    assert len(set(info["mapping"].values())) == len(info["mapping"])  # one to one

    offline = tmp_path / "offline"
    offline.mkdir()
    subprocess.run([str(zeek), "-r", str(rewritten), "-b", "base/protocols/conn"], cwd=offline, check=True,
                   capture_output=True, timeout=60)
    expected = _connections(offline / "conn.log")
    assert len(expected) == len(set(expected)) >= 100  # the capture's premise (see CAPTURE)

    live = tmp_path / "live"
    live.mkdir()
    with open(live / "zeek.stderr", "w") as err:
        proc = net.popen([zeek, "-i", f"af_packet::{net.capture_iface}", "-b", "base/protocols/conn",
                          "policy/misc/stats"], cwd=live, stdout=err, stderr=err)
    net.wait_capturing(proc)
    sent = net.replay(rewritten, mbps=20, timeout=60)
    assert sent["packets"] == info["packets"] and sent["failed"] == 0
    wait_idle(proc)  # what is still in the ring when Zeek gets SIGTERM is lost
    proc.send_signal(signal.SIGTERM)  # Zeek logs the connections still open as it terminates
    assert proc.wait(timeout=30) == 0, (live / "zeek.stderr").read_text()

    drops = net.drops(live, sent["packets"])
    assert drops.total == 0, drops
    seen = _connections(live / "conn.log")
    assert sorted(seen) == sorted(expected)
    outside = {a for a in _all_addresses(live / "conn.log")
               if ipaddress.ip_address(a) not in (BENCH_NET_V4 if "." in a else BENCH_NET_V6)}
    assert not outside


def test_only_rewritten_captures_are_replayed(net, iot_corpus):
    with pytest.raises(LiveNetError, match="not made by livenet.rewrite"):
        net.replay(iot_corpus / CAPTURE, mbps=1)


def test_close_kills_what_it_started_and_deletes_the_namespace(net):
    proc = net.popen(["sleep", "600"])
    assert net.exists()
    net.close()
    assert proc.poll() is not None and not net.exists()


def test_rewrite_refuses_other_link_types_by_name(tmp_path):
    capture = corpus_path("ndpi") / "pcaps" / "rtcp_multiple_pkts_in_the_same_datagram.pcap"  # Linux SLL
    with pytest.raises(LiveNetError, match=r"link type\(s\) \[113\]"):
        rewrite(capture, tmp_path / "x.pcap")
    assert not list(tmp_path.iterdir())


def test_rewrite_keeps_order_and_cuts_pauses_of_decades(iot_corpus, tmp_path):
    """A capture that jumps decades (nDPI's mix 1970 and 2015) merges into a pcap whose clock stays in
    order, representable, and without pauses over MAX_GAP_NS (tcpreplay paces by rate, not by them)."""
    from cato.corpus.pcapio import read_capture, write_packet, write_pcap_header
    from livenet import MAX_GAP_NS
    packets = read_capture(iot_corpus / CAPTURE).packets
    jumpy = tmp_path / "jumpy.pcap"
    with open(jumpy, "wb") as f:
        write_pcap_header(f, 1)
        for i, p in enumerate(packets):  # the second half 45 years later
            write_packet(f, p.ts_ns + (45 * 365 * 86400 * 10**9 if i >= len(packets) // 2 else 0), p.data, p.orig_len)
    merged = rewrite([jumpy, iot_corpus / CAPTURE], tmp_path / "merged.pcap")
    ts = [p.ts_ns for p in read_capture(merged).packets]
    assert len(ts) == 2 * len(packets)
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    assert min(gaps) >= 0 and max(gaps) <= MAX_GAP_NS


def test_unreplayable_names_why_a_capture_cannot_go_onto_the_veth(iot_corpus):
    from livenet import unreplayable
    ndpi = corpus_path("ndpi") / "pcaps"
    assert unreplayable(ndpi / "443-chrome.pcap") is None
    assert unreplayable(ndpi / "rtcp_multiple_pkts_in_the_same_datagram.pcap") == "link type 113"
    assert unreplayable(iot_corpus / CAPTURE) == "VLAN or IPv6 frames"  # conservative: it has IPv6
