import io
from pathlib import Path

import dpkt
import pytest

from cato.corpus import CaptureError, merge_captures, read_capture
from cato.corpus.merge import GAP_NS
from cato.corpus.pcapio import write_packet, write_pcap_header

TRACES = Path(__file__).parent / "btest" / "Traces"


def test_reads_pcap_like_dpkt():
    cap = read_capture(TRACES / "small.pcap")
    with open(TRACES / "small.pcap", "rb") as f:
        ref = list(dpkt.pcap.Reader(f))
    assert len(cap.packets) == len(ref)
    for p, (ts, buf) in zip(cap.packets, ref):
        assert p.data == buf and p.linktype == 1
        assert abs(p.ts_ns / 1e9 - float(ts)) < 1e-6
    assert cap.truncated is None


def test_reads_pcapng_with_nanosecond_resolution(tmp_path):
    path = tmp_path / "ns.pcapng"
    with open(path, "wb") as f:
        w = dpkt.pcapng.Writer(f, linktype=101, snaplen=65535)
        w.writepkt(b"\x45" + b"\x00" * 19, ts=1.5)
        w.writepkt(b"\x45" + b"\x00" * 29, ts=2.25)
    cap = read_capture(path)
    assert [p.linktype for p in cap.packets] == [101, 101]
    assert [p.ts_ns for p in cap.packets] == [1_500_000_000, 2_250_000_000]
    assert [len(p.data) for p in cap.packets] == [20, 30]


def test_truncated_capture_keeps_packets_before_the_cut(tmp_path):
    raw = (TRACES / "small.pcap").read_bytes()
    path = tmp_path / "cut.pcap"
    path.write_bytes(raw[:-10])
    cap = read_capture(path)
    full = read_capture(TRACES / "small.pcap")
    assert len(cap.packets) == len(full.packets) - 1
    assert "ends inside" in cap.truncated


@pytest.mark.parametrize("content,reason", [
    (b"", "only 0 bytes"),
    (b"hello world, not a capture", "not a pcap or pcapng"),
    (b"\xd4\xc3\xb2\xa1\x02\x00", "truncated pcap file header"),
])
def test_garbage_is_a_clear_error(tmp_path, content, reason):
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    with pytest.raises(CaptureError, match=reason) as e:
        read_capture(path)
    assert str(path) in str(e.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CaptureError, match="cannot read"):
        read_capture(tmp_path / "nope.pcap")


def test_merge_shifts_captures_into_disjoint_windows(tmp_path):
    a = read_capture(TRACES / "small.pcap")
    b = read_capture(TRACES / "small.pcap")
    a.path, b.path = "a.pcap", "b.pcap"
    (stream,) = merge_captures([a, b], tmp_path, "m")
    merged = read_capture(stream.path)
    assert len(merged.packets) == 2 * len(a.packets)
    sa, sb = stream.segments
    assert (sb.start_us - sa.end_us - 1) * 1000 == GAP_NS
    # Shifting keeps every time difference.
    orig = [p.ts_ns for p in a.packets]
    second = [p.ts_ns for p in merged.packets[len(a.packets):]]
    assert [y - x for x, y in zip(orig, orig[1:])] == [y - x for x, y in zip(second, second[1:])]
    assert stream.segment_at(sb.start_us / 1e6).capture == "b.pcap"
    assert stream.segment_at(sa.end_us / 1e6).capture == "a.pcap"
    assert stream.segment_at((sa.end_us * 1000 + GAP_NS // 2) / 1e9) is None


def test_writer_round_trip():
    buf = io.BytesIO()
    write_pcap_header(buf, 1)
    write_packet(buf, 1_234_567_890_123_456_000, b"abc", 60)
    rec = list(dpkt.pcap.Reader(io.BytesIO(buf.getvalue())))
    assert rec[0][1] == b"abc" and abs(float(rec[0][0]) - 1234567890.123456) < 1e-6
