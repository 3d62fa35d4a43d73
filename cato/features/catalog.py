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
#: reading its IP/TCP/UDP header. ``analyzer``: one of Zeek's protocol analyzers, and a script call
#: per event of it that fills the feature.
Need = Literal["conn_record", "packet_header", "analyzer"]
NEEDS: tuple[str, ...] = ("conn_record", "packet_header", "analyzer")

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


@dataclass(frozen=True)
class AnalyzerField:
    """A value one of Zeek's protocol analyzers reports: from the first ``event`` of the connection
    for which ``when`` holds, ``value`` (a Zeek expression over the event's arguments).

    ``event`` is the handler's prototype; ``connection`` the expression of the connection in its
    arguments. ``scripts`` are what runs the analyzer in a Zeek that does not already (``zeek -b``):
    the generated script loads them, so a bare deployment pays for them and one running Zeek's
    default scripts does not. ``known`` says when the value is there: a vector made before that
    event has it missing, as the deployed script's would (time-to-decision and deadlines stay
    right)."""

    analyzer: str
    scripts: str
    event: str
    value: str
    known: str
    when: str = ""
    connection: str = "c"
    kind: Literal["analyzer_field"] = "analyzer_field"

    @property
    def event_name(self) -> str:
        return self.event.split("(", 1)[0]

    def describe(self) -> str:
        cond = f" where {self.when}" if self.when else ""
        return f"{self.value} of the first {self.event_name}{cond} ({self.analyzer} analyzer)"


@dataclass(frozen=True)
class Remembered:
    """What the deployment learned of a connection's endpoints from earlier traffic, looked up when
    the connection begins (and again if Zeek flips its roles): ``value`` (a Zeek expression over the
    arguments of any of ``events``, where ``when`` holds), remembered under ``key`` for the Zeek option
    ``memory`` after it was last told, and looked up under ``lookup`` (over the connection ``c``, an
    expression guarded by ``has``, if any). ``key_type`` is the Zeek table's index type. ``analyzer``,
    ``scripts`` and ``known`` as :class:`AnalyzerField`'s: a remembered value is there from the
    connection's first packet, so it costs no time-to-decision."""

    analyzer: str
    scripts: str
    events: tuple[str, ...]
    key: str
    key_type: str
    value: str
    lookup: str
    has: str
    memory: str
    known: str
    when: str = ""
    kind: Literal["remembered"] = "remembered"

    def describe(self) -> str:
        names = " or ".join(e.split("(", 1)[0] for e in self.events)
        cond = f" where {self.when}" if self.when else ""
        return (f"{self.value} of the last {names}{cond}, remembered by [{self.key}] for Cato::{self.memory}, "
                f"at [{self.lookup}] when the connection begins ({self.analyzer} analyzer)")


#: How a string becomes a number. ``vocabulary``: its rank in a vocabulary of the values seen most
#: often in training, learned per fit (``cato.model.encoding``) and shipped in a compiled package as
#: a Zeek table (0: a value not in it); ``length``: its length in bytes.
Encoding = Literal["vocabulary", "length"]


@dataclass(frozen=True)
class Encoded:
    """A number made from the string feature ``source`` by ``encoding``."""

    source: str
    encoding: Encoding
    kind: Literal["encoded"] = "encoded"

    def describe(self) -> str:
        if self.encoding == "length":
            return f"length in bytes of {self.source}"
        return f"rank of {self.source} in a vocabulary learned in training (0: not in it)"


#: Longest string an analyzer feature keeps (bytes): a hostile value cannot grow Zeek's state or
#: the logs; its ``_len`` feature still counts every byte. (Also in main.zeek, Cato::max_string_bytes.)
MAX_STRING_BYTES = 256

