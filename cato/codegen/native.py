"""The native engine's script: cato's Zeek plugin (``plugin/``) computes the features in C++.

The script configures the plugin once, at start-up, with one spec per selected feature, derived
from the feature's catalog computation (the plugin implements the computation *kinds*: running
statistics of per-packet quantities, TCP flag counts, handshake spans, connection counters), and
turns each ``Cato::native_vector`` event into a ``Cato::Info`` record that cato's static scripts
log and publish as they do for the script engine. No per-packet or per-connection script code
runs: the event carries no connection record.
"""

from __future__ import annotations

from typing import Sequence

from cato.features.catalog import TCP_FLAG_BITS, ConnExpr, Feature, FlagCount, Handshake, PacketStat

#: The plugin's name, as ``zeek -N`` lists it.
PLUGIN_NAME = "Cato::Native"

_SIDES = {"orig": "orig", "resp": "resp", "both": "both"}


class NativeSpecError(ValueError):
    pass


def native_spec(f: Feature) -> str:
    """The plugin's spec for one feature (see ``Config::Parse`` in ``plugin/src/Extractor.cc``)."""
    comp = f.computation
    if isinstance(comp, PacketStat):
        return f"stat {comp.quantity} {comp.stat} {_SIDES[f.direction]}"
    if isinstance(comp, FlagCount):
        return f"flag {TCP_FLAG_BITS[comp.flag]} {f.direction}"
    if isinstance(comp, Handshake):
        return f"span {comp.start} {comp.end}"
    if isinstance(comp, ConnExpr) and comp.native:
        return comp.native
    raise NativeSpecError(f"feature {f.name} has no native computation in the catalog")


def _zeek_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def native_body(features: Sequence[Feature], depths: Sequence[int]) -> list[str]:
    """The Zeek lines after the ``Info`` columns and the depths: configuration and emission."""
    specs = [native_spec(f) for f in features]
    numeric = [f for f in features if f.dtype != "string"]
    strings = [f for f in features if f.dtype == "string"]
    out = [
        "redef native_engine = T;",
        "",
        "# One computation per feature, in the order of the vectors' values (strings apart).",
        "const native_specs: string_vec = vector(",
        *(f"\t{_zeek_string(s)},  # {f.name}" for s, f in zip(specs, features)),
        ");",
        "",
        "event zeek_init()",
        "\t{",
        "\tif ( ! native_configure(depths, native_specs, decision_deadline) )",
        "\t\tReporter::fatal(\"cato: the native engine refused its configuration\");",
        "\t}",
        "",
        "# One vector, computed by the plugin: values in the order of native_specs (NaN: does not apply).",
        "event native_vector(ts: time, uid: string, id: conn_id, depth: count, pkts_seen: count,",
        "                    decided_after: interval, decided_by: count, v: double_vec, s: string_vec)",
        "\t{",
        "\tlocal info = Info($ts=ts, $uid=uid, $id=id, $proto=get_port_transport_proto(id$resp_p),",
        "\t                  $depth=depth, $pkts_seen=pkts_seen, $decided_after=decided_after,",
        "\t                  $decided_by=decisions[decided_by]);",
    ]
    for i, f in enumerate(numeric):
        value = f"double_to_count(v[{i}])" if f.dtype == "count" else f"v[{i}]"
        # NaN, the value of a feature that does not apply, is the one double unequal to itself.
        out.append(f"\tif ( v[{i}] == v[{i}] ) info${f.name} = {value};")
    for i, f in enumerate(strings):
        out.append(f"\tinfo${f.name} = s[{i}];")
    out += ["\toutput(info);", "\t}"]
    return out
