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

``auto`` picks the cheapest for the selection as measured in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from cato import __version__
from cato.features.catalog import (
    HANDSHAKE_SPANS,
    TCP_FLAG_BITS,
    ConnExpr,
    Feature,
    FlagCount,
    Handshake,
    PacketStat,
    catalog_hash,
)

STRATEGIES = ("auto", "counters", "new_packet", "thresholds")
ZEEK_TYPES = {"count": "count", "double": "double", "string": "string"}


class GeneratorError(ValueError):
    pass


@dataclass(frozen=True)
class GeneratedScript:
    text: str
    features: tuple[Feature, ...]
    depths: tuple[int, ...]
    strategy: str

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
    # Measured on both dev corpora (benchmarks/RESULTS.md): re-armed thresholds cost less than a
    # new_packet handler that sees every packet, because most packets lie past the last depth.
    return "thresholds"


# --- accumulators -------------------------------------------------------------------------------

@dataclass
class _Acc:
    """Running statistics of one quantity in one direction, as fields of Cato::State."""

    quantity: str
    direction: str  # orig | resp | flow
    parts: set[str] = field(default_factory=set)  # n sum mean m2 min max vals first pos

    @property
    def prefix(self) -> str:
        return f"{self.quantity}_{self.direction}"


_STAT_PARTS = {
    "sum": {"n", "sum"}, "mean": {"n", "mean"}, "std": {"n", "mean", "m2"}, "min": {"n", "min"},
    "max": {"n", "max"}, "median": {"n", "vals"}, "first": {"first"}, "count": {"pos"},
}


class _Plan:
    """What the per-packet code must track for a selection."""

    def __init__(self, features: Sequence[Feature]):
        self.accs: dict[tuple[str, str], _Acc] = {}
        self.flags: set[tuple[str, str]] = set()
        self.marks: set[str] = set()
        for f in features:
            comp = f.computation
            d = "flow" if f.direction == "both" else f.direction
            if isinstance(comp, PacketStat):
                acc = self.accs.setdefault((comp.quantity, d), _Acc(comp.quantity, d))
                acc.parts |= _STAT_PARTS[comp.stat]
            elif isinstance(comp, FlagCount):
                self.flags.add((d, comp.flag))
            elif isinstance(comp, Handshake):
                self.marks.update((comp.start, comp.end))
        # Marks depend on earlier marks.
        if "ack" in self.marks or "data" in self.marks:
            self.marks.update({"synack", "ack"})
        if "data" in self.marks:
            self.marks.add("ack")
        self.quantities = {q for q, _ in self.accs}
        self.iat_dirs = sorted({d for q, d in self.accs if q == "iat"})

    @property
    def needs_now(self) -> bool:
        return "iat" in self.quantities or bool(self.marks)

    @property
    def needs_flags(self) -> bool:
        return bool(self.flags) or bool(self.marks)

    @property
    def needs_payload(self) -> bool:
        return "payload" in self.quantities or "data" in self.marks


def _state_fields(plan: _Plan) -> list[str]:
    out: list[str] = []
    for acc in plan.accs.values():
        p = acc.prefix
        if "n" in acc.parts:
            out.append(f"{p}_n: count &default=0;")
        for part in ("sum", "mean", "m2"):
            if part in acc.parts:
                out.append(f"{p}_{part}: double &default=0.0;")
        for part in ("min", "max", "first"):
            if part in acc.parts:
                out.append(f"{p}_{part}: double &optional;")
        if "vals" in acc.parts:
            out.append(f"{p}_vals: vector of double &default=vector();")
        if "pos" in acc.parts:
            out.append(f"{p}_pos: count &default=0;")
    for d in plan.iat_dirs:
        out.append(f"last_ts_{d}: time &optional;")
    for d, flag in sorted(plan.flags):
        out.append(f"{d}_{flag}: count &default=0;")
    for mark in sorted(plan.marks):
        out.append(f"hs_{mark}: time &optional;")
    return out


