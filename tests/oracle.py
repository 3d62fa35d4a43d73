"""A test oracle independent of Zeek: recompute features from raw packets with dpkt.

It reads captures with dpkt (not cato's reader), decodes IP/TCP/UDP headers itself and computes
the per-direction statistics of the first N packets of a connection. Connections are identified
by their 5-tuple; the caller supplies Zeek's orientation (which endpoint is the originator) so that
directions agree, and compares only connections whose 5-tuple is unique in the capture.
"""

from __future__ import annotations

import math
import socket
import statistics
from dataclasses import dataclass, field

import dpkt

LINKTYPES = {1: "eth", 113: "sll", 101: "raw", 228: "raw", 0: "null"}


@dataclass
class Pkt:
    t: float  # Zeek's network time: the running maximum of packet timestamps
    raw_t: float
    src: tuple
    size: int
    ttl: int
    payload: int
    win: int | None = None
    flags: int | None = None


@dataclass
class Flow:
    proto: str
    endpoints: frozenset
    packets: list[Pkt] = field(default_factory=list)
    fragmented: bool = False


def _ip_of(frame, linktype: int):
    kind = LINKTYPES.get(linktype)
    if kind == "eth":
        eth = dpkt.ethernet.Ethernet(frame)
        return eth.data if isinstance(eth.data, (dpkt.ip.IP, dpkt.ip6.IP6)) else None
    if kind == "sll":
        sll = dpkt.sll.SLL(frame)
        return sll.data if isinstance(sll.data, (dpkt.ip.IP, dpkt.ip6.IP6)) else None
    if kind == "raw":
        v = frame[0] >> 4 if frame else 0
        return dpkt.ip.IP(frame) if v == 4 else dpkt.ip6.IP6(frame) if v == 6 else None
    if kind == "null":
        lo = dpkt.loopback.Loopback(frame)
        return lo.data if isinstance(lo.data, (dpkt.ip.IP, dpkt.ip6.IP6)) else None
    return None


def _reader(path: str):
    f = open(path, "rb")
    head = f.read(4)
    f.seek(0)
    return f, (dpkt.pcapng.Reader(f) if head == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(f))


def read_flows(path: str) -> dict[tuple, list[Flow]]:
    """All TCP/UDP packets of a capture grouped by direction-free 5-tuple (one Flow per tuple)."""
    f, reader = _reader(path)
    linktype = reader.datalink()
    flows: dict[tuple, list[Flow]] = {}
    clock = -math.inf
    with f:
        for ts, frame in reader:
            ts = float(ts)
            clock = max(clock, ts)
            try:
                ip = _ip_of(frame, linktype)
            except (dpkt.UnpackError, IndexError, ValueError):
                continue
            if ip is None:
                continue
            if isinstance(ip, dpkt.ip.IP):
                src, dst = socket.inet_ntop(socket.AF_INET, ip.src), socket.inet_ntop(socket.AF_INET, ip.dst)
                size, ttl, hl, proto = ip.len, ip.ttl, ip.hl * 4, ip.p
                frag = bool(ip.mf or ip.offset)
            else:
                src, dst = socket.inet_ntop(socket.AF_INET6, ip.src), socket.inet_ntop(socket.AF_INET6, ip.dst)
                size, ttl, hl, proto = ip.plen + 40, ip.hlim, 40, ip.nxt
                frag = False
            l4 = ip.data
            if isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)) and hl + len(l4) < size:
                continue  # captured shorter than its IP length: Zeek drops it (truncated_IP)
            if proto == 6 and isinstance(l4, dpkt.tcp.TCP):
                payload = size - hl - l4.off * 4
                key = ("tcp", frozenset({(src, l4.sport), (dst, l4.dport)}))
                pkt = Pkt(clock, ts, (src, l4.sport), size, ttl, payload, l4.win, l4.flags)
            elif proto == 17 and isinstance(l4, dpkt.udp.UDP):
                key = ("udp", frozenset({(src, l4.sport), (dst, l4.dport)}))
                pkt = Pkt(clock, ts, (src, l4.sport), size, ttl, max(l4.ulen - 8, 0))
            else:
                continue
            flow = flows.setdefault(key, [Flow(key[0], key[1])])[0]
            flow.packets.append(pkt)
            flow.fragmented |= frag
    return flows


def _stats(values: list[float], prefix: str, out: dict, level_only: bool = False) -> None:
    names = ("mean", "min", "max", "median", "std") if level_only else ("sum", "mean", "min", "max", "median", "std")
    for name in names:
        key = f"{prefix}_{name}"
        if not values:
            out[key] = None
            continue
        out[key] = {
            "sum": lambda v: sum(v), "mean": statistics.fmean, "min": min, "max": max,
            "median": statistics.median, "std": statistics.pstdev,
        }[name](values)


FLAGS = {"fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08, "ack": 0x10, "urg": 0x20, "ece": 0x40, "cwr": 0x80}


def features(flow: Flow, orig: tuple, depth: int) -> dict:
    """Features of the first ``depth`` packets, ``orig`` = Zeek's originator (ip, port)."""
    pkts = flow.packets[:depth]
    out: dict = {"pkts_seen": len(pkts)}
    by_dir = {"orig": [p for p in pkts if p.src == orig], "resp": [p for p in pkts if p.src != orig]}
    by_dir["flow"] = pkts
    for d, ps in by_dir.items():
        _stats([p.size for p in ps], f"{d}_size", out)
        iats = [b.t - a.t for a, b in zip(ps, ps[1:])]
        _stats(iats, f"{d}_iat", out)
        if d == "flow":
            continue
        out[f"{d}_pkts"] = len(ps)
        out[f"{d}_ip_bytes"] = sum(p.size for p in ps)
        _stats([p.ttl for p in ps], f"{d}_ttl", out, level_only=True)
        tcp = [p for p in ps if p.win is not None]
        _stats([p.win for p in tcp], f"{d}_win", out, level_only=True)
        out[f"{d}_init_win"] = tcp[0].win if tcp else None
        out[f"{d}_data_pkts"] = sum(1 for p in ps if p.payload > 0)
        out[f"{d}_payload_max"] = max((p.payload for p in ps), default=None)
        out[f"{d}_payload_mean"] = statistics.fmean([p.payload for p in ps]) if ps else None
        for flag, bit in FLAGS.items():
            out[f"{d}_{flag}_cnt"] = sum(1 for p in tcp if p.flags & bit)
    marks: dict[str, float] = {}
    for p in pkts:
        if p.flags is None:
            continue
        syn, ack = bool(p.flags & 0x02), bool(p.flags & 0x10)
        if syn and not ack:
            marks.setdefault("syn", p.t)
        if syn and ack:
            marks.setdefault("synack", p.t)
        if ack and not syn and "synack" in marks:
            marks.setdefault("ack", p.t)
        if p.payload > 0 and "ack" in marks:
            marks.setdefault("data", p.t)
    for name, (a, b) in {"tcp_syn_synack": ("syn", "synack"), "tcp_synack_ack": ("synack", "ack"),
                         "tcp_rtt": ("syn", "ack"), "tcp_ack_data": ("ack", "data")}.items():
        out[name] = marks[b] - marks[a] if a in marks and b in marks else None
    out["duration"] = pkts[-1].raw_t - pkts[0].raw_t if pkts else None
    return out