Computation = Union[ConnExpr, PacketStat, FlagCount, Handshake, AnalyzerField, Remembered, Encoded]


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

    @property
    def learned(self) -> bool:
        """Whether its numbers come from an encoding fitted in training (a vocabulary)."""
        return isinstance(self.computation, Encoded) and self.computation.encoding == "vocabulary"

    @property
    def analyzer_field(self) -> AnalyzerField | Remembered | None:
        """The analyzer value it is (or is made from), if any: of the connection's own events, or
        remembered from earlier ones."""
        comp = self.computation
        if isinstance(comp, Encoded):
            comp = FEATURES_BY_NAME[comp.source].computation
        return comp if isinstance(comp, (AnalyzerField, Remembered)) else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["computation"] = {**asdict(self.computation), "zeek": self.computation.describe()}
        if self.analyzer_field is not None:
            d["analyzer"] = self.analyzer_field.analyzer
            d["known"] = self.analyzer_field.known
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
    _add_analyzer_features(feats)
    _add_remembered_features(feats)
    return tuple(feats)


_DNS_REQUEST = "dns_request(c: connection, msg: dns_msg, query: string, qtype: count, qclass: count)"
_CLIENT_HELLO = ("ssl_client_hello(c: connection, version: count, record_version: count, possible_ts: time, "
                 "client_random: string, session_id: string, ciphers: index_vec, comp_methods: index_vec)")
_SERVER_HELLO = ("ssl_server_hello(c: connection, version: count, record_version: count, possible_ts: time, "
                 "server_random: string, session_id: string, cipher: count, comp_method: count)")
_HTTP_HEADER = "http_header(c: connection, is_orig: bool, name: string, value: string)"
_DHCP = "dhcp_message(c: connection, is_orig: bool, msg: DHCP::Msg, options: DHCP::Options)"


def _add_string(feats: list[Feature], name: str, group: str, desc: str, direction: str,
                protocols: tuple[str, ...], source: AnalyzerField | Remembered, length: bool) -> None:
    """A string from Zeek's analyzers and the numbers a model sees of it: its vocabulary code and,
    with ``length``, its length."""
    analyzer = ("analyzer",)
    feats.append(Feature(name, group, desc, "string", direction, analyzer, source, protocols=protocols))
    feats.append(Feature(f"{name}_code", group, f"{desc}: its vocabulary code (learned in training)",
                         "count", direction, analyzer, Encoded(name, "vocabulary"), protocols=protocols))
    if length:
        feats.append(Feature(f"{name}_len", group, f"{desc}: its length", "count", direction, analyzer,
                             Encoded(name, "length"), protocols=protocols, unit="B"))


