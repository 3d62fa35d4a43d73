"""The feature catalog: every per-connection feature cato can compute, declared once.

A feature is data: its name (a stable snake_case log column), what it means, its value type, the
direction it looks at, what it needs from Zeek, how Zeek computes it and its value when it does not
apply. The generator, the docs, the dataset schema and the tests all read these declarations.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Literal, Union

ValueType = Literal["count", "double", "string"]

#: What a model sees for a feature that does not apply to a connection (TCP windows of a UDP flow, the
#: inter-arrival times of a one-packet direction). Training and deployed inference both use it.
MISSING_VALUE = -1.0
Direction = Literal["orig", "resp", "both", "none"]

#: What a feature needs from Zeek. ``conn_record``: counters Zeek keeps on every connection
#: (no per-packet script work). ``packet_header``: one script call per packet of the first N,
#: reading its IP/TCP/UDP header.
Need = Literal["conn_record", "packet_header"]

DIRECTIONS: tuple[str, ...] = ("orig", "resp", "both")


@dataclass(frozen=True)
class ConnExpr:
    """Read from the connection record when the vector is emitted.

    ``expr`` is a Zeek expression over ``c: connection``; ``applies`` an optional Zeek condition
    that must hold for the value to be defined. ``native`` is the same value as the native engine
    computes it (``cato generate --engine native``): a counter the plugin keeps itself (``pkts
    orig``, ``ip_bytes resp``, ``load orig``, ``duration``, ``proto``, ``port orig``) or a field of
    Zeek's connection record read when the vector is made (``record orig$size``; ``record string
    history`` for a string).
    """

    expr: str
    applies: str = ""
    native: str = ""
    kind: Literal["conn_expr"] = "conn_expr"

    def describe(self) -> str:
        cond = f" (when {self.applies})" if self.applies else ""
        return f"{self.expr}{cond}"


#: Per-packet quantities a statistic can summarise (see ``codegen`` for their Zeek form).
Quantity = Literal["size", "iat", "ttl", "win", "payload"]
Stat = Literal["sum", "mean", "min", "max", "median", "std", "count", "first"]

QUANTITY_DOCS: dict[str, str] = {
    "size": "IP packet length in bytes (IPv4 total length; IPv6 payload length + 40)",
    "iat": "seconds between consecutive packets",
    "ttl": "IPv4 TTL or IPv6 hop limit",
    "win": "TCP receive window as sent (unscaled); TCP packets only",
    "payload": "transport payload bytes (TCP data length, UDP length - 8)",
}


@dataclass(frozen=True)
class PacketStat:
    """A statistic of a per-packet quantity over the first N packets of one direction."""

    quantity: Quantity
    stat: Stat
    kind: Literal["packet_stat"] = "packet_stat"

    def describe(self) -> str:
        if self.stat == "count":
            return f"number of packets with {self.quantity} > 0"
        if self.stat == "first":
            return f"{self.quantity} of the first packet"
        return f"{self.stat} of {QUANTITY_DOCS[self.quantity]}"


#: TCP flag name -> bit in the header's flags byte.
TCP_FLAG_BITS: dict[str, int] = {
    "fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08,
    "ack": 0x10, "urg": 0x20, "ece": 0x40, "cwr": 0x80,
}
#: Each flag's named constant in Zeek: init-bare.zeek's TH_* for six, cato's static scripts for ECE and CWR.
TCP_FLAG_NAMES: dict[str, str] = {
    "fin": "TH_FIN", "syn": "TH_SYN", "rst": "TH_RST", "psh": "TH_PUSH",
    "ack": "TH_ACK", "urg": "TH_URG", "ece": "Cato::TH_ECE", "cwr": "Cato::TH_CWR",
}


@dataclass(frozen=True)
class FlagCount:
    """Number of TCP packets with a flag set, over the first N packets of one direction."""

    flag: str
    kind: Literal["flag_count"] = "flag_count"

    def describe(self) -> str:
        return f"count of TCP packets with {self.flag.upper()} (bit 0x{TCP_FLAG_BITS[self.flag]:02x})"


#: Handshake intervals: (start mark, end mark). Marks are the first orig SYN without ACK, the first
#: resp SYN+ACK, the first orig ACK after it without SYN, and the first packet carrying payload.
HANDSHAKE_SPANS: dict[str, tuple[str, str]] = {
    "tcp_syn_synack": ("syn", "synack"),
    "tcp_synack_ack": ("synack", "ack"),
    "tcp_rtt": ("syn", "ack"),
    "tcp_ack_data": ("ack", "data"),
}


@dataclass(frozen=True)
class Handshake:
    """Seconds between two TCP handshake marks seen within the first N packets."""

    start: str
    end: str
    kind: Literal["handshake"] = "handshake"

    def describe(self) -> str:
        return f"seconds from the first {self.start} to the first {self.end}"


Computation = Union[ConnExpr, PacketStat, FlagCount, Handshake]


@dataclass(frozen=True)
class Feature:
    name: str
    group: str
    description: str
    dtype: ValueType
    direction: Direction
    needs: tuple[Need, ...]
    computation: Computation
    #: Value when the feature does not apply (``None`` = missing, NaN in tables).
    not_applicable: float | int | str | None = None
    #: Transport protocols the feature is defined for.
    protocols: tuple[str, ...] = ("tcp", "udp", "icmp")
    unit: str = ""

    @property
    def per_packet(self) -> bool:
        return "packet_header" in self.needs

    def to_dict(self) -> dict:
        d = asdict(self)
        d["computation"] = {**asdict(self.computation), "zeek": self.computation.describe()}
        d["needs"] = list(self.needs)
        d["protocols"] = list(self.protocols)
        return d


def _dir_doc(direction: str) -> str:
    return {"orig": "originator→responder", "resp": "responder→originator", "both": "both directions"}[direction]


def _build() -> tuple[Feature, ...]:
    feats: list[Feature] = []
    conn = ("conn_record",)
    pkt = ("packet_header",)

    def add_conn(name, desc, dtype, direction, expr, native, applies="", unit="",
                 protocols=("tcp", "udp", "icmp")):
        feats.append(Feature(name, "flow", desc, dtype, direction, conn, ConnExpr(expr, applies, native),
                             protocols=protocols, unit=unit))

    add_conn("duration", "Seconds from the first to the last packet seen", "double", "none",
             "interval_to_double(c$duration)", "duration", unit="s")
    add_conn("ip_proto", "IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6)", "count", "none",
             "c$id$proto", "proto")
    add_conn("orig_port", "Originator port (ICMP: type)", "count", "orig", "port_to_count(c$id$orig_p)",
             "port orig")
    add_conn("resp_port", "Responder port (ICMP: code)", "count", "resp", "port_to_count(c$id$resp_p)",
             "port resp")
    for d in ("orig", "resp"):
        add_conn(f"{d}_pkts", f"Packets sent {_dir_doc(d)}", "count", d, f"c${d}$num_pkts", f"pkts {d}")
        add_conn(f"{d}_ip_bytes", f"IP bytes sent {_dir_doc(d)}", "count", d, f"c${d}$num_bytes_ip",
                 f"ip_bytes {d}", unit="B")
        add_conn(f"{d}_bytes", f"Payload bytes sent {_dir_doc(d)} (TCP: from sequence numbers)",
                 "count", d, f"c${d}$size", f"record {d}$size", unit="B")
        add_conn(f"{d}_load", f"Bits per second sent {_dir_doc(d)} (IP bytes × 8 / duration)", "double",
                 d, f"c${d}$num_bytes_ip * 8.0 / interval_to_double(c$duration)", f"load {d}",
                 applies="c$duration > 0secs", unit="bit/s")
    add_conn("history", "Zeek connection history string (state transitions)", "string", "none",
             "c$history", "record string history")

    # Per-packet statistics.
    stats_full = ("sum", "mean", "min", "max", "median", "std")
    stats_level = ("mean", "min", "max", "median", "std")
    units = {"size": "B", "iat": "s", "ttl": "", "win": "B", "payload": "B"}
    for quantity, stats, dirs, group in (
        ("size", stats_full, DIRECTIONS, "size"),
        ("iat", stats_full, DIRECTIONS, "iat"),
        ("ttl", stats_level, ("orig", "resp"), "ttl"),
        ("win", stats_level, ("orig", "resp"), "window"),
    ):
        for d in dirs:
            prefix = "flow" if d == "both" else d
            for stat in stats:
                integral = quantity in ("size", "ttl", "win") and stat in ("sum", "min", "max")
                dtype = "count" if integral else "double"
                protocols = ("tcp",) if quantity == "win" else ("tcp", "udp", "icmp")
                feats.append(Feature(
                    f"{prefix}_{quantity}_{stat}", group,
                    f"{stat.capitalize()} of {QUANTITY_DOCS[quantity]}, {_dir_doc(d)}",
                    dtype, d, pkt, PacketStat(quantity, stat), protocols=protocols, unit=units[quantity]))
    for d in ("orig", "resp"):
        feats.append(Feature(f"{d}_init_win", "window", f"TCP window of the first packet {_dir_doc(d)}",
                             "count", d, pkt, PacketStat("win", "first"), protocols=("tcp",), unit="B"))
        feats.append(Feature(f"{d}_data_pkts", "payload", f"Packets with payload {_dir_doc(d)}",
                             "count", d, pkt, PacketStat("payload", "count"), not_applicable=0))
        feats.append(Feature(f"{d}_payload_max", "payload", f"Largest transport payload {_dir_doc(d)}",
                             "count", d, pkt, PacketStat("payload", "max"), unit="B"))
        feats.append(Feature(f"{d}_payload_mean", "payload", f"Mean transport payload {_dir_doc(d)}",
                             "double", d, pkt, PacketStat("payload", "mean"), unit="B"))
    for d in ("orig", "resp"):
        for flag in ("cwr", "ece", "urg", "ack", "psh", "rst", "syn", "fin"):
            feats.append(Feature(f"{d}_{flag}_cnt", "flags",
                                 f"TCP packets with {flag.upper()} set, {_dir_doc(d)}", "count", d, pkt,
                                 FlagCount(flag), not_applicable=0, protocols=("tcp",)))
    for name, (start, end) in HANDSHAKE_SPANS.items():
        feats.append(Feature(name, "handshake", f"Seconds from the first {start} to the first {end}",
                             "double", "none", pkt, Handshake(start, end), protocols=("tcp",), unit="s"))
    return tuple(feats)


CATALOG: tuple[Feature, ...] = _build()
FEATURES_BY_NAME: dict[str, Feature] = {f.name: f for f in CATALOG}
assert len(FEATURES_BY_NAME) == len(CATALOG), "duplicate feature names"


def catalog_hash() -> str:
    """A short hash of the whole catalog: generated scripts and caches carry it."""
    blob = json.dumps([f.to_dict() for f in CATALOG], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class UnknownFeatureError(ValueError):
    pass


def resolve(selection: str | list[str] | tuple[str, ...]) -> tuple[Feature, ...]:
    """Turn ``"all"``, ``"a,b,c"``, group names or a list of names into features in catalog order."""
    if isinstance(selection, str):
        names = [s.strip() for s in selection.split(",") if s.strip()]
    else:
        names = list(selection)
    if not names:
        raise UnknownFeatureError("empty feature selection")
    groups = {f.group for f in CATALOG}
    wanted: set[str] = set()
    unknown = []
    for n in names:
        if n == "all":
            wanted.update(FEATURES_BY_NAME)
        elif n in FEATURES_BY_NAME:
            wanted.add(n)
        elif n.startswith("group:") and n[6:] in groups:
            wanted.update(f.name for f in CATALOG if f.group == n[6:])
        else:
            unknown.append(n)
    if unknown:
        raise UnknownFeatureError(
            f"unknown feature(s): {', '.join(unknown)} (see `cato features`; groups: "
            + ", ".join(f"group:{g}" for g in sorted(groups)) + ")")
    return tuple(f for f in CATALOG if f.name in wanted)