def _acc_update(acc: _Acc, value: str, indent: str) -> list[str]:
    """Zeek statements folding ``value`` (a double expression) into ``acc``."""
    p = f"s${acc.prefix}"
    lines: list[str] = []
    if "first" in acc.parts:
        lines.append(f"if ( ! s?${acc.prefix}_first ) {p}_first = {value};")
    if "pos" in acc.parts:
        lines.append(f"if ( {value} > 0.0 ) ++{p}_pos;")
    if "n" in acc.parts:
        lines.append(f"++{p}_n;")
    if "sum" in acc.parts:
        lines.append(f"{p}_sum += {value};")
    if "mean" in acc.parts:
        delta = f"delta_{acc.prefix}"
        lines.append(f"local {delta} = {value} - {p}_mean;")
        lines.append(f"{p}_mean += {delta} / {p}_n;")
        if "m2" in acc.parts:
            lines.append(f"{p}_m2 += {delta} * ({value} - {p}_mean);")
    if "min" in acc.parts:
        lines.append(f"if ( ! s?${acc.prefix}_min || {value} < {p}_min ) {p}_min = {value};")
    if "max" in acc.parts:
        lines.append(f"if ( ! s?${acc.prefix}_max || {value} > {p}_max ) {p}_max = {value};")
    if "vals" in acc.parts:
        lines.append(f"{p}_vals[|{p}_vals|] = {value};")
    return [indent + line for line in lines]


def _direction_updates(plan: _Plan, direction: str, indent: str) -> list[str]:
    lines: list[str] = []
    for (q, d), acc in sorted(plan.accs.items()):
        if d != direction:
            continue
        if q == "iat":
            last = f"s$last_ts_{d}"
            inner = _acc_update(acc, f"iat_{d}", indent + "\t")
            lines.append(f"{indent}if ( s?$last_ts_{d} )")
            lines.append(f"{indent}\t{{")
            lines.append(f"{indent}\tlocal iat_{d} = interval_to_double(now - {last});")
            lines.extend(inner)
            lines.append(f"{indent}\t}}")
            lines.append(f"{indent}{last} = now;")
        elif q == "win":
            lines.append(f"{indent}if ( p?$tcp )")
            lines.append(f"{indent}\t{{")
            lines.extend(_acc_update(acc, "win", indent + "\t"))
            lines.append(f"{indent}\t}}")
        else:
            value = {"size": "size", "ttl": "ttl", "payload": "payload"}[q]
            lines.extend(_acc_update(acc, value, indent))
    flags = sorted(flag for d, flag in plan.flags if d == direction)
    if flags:
        lines.append(f"{indent}if ( p?$tcp )")
        lines.append(f"{indent}\t{{")
        for flag in flags:
            lines.append(f"{indent}\tif ( (flags & {TCP_FLAG_BITS[flag]}) != 0 ) ++s${direction}_{flag};")
        lines.append(f"{indent}\t}}")
    return lines