def _add_analyzer_features(feats: list[Feature]) -> None:
    """What Zeek's protocol analyzers tell of a connection: strings operators identify devices and
    applications by (each with a vocabulary code and a length for models), and a few numbers."""
    analyzer = ("analyzer",)
    tcp, udp, both = ("tcp",), ("udp",), ("tcp", "udp")

    def add(name, group, desc, dtype, direction, protocols, field_: AnalyzerField, length=True):
        if dtype == "string":
            _add_string(feats, name, group, desc, direction, protocols, field_, length)
        else:
            feats.append(Feature(name, group, desc, dtype, direction, analyzer, field_, protocols=protocols))

    add("service", "service", "Protocol Zeek's analyzers first confirmed (lower case, as conn.log's service)",
        "string", "none", both,
        AnalyzerField("any", "base/init-default",
                      "analyzer_confirmation_info(atype: AllAnalyzers::Tag, info: AnalyzerConfirmationInfo)",
                      "to_lower(Analyzer::name(atype))", "once an analyzer confirms the protocol (the packet "
                      "after the one that completed its first message)", connection="info$c"))
    dns = ("DNS", "base/protocols/dns")
    add("dns_query", "dns", "DNS name of the first query", "string", "orig", both,
        AnalyzerField(*dns, _DNS_REQUEST, "query", "from the packet after the first query"))
    add("dns_qtype", "dns", "DNS type of the first query (1 A, 28 AAAA, 12 PTR, ...)", "count", "orig", both,
        AnalyzerField(*dns, _DNS_REQUEST, "qtype", "from the packet after the first query"))
    ssl = ("SSL", "base/protocols/ssl")
    hello = "from the packet after the one that completed the client's hello"
    add("tls_server_name", "tls", "TLS server name the client asked for (SNI)", "string", "orig", tcp,
        AnalyzerField(*ssl, "ssl_extension_server_name(c: connection, is_client: bool, names: string_vec)",
                      "names[0]", hello, when="is_client && |names| > 0"))
    add("tls_client_version", "tls", "TLS version of the client's hello (0x0303: TLS 1.2)", "count", "orig", tcp,
        AnalyzerField(*ssl, _CLIENT_HELLO, "version", hello))
    add("tls_cipher_count", "tls", "Cipher suites the client offered", "count", "orig", tcp,
        AnalyzerField(*ssl, _CLIENT_HELLO, "|ciphers|", hello))
    add("tls_client_ciphers", "tls", "Cipher suites the client offered, in order (JA3's cipher list)", "string",
        "orig", tcp, AnalyzerField(*ssl, _CLIENT_HELLO, "join_counts(ciphers)", hello))
    add("tls_server_cipher", "tls", "Cipher suite the server chose", "count", "resp", tcp,
        AnalyzerField(*ssl, _SERVER_HELLO, "cipher", "from the packet after the one that completed the "
                      "server's hello"))
    http = ("HTTP", "base/protocols/http")
    request = "from the packet after the one that completed the request's headers"
    add("http_method", "http", "HTTP method of the first request", "string", "orig", tcp,
        AnalyzerField(*http, "http_request(c: connection, method: string, original_URI: string, "
                      "unescaped_URI: string, version: string)", "method", "from the packet after the "
                      "request line"))
    add("http_host", "http", "HTTP Host header of the first request", "string", "orig", tcp,
        AnalyzerField(*http, _HTTP_HEADER, "value", request, when='is_orig && name == "HOST"'))
    add("http_user_agent", "http", "HTTP User-Agent header of the first request", "string", "orig", tcp,
        AnalyzerField(*http, _HTTP_HEADER, "value", request, when='is_orig && name == "USER-AGENT"'))
    dhcp = ("DHCP", "base/protocols/dhcp")
    message = "from the packet after the first DHCP message"
    add("dhcp_host_name", "dhcp", "DHCP host name option (12) of the first message with one", "string", "orig",
        udp, AnalyzerField(*dhcp, _DHCP, "options$host_name", message, when="options?$host_name"))
    add("dhcp_host_name_shape", "dhcp", "Shape of the DHCP host name (runs of six or more hex characters with a "
        "digit, a unit's MAC tail or serial, as #): what units of one model share", "string", "orig", udp,
        AnalyzerField(*dhcp, _DHCP, "shape_of(options$host_name)", message, when="options?$host_name"),
        length=False)
    add("dhcp_vendor_class", "dhcp", "DHCP vendor class option (60) of the first message with one", "string",
        "orig", udp, AnalyzerField(*dhcp, _DHCP, "options$vendor_class", message, when="options?$vendor_class"))
    add("dhcp_param_list", "dhcp", "DHCP parameter request list (option 55) of the first message with one, "
        "in order (a client's DHCP fingerprint)", "string", "orig", udp,
        AnalyzerField(*dhcp, _DHCP, "join_counts(options$param_list)", message, when="options?$param_list"))
    ssh = ("SSH", "base/protocols/ssh")
    add("ssh_client_version", "ssh", "SSH client's version string", "string", "orig", tcp,
        AnalyzerField(*ssh, "ssh_client_version(c: connection, version: string)", "version",
                      "from the packet after the client's version line"))
    add("ssh_server_version", "ssh", "SSH server's version string", "string", "resp", tcp,
        AnalyzerField(*ssh, "ssh_server_version(c: connection, version: string)", "version",
                      "from the packet after the server's version line"))


_DNS_ANSWERS = tuple(f"{name}(c: connection, msg: dns_msg, ans: dns_answer, a: addr)"
                     for name in ("dns_A_reply", "dns_AAAA_reply"))


