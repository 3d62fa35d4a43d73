"""Generate a tailored Zeek script from a feature selection and packet depths.

The script computes only the selected features, handles only the events they need and does no
per-connection work past the last depth. Three extraction strategies:

``counters``
    Counter-only selections (no per-packet feature): Zeek's ConnSize analyzer raises
    ``conn_generic_packet_threshold_crossed`` at each depth; no per-packet event is handled.
``new_packet``
    One ``new_packet`` handler with an early exit once the last depth is reached.
``thresholds``
    The low-level ConnSize BiF ``set_current_conn_packets_threshold`` re-armed packet by packet,
    reading headers with ``get_current_packet_header``: no script call at all past the last depth.

``auto`` picks counters when the selection allows it and thresholds otherwise: the only per-packet
strategy whose cost does not grow with packets past the depth (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from cato import __version__
from cato.codegen.native import PLUGIN_NAME, native_body
from cato.codegen.static import MODULE, embedded_static_part, in_module
from cato.features.catalog import (
    FEATURES_BY_NAME,
    TCP_FLAG_NAMES,
    AnalyzerField,
    Remembered,
    ConnExpr,
    Encoded,
    Feature,
    FlagCount,
    Handshake,
    PacketStat,
    catalog_hash,
)

STRATEGIES = ("auto", "counters", "new_packet", "thresholds")
#: ``script``: the features computed by generated Zeek script; ``native``: by cato's Zeek plugin
#: (``plugin/``), configured by the generated script.
ENGINES = ("script", "native")
ZEEK_TYPES = {"count": "count", "double": "double", "string": "string"}


class GeneratorError(ValueError):
    pass


@dataclass(frozen=True)
class GeneratedScript:
    text: str
    features: tuple[Feature, ...]
    depths: tuple[int, ...]
    strategy: str
    #: Decision deadline in seconds (None: vectors wait for their depth or the connection's end).
    deadline: float | None = None
    #: Which engine computes the features (see :data:`ENGINES`); ``native`` needs cato's plugin.
    engine: str = "script"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.features]


def normalize_depths(depths: int | Iterable[int]) -> tuple[int, ...]:
    """Sorted unique positive depths."""
    values = [depths] if isinstance(depths, int) else list(depths)
    if not values:
        raise GeneratorError("at least one packet depth is needed")
    for d in values:
        if not isinstance(d, int) or d < 1:
            raise GeneratorError(f"packet depth must be a positive integer, got {d!r}")
    return tuple(sorted(set(values)))


_DURATION_UNITS = {"us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "s": 1.0, "sec": 1.0, "min": 60.0}


def parse_deadline(text: str) -> float | None:
    """``250ms``, ``1.5s``, ``800us``, ``2min`` as seconds; ``0`` or ``none``: no deadline."""
    value = text.strip().lower()
    if value in ("", "0", "none"):
        return None
    match = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*([a-z]+)", value)
    if not match or match.group(2) not in _DURATION_UNITS:
        raise GeneratorError(f"deadline {text!r}: give a duration such as 250ms, 1.5s or 800us (0: none)")
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds < 1e-6:
        raise GeneratorError(f"deadline {text!r} is below a microsecond")
    return seconds


def choose_strategy(features: Sequence[Feature], depths: Sequence[int], strategy: str = "auto") -> str:
    if strategy not in STRATEGIES:
        raise GeneratorError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    per_packet = any(f.per_packet for f in features)
    if strategy == "counters" and per_packet:
        names = ", ".join(f.name for f in features if f.per_packet)
        raise GeneratorError(f"the counters strategy cannot compute per-packet features: {names}")
    if strategy != "auto":
        return strategy
    if not per_packet:
        return "counters"
    # Measured (benchmarks/RESULTS.md): thresholds keep the cost per connection bounded whatever the
    # flow length; a new_packet handler still runs (and returns) for every packet past the depth,
    # about 1.5 µs each, which on long flows costs far more than it saves on short ones.
    return "thresholds"


# --- accumulators -------------------------------------------------------------------------------
#
# Per-direction state lives in two records of type Cato::Dir: ``a`` for the endpoint that sent the
# connection's first packet, ``b`` for the other. Zeek may flip a connection's roles after its
# first packets (a SYN-ACK seen first, say); which of a and b is the originator is decided only
# when a vector is filled, from the connection's final orientation.

_STAT_PARTS = {
    "sum": {"n", "sum"}, "mean": {"n", "mean"}, "std": {"n", "mean", "m2"}, "min": {"n", "min"},
    "max": {"n", "max"}, "median": {"n", "vals"}, "first": {"first"}, "count": {"pos"},
}


class _Plan:
    """What the per-packet code must track for a selection."""

    def __init__(self, features: Sequence[Feature]):
        self.dir_parts: dict[str, set[str]] = {}  # quantity -> parts, kept for both directions
        self.flow_parts: dict[str, set[str]] = {}  # quantity -> parts over both directions
        self.flags: set[str] = set()
        self.marks: set[str] = set()
        for f in features:
            comp = f.computation
            if isinstance(comp, PacketStat):
                target = self.flow_parts if f.direction == "both" else self.dir_parts
                target.setdefault(comp.quantity, set()).update(_STAT_PARTS[comp.stat])
            elif isinstance(comp, FlagCount):
                self.flags.add(comp.flag)
            elif isinstance(comp, Handshake):
                self.marks.update((comp.start, comp.end))
        # Marks depend on earlier marks.
        if "ack" in self.marks or "data" in self.marks:
            self.marks.update({"synack", "ack"})
        self.quantities = set(self.dir_parts) | set(self.flow_parts)

    @property
    def per_direction(self) -> bool:
        return bool(self.dir_parts or self.flags)

    @property
    def needs_now(self) -> bool:
        return "iat" in self.quantities or bool(self.marks)

    @property
    def needs_flags(self) -> bool:
        return bool(self.flags) or bool(self.marks)

    @property
    def needs_payload(self) -> bool:
        return "payload" in self.quantities or "data" in self.marks


def _acc_fields(prefix: str, parts: set[str], iat: bool) -> list[str]:
    out: list[str] = []
    if "n" in parts:
        out.append(f"{prefix}_n: count &default=0;")
    for part in ("sum", "mean", "m2"):
        if part in parts:
            out.append(f"{prefix}_{part}: double &default=0.0;")
    for part in ("min", "max", "first"):
        if part in parts:
            out.append(f"{prefix}_{part}: double &optional;")
    if "vals" in parts:
        out.append(f"{prefix}_vals: vector of double &default=vector();")
    if "pos" in parts:
        out.append(f"{prefix}_pos: count &default=0;")
    if iat:
        out.append(f"{prefix}_last: time &optional;")
    return out


def _dir_fields(plan: _Plan) -> list[str]:
    out: list[str] = []
    for q in sorted(plan.dir_parts):
        out += _acc_fields(q, plan.dir_parts[q], q == "iat")
    out += [f"{flag}: count &default=0;" for flag in sorted(plan.flags)]
    return out


def _state_fields(plan: _Plan) -> list[str]:
    out: list[str] = []
    if plan.per_direction:
        out += ["## The endpoint (address, port) that sent the first packet.", "a_h: addr &optional;",
                "a_p: port &optional;", "a: Dir &optional;", "b: Dir &optional;"]
    for q in sorted(plan.flow_parts):
        out += _acc_fields(f"{q}_flow", plan.flow_parts[q], q == "iat")
    for mark in sorted(plan.marks):
        out.append(f"hs_{mark}: time &optional;")
    return out


def _acc_update(rec: str, prefix: str, parts: set[str], value: str, indent: str) -> list[str]:
    """Zeek statements folding ``value`` (a double expression) into ``rec$prefix_*``."""
    p = f"{rec}${prefix}"
    lines: list[str] = []
    if "first" in parts:
        lines.append(f"if ( ! {rec}?${prefix}_first ) {p}_first = {value};")
    if "pos" in parts:
        lines.append(f"if ( {value} > 0.0 ) ++{p}_pos;")
    if "n" in parts:
        lines.append(f"++{p}_n;")
    if "sum" in parts:
        lines.append(f"{p}_sum += {value};")
    if "mean" in parts:
        delta = f"delta_{rec}_{prefix}"
        lines.append(f"local {delta} = {value} - {p}_mean;")
        lines.append(f"{p}_mean += {delta} / {p}_n;")
        if "m2" in parts:
            lines.append(f"{p}_m2 += {delta} * ({value} - {p}_mean);")
    if "min" in parts:
        lines.append(f"if ( ! {rec}?${prefix}_min || {value} < {p}_min ) {p}_min = {value};")
    if "max" in parts:
        lines.append(f"if ( ! {rec}?${prefix}_max || {value} > {p}_max ) {p}_max = {value};")
    if "vals" in parts:
        lines.append(f"{p}_vals[|{p}_vals|] = {value};")
    return [indent + line for line in lines]


def _quantity_updates(rec: str, suffix: str, parts_by_q: dict[str, set[str]], indent: str) -> list[str]:
    lines: list[str] = []
    for q in sorted(parts_by_q):
        parts = parts_by_q[q]
        prefix = f"{q}{suffix}"
        if q == "iat":
            last = f"{rec}${prefix}_last"
            var = f"iat_{rec}"
            lines.append(f"{indent}if ( {rec}?${prefix}_last )")
            lines.append(f"{indent}\t{{")
            lines.append(f"{indent}\tlocal {var} = interval_to_double(now - {last});")
            lines.extend(_acc_update(rec, prefix, parts, var, indent + "\t"))
            lines.append(f"{indent}\t}}")
            lines.append(f"{indent}{last} = now;")
        elif q == "win":
            lines.append(f"{indent}if ( p?$tcp )")
            lines.append(f"{indent}\t{{")
            lines.extend(_acc_update(rec, prefix, parts, "win", indent + "\t"))
            lines.append(f"{indent}\t}}")
        else:
            lines.extend(_acc_update(rec, prefix, parts, q, indent))
    return lines


def _observe_function(plan: _Plan, header_type: str) -> list[str]:
    q = plan.quantities
    t = "\t"
    body: list[str] = [
        f"{t}# A packet captured shorter than its headers claim counts toward the depth but",
        f"{t}# adds nothing: Zeek gives no (transport) header for it.",
        f"{t}if ( (! p?$ip && ! p?$ip6) || (c$id$proto == IPPROTO_TCP && ! p?$tcp) ||",
        f"{t}     (c$id$proto == IPPROTO_UDP && ! p?$udp) )",
        f"{t}\treturn;",
    ]
    if plan.needs_now:
        body.append(f"{t}local now = network_time();")
    if "size" in q:
        body.append(f"{t}local size = 0.0 + (p?$ip ? p$ip$len : (p?$ip6 ? p$ip6$len + 40 : 0));")
    if "ttl" in q:
        body.append(f"{t}local ttl = 0.0 + (p?$ip ? p$ip$ttl : (p?$ip6 ? p$ip6$hlim : 0));")
    if plan.needs_payload:
        body.append(f"{t}local payload = 0.0;")
        body.append(f"{t}if ( p?$tcp )")
        body.append(f"{t}\tpayload = p$tcp$dl;")
        body.append(f"{t}else if ( p?$udp && p$udp$ulen >= 8 )")
        body.append(f"{t}\tpayload = p$udp$ulen - 8;")
    if "win" in q:
        body.append(f"{t}local win = p?$tcp ? p$tcp$win + 0.0 : 0.0;")
    if plan.needs_flags:
        body.append(f"{t}local flags = p?$tcp ? p$tcp$flags : 0;")
    if plan.per_direction:
        body += [
            f"{t}local src = p?$ip ? p$ip$src : p$ip6$src;",
            f"{t}local sport = p?$tcp ? p$tcp$sport : (p?$udp ? p$udp$sport : 0/unknown);",
            f"{t}if ( ! s?$a_h )",
            f"{t}\t{{",
            f"{t}\ts$a_h = src;",
            f"{t}\ts$a_p = sport;",
            f"{t}\t}}",
            f"{t}# A connection to itself: tell the endpoints apart by port.",
            f"{t}local d = (c$id$orig_h == c$id$resp_h ? sport == s$a_p : src == s$a_h) ? s$a : s$b;",
        ]
        body += _quantity_updates("d", "", plan.dir_parts, t)
        if plan.flags:
            body.append(f"{t}if ( p?$tcp )")
            body.append(f"{t}\t{{")
            for flag in sorted(plan.flags):
                body.append(f"{t}\tif ( (flags & {TCP_FLAG_NAMES[flag]}) != 0 ) ++d${flag};")
            body.append(f"{t}\t}}")
    body += _quantity_updates("s", "_flow", plan.flow_parts, t)
    if plan.marks:
        # Direction-free marks: they hold whatever Zeek later decides the roles are.
        body.append(f"{t}if ( p?$tcp )")
        body.append(f"{t}\t{{")
        body.append(f"{t}\tlocal syn = (flags & TH_SYN) != 0;")
        body.append(f"{t}\tlocal ack = (flags & TH_ACK) != 0;")
        if "syn" in plan.marks:
            body.append(f"{t}\tif ( syn && ! ack && ! s?$hs_syn ) s$hs_syn = now;")
        if "synack" in plan.marks:
            body.append(f"{t}\tif ( syn && ack && ! s?$hs_synack ) s$hs_synack = now;")
        if "ack" in plan.marks:
            body.append(f"{t}\tif ( ack && ! syn && s?$hs_synack && ! s?$hs_ack ) s$hs_ack = now;")
        if "data" in plan.marks:
            body.append(f"{t}\tif ( payload > 0.0 && s?$hs_ack && ! s?$hs_data ) s$hs_data = now;")
        body.append(f"{t}\t}}")
    return (["# Folds one of the connection's first packets into its state.",
             f"function observe(c: connection, s: State, p: {header_type})", "\t{"]
            + body + ["\t}"])


# --- analyzer features -----------------------------------------------------------------------------
#
# A value of one of Zeek's protocol analyzers is taken from the first event that has it, into the
# connection's state (strings cut to Cato::max_string_bytes), until the connection's last vector;
# each vector then holds what its connection's events had told by then. A string feature's codes
# come from a vocabulary shipped in the script as a table of byte-escaped literals: a value seen on
# the wire is only ever a key looked up, never Zeek code.

def zeek_bytes_literal(value: bytes) -> str:
    """A Zeek string literal of ``value``, every byte escaped: whatever the bytes, it stays one literal."""
    return '"' + "".join(f"\\x{b:02x}" for b in value) + '"'


def _analyzer_sources(features: Sequence[Feature]) -> list[Feature]:
    """The analyzer values the features need, in catalog order: the features themselves, or the
    strings they encode."""
    names: set[str] = set()
    for f in features:
        if isinstance(f.computation, (AnalyzerField, Remembered)):
            names.add(f.name)
        elif isinstance(f.computation, Encoded):
            names.add(f.computation.source)
    return [f for f in FEATURES_BY_NAME.values() if f.name in names]


def _analyzer_part(features: Sequence[Feature], new_state: str, vocabularies: dict[str, Sequence[bytes]],
                   raw_strings: bool = True) -> tuple[list[str], list[str], list[str]]:
    """(State fields, Info columns of the raw strings not selected, Zeek code) of the analyzer features.

    Each value is dated by ConnSize's packet count when it came, the one being processed included: a
    vector made at a later packet has it, whatever the order in which one packet's events run, so the
    counters and thresholds strategies (and the multi-depth extraction) agree. (``new_packet`` counts
    packets in another order than ConnSize: on nDPI's 1kxun.pcap an HTTP request would come a packet
    later; it refuses analyzer features.)"""
    sources = _analyzer_sources(features)
    if not sources:
        return [], [], []
    selected = {f.name for f in features}
    lengths = {f.computation.source for f in features
               if isinstance(f.computation, Encoded) and f.computation.encoding == "length"}
    state = []
    for src in sources:
        state.append(f"{src.name}: {ZEEK_TYPES[src.dtype]} &optional;")
        state.append(f"{src.name}_at: count &optional;")
        if src.name in lengths:
            state.append(f"{src.name}_len: count &optional;")
    extra = []
    for src in sources:
        if raw_strings and src.name not in selected:
            extra += [f"\t\t## {src.description} (the string the selected features encode).",
                      f"\t\t{src.name}: string &log &optional;"]
    code: list[str] = []
    for f in features:
        if f.learned:
            words = vocabularies.get(f.name, ())
            entries = ", ".join(f"[{zeek_bytes_literal(w)}] = {i}" for i, w in enumerate(words, 1))
            code += [f"# {f.name}: {len(words)} value(s) learned in training; any other codes 0.",
                     f"const vocabulary_{f.name}: table[string] of count = {{ {entries} }} &redef;"
                     if words else f"const vocabulary_{f.name}: table[string] of count = table() &redef;"]
    if code:
        code.append("")
    code += _remembered_part([src for src in sources if isinstance(src.computation, Remembered)], new_state,
                             lengths)
    by_event: dict[tuple[str, str], list[Feature]] = {}
    for src in sources:
        if isinstance(src.computation, Remembered):
            continue
        comp = src.computation
        by_event.setdefault((comp.event, comp.connection), []).append(src)
    for (event, connection), fields in by_event.items():
        code += [f"event {event}", "\t{"]
        if connection != "c":
            record, _, name = connection.rpartition("$")
            code += [f"\tif ( ! {record}?${name} )", "\t\treturn;", f"\tlocal c = {connection};"]
        code += ["\tif ( ! c?$cato )", f"\t\tc$cato = {new_state};", "\tlocal s = c$cato;",
                 "\t# Past the connection's last vector nothing is kept.",
                 "\tif ( s$next_depth >= |depths| )", "\t\treturn;"]
        for src in fields:
            comp = src.computation
            cond = f"! s?${src.name}" + (f" && {comp.when}" if comp.when else "")
            if src.dtype == "string":
                value = f"value_{src.name}"
                code += [f"\tif ( {cond} )", "\t\t{", f"\t\tlocal {value} = {comp.value};",
                         f"\t\ts${src.name} = clip({value});", f"\t\ts${src.name}_at = packets_now(c);"]
                if src.name in lengths:
                    code.append(f"\t\ts${src.name}_len = |{value}|;")
                code.append("\t\t}")
            else:
                code += [f"\tif ( {cond} )", "\t\t{", f"\t\ts${src.name} = {comp.value};",
                         f"\t\ts${src.name}_at = packets_now(c);", "\t\t}"]
        code += ["\t}", ""]
    # The vector's columns, from the state (a connection its events never reached has none): a value
    # is in a vector made after the packet that brought it, or at the connection's end.
    code += ["hook fill_vector(c: connection, info: Info)", "\t{", "\tif ( ! c?$cato )", "\t\treturn;",
             "\tlocal s = c$cato;", "\tlocal ended = info$decided_by == END;"]
    for src in sources:
        code += [f"\tif ( s?${src.name} && (ended || s${src.name}_at < info$pkts_seen) )", "\t\t{"]
        if raw_strings or src.name in selected:
            code.append(f"\t\tinfo${src.name} = s${src.name};")
        for f in features:
            comp = f.computation
            if isinstance(comp, Encoded) and comp.source == src.name:
                if comp.encoding == "length":
                    code.append(f"\t\tinfo${f.name} = s${src.name}_len;")
                else:
                    table = f"vocabulary_{f.name}"
                    code.append(f"\t\tinfo${f.name} = s${src.name} in {table} ? {table}[s${src.name}] : 0;")
        code.append("\t\t}")
    code += ["\t}", ""]
    return state, extra, code


def _remembered_part(sources: Sequence[Feature], new_state: str, lengths: set[str]) -> list[str]:
    """Zeek code of remembered values: a table per value remembered (the originator's and the
    responder's features share it), the handlers that fill it, and ``recall``, which copies what the
    tables hold of a connection's endpoints into its state when it begins, and again if Zeek flips
    its roles, before any handler that may make a vector; a value is dated before the first packet
    (``_at`` 0), in every vector.

    On a cluster a host's DHCP and DNS reach one worker and its connections any: a worker sends
    what it learns to the manager, which relays it to every worker (Cato::share_remembered)."""
    if not sources:
        return []
    def base_of(src: Feature) -> str:  # the originator's and responder's features share a table
        return src.name.removeprefix("orig_").removeprefix("resp_")

    tables: dict[str, Remembered] = {}
    for src in sources:
        tables.setdefault(base_of(src), src.computation)
    code: list[str] = []
    handlers: dict[str, list[str]] = {}
    for base, comp in tables.items():
        name, share = f"remembered_{base}", f"share_{base}"
        key_types = [t.strip() for t in comp.key_type.split(",")]
        params = ", ".join(f"k{i}: {t}" for i, t in enumerate(key_types, 1))
        keys = ", ".join(f"k{i}" for i in range(1, len(key_types) + 1))
        code += [f"# {comp.value}, by [{comp.key}], for {comp.memory} after it was last told.",
                 f"global {name}: table[{comp.key_type}] of Remembered &write_expire={comp.memory};",
                 f"global {share}: event({params}, r: Remembered);", "",
                 "# Past Cato::max_remembered entries a new key is not kept (a flood of spoofed ones); a",
                 "# known one still is.",
                 f"function keep_{base}({params}, r: Remembered): bool", "\t{",
                 f"\tif ( |{name}| >= max_remembered && [{keys}] !in {name} )", "\t\treturn F;",
                 f"\t{name}[{keys}] = r;", "\treturn T;", "\t}", "",
                 f"function remember_{base}({params}, r: Remembered)", "\t{",
                 f"\tif ( keep_{base}({keys}, r) && share_remembered && Cluster::is_enabled() )",
                 f"\t\tCluster::publish(Cluster::manager_topic, {share}, {keys}, r);", "\t}", "",
                 "# The manager relays what a worker learned to every worker (the sender too: the same value).",
                 f"event {share}({params}, r: Remembered)", "\t{",
                 "\tif ( Cluster::local_node_type() == Cluster::MANAGER )",
                 f"\t\tCluster::publish(Cluster::worker_topic, {share}, {keys}, r);", "\telse",
                 f"\t\tkeep_{base}({keys}, r);", "\t}", ""]
        for event in comp.events:
            body = handlers.setdefault(event, [])
            call = f"remember_{base}({comp.key}, remember({comp.value}));"
            body += [f"\tif ( {comp.when} )", f"\t\t{call}"] if comp.when else [f"\t{call}"]
    for event, body in handlers.items():
        code += [f"event {event}", "\t{", *body, "\t}", ""]
    code += ["# What the tables remember of c's endpoints, into its state.", "function recall(c: connection)", "\t{",
             "\tif ( ! c?$cato )", f"\t\tc$cato = {new_state};", "\tlocal s = c$cato;",
             "\tif ( s$next_depth >= |depths| )", "\t\treturn;", "\tlocal r: Remembered;"]
    for src in sources:
        comp = src.computation
        table = f"remembered_{base_of(src)}"
        found = f"[{comp.lookup}] in {table}"
        code += [f"\tdelete s${src.name};", f"\tif ( {comp.has + ' && ' if comp.has else ''}{found} )", "\t\t{",
                 f"\t\tr = {table}[{comp.lookup}];", f"\t\tif ( network_time() - r$seen <= {comp.memory} )",
                 "\t\t\t{", f"\t\t\ts${src.name} = r$value;", f"\t\t\ts${src.name}_at = 0;"]
        if src.name in lengths:
            code.append(f"\t\t\ts${src.name}_len = r$len;")
        code += ["\t\t\t}", "\t\t}"]
    code += ["\t}", "",
             "# Before the handlers that may make the connection's first vector.",
             "event new_connection(c: connection) &priority=5", "\t{", "\trecall(c);", "\t}", "",
             "event connection_flipped(c: connection) &priority=5", "\t{", "\trecall(c);", "\t}", ""]
    return code


def _fill_value(f: Feature) -> tuple[str, str]:
    """(condition, Zeek expression) of a feature at emission."""
    comp = f.computation
    if isinstance(comp, ConnExpr):
        return comp.applies, comp.expr
    rec = {"orig": "o", "resp": "r"}.get(f.direction, "s")
    if isinstance(comp, FlagCount):
        return "", f"{rec}${comp.flag}"
    if isinstance(comp, Handshake):
        cond = f"s?$hs_{comp.start} && s?$hs_{comp.end}"
        return cond, f"interval_to_double(s$hs_{comp.end} - s$hs_{comp.start})"
    assert isinstance(comp, PacketStat)
    prefix = comp.quantity + ("_flow" if f.direction == "both" else "")
    p = f"{rec}${prefix}"
    has = f"{p}_n > 0"
    expr = {
        "sum": f"{p}_sum", "mean": f"{p}_mean", "min": f"{p}_min", "max": f"{p}_max",
        "median": f"Cato::median({p}_vals)", "std": f"sqrt({p}_m2 / {p}_n)",
        "first": f"{p}_first", "count": f"{p}_pos",
    }[comp.stat]
    if comp.stat == "first":
        has = f"{rec}?${prefix}_first"
    if comp.stat == "count":
        return "", expr
    if f.dtype == "count":
        expr = f"double_to_count({expr})"
    return has, expr


def _info_fields(features: Sequence[Feature]) -> list[str]:
    out = []
    for f in features:
        out.append(f"\t\t## {f.description}.")
        default = ""
        if f.not_applicable is None:
            default = "&optional"
        else:
            default = f"&default={f.not_applicable}"
        out.append(f"\t\t{f.name}: {ZEEK_TYPES[f.dtype]} &log {default};")
    return out


def _fill_hook(features: Sequence[Feature], plan: _Plan | None) -> list[str]:
    lines = ["hook Cato::fill_vector(c: connection, info: Cato::Info)", "\t{"]
    if plan is not None and any(f.per_packet for f in features):
        lines.append("\tlocal s = c$cato;")
        if plan.per_direction:
            lines += [
                "\t# Which endpoint is the originator is Zeek's final word on the roles.",
                "\tlocal a_is_orig = ! s?$a_h || (c$id$orig_h == c$id$resp_h ? s$a_p == c$id$orig_p "
                ": s$a_h == c$id$orig_h);",
                "\tlocal o = a_is_orig ? s$a : s$b;",
                "\tlocal r = a_is_orig ? s$b : s$a;",
            ]
    for f in features:
        if f.analyzer_field is not None:
            continue  # filled by the analyzer part's own hook
        cond, expr = _fill_value(f)
        if cond:
            lines.append(f"\tif ( {cond} )")
            lines.append(f"\t\tinfo${f.name} = {expr};")
        else:
            lines.append(f"\tinfo${f.name} = {expr};")
    lines.append("\t}")
    return lines


def _header(features: Sequence[Feature], depths: tuple[int, ...], strategy: str,
            deadline: float | None) -> list[str]:
    names = ",".join(f.name for f in features)
    return [
        f"##! Generated by cato {__version__} (catalog {catalog_hash()}); do not edit.",
        f"##! features ({len(features)}): {names}",
        f"##! depths: {','.join(map(str, depths))}; strategy: {strategy}"
        + (f"; deadline: {deadline * 1e3:g} ms" if deadline else ""),
    ]


def _generate_native(features: Sequence[Feature], depths: tuple[int, ...], deadline: float | None,
                     module: str) -> GeneratedScript:
    out = [
        *_header(features, depths, "native", deadline),
        f"##! Needs cato's Zeek plugin ({PLUGIN_NAME}): zkg installs it with cato; from a checkout,",
        "##! `make setup` builds it into plugin/build (ZEEK_PLUGIN_PATH=plugin/build).",
        "##! It carries cato's static scripts, which Zeek uses only where cato was not loaded before it.",
        "",
        f"@load-plugin {PLUGIN_NAME}",
        "",
        *_module_preamble(features, depths, deadline),
    ]
    out += native_body(features, depths, module)
    return GeneratedScript(in_module("\n".join(out) + "\n", module), tuple(features), depths, "native", deadline,
                           "native")


def _module_preamble(features: Sequence[Feature], depths: tuple[int, ...], deadline: float | None,
                     extra_columns: Sequence[str] = ()) -> list[str]:
    """What every generated script says after its header, whatever the engine: the analyzers its
    features need, cato's static scripts, the vector's feature columns, the depths and the deadline."""
    scripts = sorted({f.analyzer_field.scripts for f in features if f.analyzer_field is not None})
    out = [
        *(["# The protocol analyzers the features read (loaded already where Zeek runs its default scripts)."]
          + [f"@load {script}" for script in scripts] + [""] if scripts else []),
        embedded_static_part(),
        "module Cato;",
        "",
        "export {",
        "\tredef record Info += {",
        *_info_fields(features),
        *extra_columns,
        "\t};",
        "}",
        "",
        f"redef depths = vector({', '.join(map(str, depths))});",
        "redef has_features = T;",
    ]
    if deadline:
        out.append(f"redef decision_deadline = {round(deadline * 1e6)}usec;")
    return out


def generate(features: Sequence[Feature], depths: int | Iterable[int], strategy: str = "auto",
             deadline: float | None = None, engine: str = "script", *,
             input_positions: bool = False, module: str = MODULE,
             vocabularies: Mapping[str, Sequence[bytes]] | None = None, raw_strings: bool = True) -> GeneratedScript:
    """Generate the Zeek script for ``features`` emitting a vector at each of ``depths``, and at the
    latest ``deadline`` seconds after a connection's first packet, computed by ``engine``. With
    ``input_positions`` each vector also logs ``packet_index``, the position in Zeek's input of the
    packet it was made at (for datasets that derive deadline vectors; see ``cato.dataset.multidepth``;
    the script engine only). ``module``: the Zeek module the script is in, ``Cato`` or a compiled
    package's own (its static part moved there too: see :func:`cato.codegen.static.in_module`).
    ``vocabularies``: per vocabulary-coded feature (``*_code``), its values in code order (1, 2, ...),
    as the bytes Zeek sees; a feature without one codes every value 0 (profiling, extraction).
    ``raw_strings``: each vector also carries the strings its codes and lengths were made from (a
    feature table shows what the model saw); a compiled package's vectors carry numbers only."""
    if not features:
        raise GeneratorError("no features selected")
    if deadline is not None and not deadline > 0:
        raise GeneratorError(f"the deadline must be positive, not {deadline!r}")
    if engine not in ENGINES:
        raise GeneratorError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "native":
        analyzed = [f.name for f in features if f.analyzer_field is not None]
        if analyzed:
            raise GeneratorError(f"the native engine computes no analyzer feature ({', '.join(analyzed)}): "
                                 "use the script engine")
        if strategy not in ("auto", "native"):
            raise GeneratorError(f"the native engine has no strategy {strategy!r}: the plugin computes every feature")
        if input_positions:
            raise GeneratorError("input positions (packet_index) are the script engine's: extract datasets with it")
        return _generate_native(features, normalize_depths(depths), deadline, module)
    # Armed at a connection's first packet; the vectors it makes say so (decided_by DEADLINE).
    arm_deadline = ["\tschedule decision_deadline { deadline_passed(c) };"] if deadline else []
    depths_t = normalize_depths(depths)
    strategy = choose_strategy(features, depths_t, strategy)
    if strategy == "new_packet" and any(f.analyzer_field is not None for f in features):
        raise GeneratorError("analyzer features date their values by ConnSize's packet count, which the "
                             "new_packet strategy does not follow: use thresholds (auto)")
    plan = _Plan(features)
    per_packet_script = strategy in ("new_packet", "thresholds")
    has_conn_features = any(isinstance(f.computation, ConnExpr) for f in features)
    new_state = "State($a=Dir(), $b=Dir())" if plan.per_direction else "State()"
    analyzer_state, analyzer_columns, analyzer_code = _analyzer_part(features, new_state, dict(vocabularies or {}),
                                                                     raw_strings)

    out: list[str] = [
        *_header(features, depths_t, strategy, deadline),
        "##! Runs as is (zeek -r trace.pcap this.zeek): it carries cato's static scripts, which Zeek",
        "##! uses only where cato (its zkg package, or zeek-scripts/) was not loaded before it.",
        "",
        *_module_preamble(features, depths_t, deadline, analyzer_columns),
    ]
    if plan.per_direction:
        out += ["", "# Per-direction state: one record for each endpoint.", "type Dir: record {",
                *("\t" + f for f in _dir_fields(plan)), "};"]
    state = _state_fields(plan)
    if strategy == "thresholds":
        state.append("## ConnSize's packet total when the script last observed a packet.")
        state.append("taken: count &default=0;")
    state += analyzer_state
    if state:
        out += ["", "redef record State += {", *("\t" + f for f in state), "};"]
    out.append("")

    if strategy == "counters":
        out += [
            f"redef ConnThreshold::generic_packet_thresholds += {{ {', '.join(map(str, depths_t))} }};",
            "",
            "# Zeek's connection counters reach a depth: no per-packet script work at all.",
            "event conn_generic_packet_threshold_crossed(c: connection, threshold: count)",
            "\t{",
            "\tif ( ! c?$cato )",
            "\t\tc$cato = State();",
            "\tc$cato$pkts = threshold;",
            "\tpacket_seen(c, c$cato);",
            "\t}",
            "",
        ]
        if deadline:
            out += ["event new_connection(c: connection)", "\t{", *arm_deadline, "\t}", ""]
    else:
        out += ["redef script_counts_packets = T;", ""]
        header_type = "pkt_hdr" if strategy == "new_packet" else "raw_pkt_hdr"
        out += _observe_function(plan, header_type)
        out.append("")
        # Features read from the connection record need it as Zeek has it after this packet.
        conn = "current(c)" if has_conn_features else "c"
        out += [
            "# Counts the packet and emits the vector of every depth it completes.",
            f"function count_packet(c: connection, s: State, p: {header_type})",
            "\t{",
            "\tobserve(c, s, p);",
            "\t++s$pkts;",
            "\tif ( s$pkts >= depths[s$next_depth] )",
            f"\t\tpacket_seen({conn}, s);",
            "\t}",
            "",
        ]
        if strategy == "new_packet":
            out += [
                "event new_packet(c: connection, p: pkt_hdr)",
                "\t{",
                "\tif ( ! c?$cato )",
                "\t\t{",
                f"\t\tc$cato = {new_state};",
                *("\t" + line for line in arm_deadline),
                "\t\t}",
                "\tlocal s = c$cato;",
                "\tif ( s$next_depth >= |depths| )",
                "\t\treturn;",
                "\tcount_packet(c, s, p);",
                *(["\tif ( s$past_deadline )", "\t\tdecide_at_deadline(current(c));"] if deadline else []),
                "\t}",
                "",
            ]
            if deadline:
                out += ["# The deadline's packet is this connection's: decide once new_packet has seen it.",
                        "hook catch_up(c: connection, s: State)", "\t{", "\ts$past_deadline = T;", "\tbreak;",
                        "\t}", ""]
        else:
            out += [
                "# Asks ConnSize for the next packet of one direction; after the last depth",
                "# nothing is armed and no script code runs for this connection again.",
                "function arm(c: connection, s: State, is_orig: bool)",
                "\t{",
                "\tif ( s$next_depth < |depths| )",
                "\t\tset_current_conn_packets_threshold(c$id, 1 + (is_orig ? c$orig$num_pkts : c$resp$num_pkts), is_orig);",
                "\t}",
                "",
                "# Observes the current packet unless it was already: ConnSize's packet total tells.",
                "function take(c: connection, s: State)",
                "\t{",
                "\tlocal total = c$orig$num_pkts + c$resp$num_pkts;",
                "\tif ( total <= s$taken || s$next_depth >= |depths| )",
                "\t\treturn;",
                "\ts$taken = total;",
                "\tcount_packet(c, s, get_current_packet_header());",
                "\t}",
                "",
                "event new_connection(c: connection)",
                "\t{",
                "\tif ( ! c?$cato )  # made already where a remembered value was recalled",
                f"\t\tc$cato = {new_state};",
                *arm_deadline,
                "\tif ( get_port_transport_proto(c$id$resp_p) == icmp )",
                "\t\treturn;  # ICMP packets come from the ICMP events (icmp.zeek, icmp_packet below)",
                "\t# ConnSize counted the packet after this event was queued: read its counters as they are now.",
                "\tlocal now = current(c);",
                "\ttake(now, now$cato);",
                "\tarm(now, now$cato, T);",
                "\tarm(now, now$cato, F);",
                "\t}",
                "",
                "event conn_packets_threshold_crossed(c: connection, threshold: count, is_orig: bool)",
                "\t{",
                "\tif ( ! c?$cato )",
                "\t\treturn;",
                "\ttake(c, c$cato);",
                "\tarm(c, c$cato, is_orig);",
                "\t}",
                "",
                *(["# The deadline's packet is this connection's: take it before deciding.",
                   "hook catch_up(c: connection, s: State)", "\t{", "\ttake(c, s);", "\t}", ""] if deadline else []),
                "redef icmp_by_events = T;",
                "",
                "hook icmp_packet(c: connection)",
                "\t{",
                "\tif ( c?$cato && c$cato$next_depth < |depths| )",
                "\t\tcount_packet(c, c$cato, get_current_packet_header());",
                "\t}",
                "",
                "# ConnSize swaps its counters but not its thresholds when Zeek flips the roles, and",
                "# the packet that made Zeek flip may have crossed none: take it and re-arm both.",
                "event connection_flipped(c: connection)",
                "\t{",
                "\tif ( ! c?$cato || get_port_transport_proto(c$id$resp_p) == icmp )",
                "\t\treturn;",
                "\tlocal now = current(c);",
                "\ttake(now, now$cato);",
                "\tarm(now, now$cato, T);",
                "\tarm(now, now$cato, F);",
                "\t}",
                "",
            ]
    out += analyzer_code
    out += _fill_hook(features, plan if per_packet_script else None)
    if input_positions:
        out += ["", "redef record Info += {",
                "	## Packets Zeek had read when this vector was made: the input position of its packet.",
                "	packet_index: count &optional &log;", "};", "",
                "hook fill_vector(c: connection, info: Info)", "	{",
                "	info$packet_index = get_net_stats()$pkts_recvd;", "	}"]
    return GeneratedScript(in_module("\n".join(out) + "\n", module), tuple(features), depths_t, strategy, deadline)