def _observe_function(plan: _Plan, header_type: str) -> list[str]:
    q = plan.quantities
    body: list[str] = []
    t = "\t"
    if plan.needs_now:
        body.append(f"{t}local now = network_time();")
    body.append(f"{t}local is_orig = T;")
    need_size = "size" in q
    need_ttl = "ttl" in q
    if need_size:
        body.append(f"{t}local size = 0.0;")
    if need_ttl:
        body.append(f"{t}local ttl = 0.0;")
    body.append(f"{t}if ( p?$ip )")
    body.append(f"{t}\t{{")
    body.append(f"{t}\tis_orig = p$ip$src == c$id$orig_h;")
    if need_size:
        body.append(f"{t}\tsize = p$ip$len;")
    if need_ttl:
        body.append(f"{t}\tttl = p$ip$ttl;")
    body.append(f"{t}\t}}")
    body.append(f"{t}else if ( p?$ip6 )")
    body.append(f"{t}\t{{")
    body.append(f"{t}\tis_orig = p$ip6$src == c$id$orig_h;")
    if need_size:
        body.append(f"{t}\tsize = p$ip6$len + 40;")
    if need_ttl:
        body.append(f"{t}\tttl = p$ip6$hlim;")
    body.append(f"{t}\t}}")
    body.append(f"{t}# A connection to itself: tell the directions apart by port.")
    body.append(f"{t}if ( c$id$orig_h == c$id$resp_h )")
    body.append(f"{t}\tis_orig = (p?$tcp && p$tcp$sport == c$id$orig_p) || "
                f"(p?$udp && p$udp$sport == c$id$orig_p);")
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

    body.append(f"{t}if ( is_orig )")
    body.append(f"{t}\t{{")
    body.extend(_direction_updates(plan, "orig", t + "\t"))
    body.append(f"{t}\t}}")
    body.append(f"{t}else")
    body.append(f"{t}\t{{")
    body.extend(_direction_updates(plan, "resp", t + "\t"))
    body.append(f"{t}\t}}")
    body.extend(_direction_updates(plan, "flow", t))

    if plan.marks:
        body.append(f"{t}if ( p?$tcp )")
        body.append(f"{t}\t{{")
        body.append(f"{t}\tlocal syn = (flags & 2) != 0;")
        body.append(f"{t}\tlocal ack = (flags & 16) != 0;")
        body.append(f"{t}\tif ( is_orig && syn && ! ack && ! s?$hs_syn ) s$hs_syn = now;")
        body.append(f"{t}\tif ( ! is_orig && syn && ack && ! s?$hs_synack ) s$hs_synack = now;")
        body.append(f"{t}\tif ( is_orig && ack && ! syn && s?$hs_synack && ! s?$hs_ack ) s$hs_ack = now;")
        if "data" in plan.marks:
            body.append(f"{t}\tif ( payload > 0.0 && s?$hs_ack && ! s?$hs_data ) s$hs_data = now;")
        body.append(f"{t}\t}}")
    # Drop blank-bodied blocks for directions with nothing to track.
    return ([f"# Folds one packet of the first depths into the connection's state.",
             f"function observe(c: connection, s: Cato::State, p: {header_type})", "\t{"]
            + body + ["\t}"])


def _fill_value(f: Feature) -> tuple[str, str]:
    """(condition, Zeek expression) of a feature at emission."""
    comp = f.computation
    d = "flow" if f.direction == "both" else f.direction
    if isinstance(comp, ConnExpr):
        return comp.applies, comp.expr
    if isinstance(comp, FlagCount):
        return "", f"s${d}_{comp.flag}"
    if isinstance(comp, Handshake):
        cond = f"s?$hs_{comp.start} && s?$hs_{comp.end}"
        return cond, f"interval_to_double(s$hs_{comp.end} - s$hs_{comp.start})"
    assert isinstance(comp, PacketStat)
    p = f"s${comp.quantity}_{d}"
    has = f"{p}_n > 0"
    as_count = f.dtype == "count"
    expr = {
        "sum": f"{p}_sum", "mean": f"{p}_mean", "min": f"{p}_min", "max": f"{p}_max",
        "median": f"Cato::median({p}_vals)", "std": f"sqrt({p}_m2 / {p}_n)",
        "first": f"{p}_first", "count": f"{p}_pos",
    }[comp.stat]
    if comp.stat == "first":
        has = f"s?${comp.quantity}_{d}_first"
    if comp.stat == "count":
        return "", expr
    if as_count:
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


def _fill_hook(features: Sequence[Feature], per_packet: bool) -> list[str]:
    lines = ["hook Cato::fill_vector(c: connection, info: Cato::Info)", "\t{"]
    if per_packet and any(f.per_packet for f in features):
        lines.append("\tlocal s = c$cato;")
    for f in features:
        cond, expr = _fill_value(f)
        if cond:
            lines.append(f"\tif ( {cond} )")
            lines.append(f"\t\tinfo${f.name} = {expr};")
        else:
            lines.append(f"\tinfo${f.name} = {expr};")
    lines.append("\t}")
    return lines