def _add_remembered_features(feats: list[Feature]) -> None:
    """What a deployment remembers of hosts, carried to every later connection of theirs: a device's
    DHCP identity (Fingerbank's fingerprint: host name, vendor class, parameter list), by the MAC
    address its frames carry, and the name a client resolved a server's address from (DNS-based flow
    naming). Looked up when a connection begins, they name a connection that carries no string of
    its own, at no time-to-decision."""
    both = ("tcp", "udp", "icmp")
    begins = "when the connection begins, from the host's DHCP messages before it"

    def add(name, group, desc, direction, field_: Remembered, length=True):
        _add_string(feats, name, group, desc, direction, both, field_, length)

    dhcp = ("DHCP", "base/protocols/dhcp", (_DHCP,), "msg$chaddr", "string")
    for d in ("orig", "resp"):
        mac = f"c${d}$l2_addr"
        for name, option, field, what in (
                ("host_name", "host_name", "options$host_name", "DHCP host name (option 12)"),
                ("host_name_shape", "host_name", "shape_of(options$host_name)",
                 "Shape of the DHCP host name (a unit's MAC tail or serial as #: what units of one model share)"),
                ("vendor_class", "vendor_class", "options$vendor_class", "DHCP vendor class (option 60)"),
                ("param_list", "param_list", "join_counts(options$param_list)",
                 "DHCP parameter request list (option 55), in order")):
            add(f"{d}_host_dhcp_{name}", "host_dhcp",
                f"{what} the {'originator' if d == 'orig' else 'responder'}'s host last sent, by its MAC "
                "address, before the connection", d,
                Remembered(*dhcp, field, mac, f"c${d}?$l2_addr", "host_memory", begins,
                           when=f"is_orig && options?${option}"), length=name != "host_name_shape")
    dns = ("DNS", "base/protocols/dns", _DNS_ANSWERS, "c$id$orig_h, a", "addr, addr")
    resolved = "when the connection begins, from the DNS answers the originator received before it"
    add("resp_dns_name", "host_dns", "Name the originator last resolved the responder's address from (a DNS A or "
        "AAAA answer it received)", "resp",
        Remembered(*dns, "ans$query", "c$id$orig_h, c$id$resp_h", "", "name_memory", resolved))
    add("resp_dns_domain", "host_dns", "Last two labels of the name the originator last resolved the responder's "
        "address from, lower case (its domain; no public suffix list)",
        "resp", Remembered(*dns, "domain_of(ans$query)", "c$id$orig_h, c$id$resp_h", "", "name_memory",
                           resolved))


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
    """Turn ``"all"``, ``"a,b,c"``, group names (``group:tls``), what features need from Zeek
    (``needs:analyzer``) or a list of names into features in catalog order. A term starting with
    ``-`` takes its features out again: ``all,-needs:analyzer`` is every flow statistic."""
    if isinstance(selection, str):
        names = [s.strip() for s in selection.split(",") if s.strip()]
    else:
        names = list(selection)
    if not names:
        raise UnknownFeatureError("empty feature selection")
    groups = {f.group for f in CATALOG}
    wanted: set[str] = set()
    dropped: set[str] = set()
    unknown = []
    for term in names:
        target = dropped if term.startswith("-") else wanted
        n = term[1:] if term.startswith("-") else term
        if n == "all":
            target.update(FEATURES_BY_NAME)
        elif n in FEATURES_BY_NAME:
            target.add(n)
        elif n.startswith("group:") and n[6:] in groups:
            target.update(f.name for f in CATALOG if f.group == n[6:])
        elif n.startswith("needs:") and n[6:] in NEEDS:
            target.update(f.name for f in CATALOG if n[6:] in f.needs)
        else:
            unknown.append(term)
    if unknown:
        raise UnknownFeatureError(
            f"unknown feature(s): {', '.join(unknown)} (see `cato features`; groups: "
            + ", ".join(f"group:{g}" for g in sorted(groups)) + "; "
            + ", ".join(f"needs:{need}" for need in NEEDS) + ")")
    wanted -= dropped
    if not wanted:
        raise UnknownFeatureError(f"the selection {','.join(names)} leaves no feature")
    return tuple(f for f in CATALOG if f.name in wanted)
