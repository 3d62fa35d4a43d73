"""The native engine's script: cato's Zeek plugin (``plugin/``) computes the features in C++.

The script configures the plugin once, at start-up, with one spec per selected feature, derived
from the feature's catalog computation (the plugin implements the computation *kinds*: running
statistics of per-packet quantities, TCP flag counts, handshake spans, connection counters) and
the ``Cato::Info`` column each fills. The plugin makes the ``Cato::Info`` records itself and writes,
raises and publishes them as cato's static scripts do for the script engine (same cato.log
columns, same ``Cato::vector_ready`` and ``Cato::vector_batch`` events). No script code runs per
packet, per connection or per vector: batches are published as ``Cluster::publish`` would.
Unlike the script engine, the native engine does not run the ``Cato::fill_vector`` hook (there is
no connection record to give it).
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


def native_body(features: Sequence[Feature], depths: Sequence[int], module: str = "Cato") -> list[str]:
    """The Zeek lines after the ``Info`` columns and the depths: the plugin's configuration. The plugin
    makes the ``Cato::Info`` records itself, logs them, raises ``Cato::vector_ready`` and publishes
    batches on ``Cato::topic`` (``Cato::vector_batch`` records, or ``Cato::vector_block`` compact
    blocks): no script code runs per packet or per vector. ``module``: the one the script's ``Info``
    is in (a compiled package's own; the plugin's functions stay in ``Cato``)."""
    out = [
        "redef native_engine = T;",
        "",
        "# One computation per feature, and the Info column it fills.",
        "const native_specs: string_vec = vector(",
        *(f"\t{_zeek_string(native_spec(f))},  # {f.name}" for f in features),
        ");",
        f"const native_columns: string_vec = vector({', '.join(_zeek_string(f.name) for f in features)});",
        "",
        "event zeek_init()",
        "\t{",
        # A configuration that cannot be read is a reporter error (ending start-up); another package
        # holding the engine, a warning: this one makes no vectors, and Zeek runs on for the other.
        f"\tCato::native_configure({_zeek_string(module)}, depths, native_specs, native_columns, decision_deadline);",
        "\t}",
        "",
        "event zeek_done()",
        "\t{",
        "\tCato::native_flush();",
        "\t}",
    ]
    return out