def generate(features: Sequence[Feature], depths: int | Iterable[int], strategy: str = "auto") -> GeneratedScript:
    """Generate the Zeek script for ``features`` emitting a vector at each of ``depths``."""
    if not features:
        raise GeneratorError("no features selected")
    depths_t = normalize_depths(depths)
    strategy = choose_strategy(features, depths_t, strategy)
    plan = _Plan(features)
    per_packet_script = strategy in ("new_packet", "thresholds")
    has_conn_features = any(isinstance(f.computation, ConnExpr) for f in features)
    names = ",".join(f.name for f in features)

    out: list[str] = [
        f"##! Generated by cato {__version__} (catalog {catalog_hash()}); do not edit.",
        f"##! features ({len(features)}): {names}",
        f"##! depths: {','.join(map(str, depths_t))}; strategy: {strategy}",
        "##! Load after the cato package (zeek-scripts/).",
        "",
        "module Cato;",
        "",
        "export {",
        "\tredef record Info += {",
        *_info_fields(features),
        "\t};",
        "}",
        "",
        f"redef depths = vector({', '.join(map(str, depths_t))});",
    ]
    state = _state_fields(plan)
    if state:
        out += ["", "redef record State += {", *("\t" + s for s in state), "};"]
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
    else:
        out += ["redef script_counts_packets = T;", ""]
        header_type = "pkt_hdr" if strategy == "new_packet" else "raw_pkt_hdr"
        out += _observe_function(plan, header_type)
        out.append("")
        refresh = []
        if has_conn_features:
            refresh = [
                "\t\t# Zeek updates the connection record after packet events: refresh it.",
                "\t\tlookup_connection(c$id);",
            ]
        out += [
            "# Counts the packet and emits the vector of every depth it completes.",
            f"function count_packet(c: connection, s: State, p: {header_type})",
            "\t{",
            "\tobserve(c, s, p);",
            "\t++s$pkts;",
            "\tif ( s$pkts >= depths[s$next_depth] )",
            "\t\t{",
            *refresh,
            "\t\tpacket_seen(c, s);",
            "\t\t}",
            "\t}",
            "",
        ]
        if strategy == "new_packet":
            out += [
                "event new_packet(c: connection, p: pkt_hdr)",
                "\t{",
                "\tif ( ! c?$cato )",
                "\t\tc$cato = State();",
                "\tlocal s = c$cato;",
                "\tif ( s$next_depth >= |depths| )",
                "\t\treturn;",
                "\tcount_packet(c, s, p);",
                "\t}",
                "",
            ]
        else:
            out += [
                "# Asks ConnSize for the next packet of the direction just seen; after the last",
                "# depth nothing is armed and no script code runs for this connection again.",
                "function arm(c: connection, s: State, is_orig: bool, next: count)",
                "\t{",
                "\tif ( s$next_depth < |depths| )",
                "\t\tset_current_conn_packets_threshold(c$id, next, is_orig);",
                "\t}",
                "",
                "event new_connection(c: connection)",
                "\t{",
                "\tlocal s = State();",
                "\tc$cato = s;",
                "\tlocal p = get_current_packet_header();",
                "\tcount_packet(c, s, p);",
                "\t# The first packet may be the responder's when Zeek flipped the roles.",
                "\tlocal first_orig = ! (p?$ip && p$ip$src != c$id$orig_h) && "
                "! (p?$ip6 && p$ip6$src != c$id$orig_h);",
                "\tarm(c, s, T, first_orig ? 2 : 1);",
                "\tarm(c, s, F, first_orig ? 1 : 2);",
                "\t}",
                "",
                "event conn_packets_threshold_crossed(c: connection, threshold: count, is_orig: bool)",
                "\t{",
                "\tif ( ! c?$cato || c$cato$next_depth >= |depths| )",
                "\t\treturn;",
                "\tcount_packet(c, c$cato, get_current_packet_header());",
                "\tarm(c, c$cato, is_orig, threshold + 1);",
                "\t}",
                "",
            ]
    out += _fill_hook(features, per_packet_script)
    return GeneratedScript("\n".join(out) + "\n", tuple(features), depths_t, strategy)
