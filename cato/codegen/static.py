"""Where the package's static Zeek scripts (the zkg script_dir) live."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

_HERE = Path(__file__).resolve().parent

#: The fields of ``Cato::Info`` (zeek-scripts/main.zeek) before the features, in order: a vector
#: published as a record arrives as its field values in this order, then the features in the order
#: of the generated script.
VECTOR_ID_FIELDS = ("ts", "uid", "id", "proto", "depth", "pkts_seen", "decided_after", "decided_by")


def static_scripts_dir() -> Path:
    """The ``zeek-scripts`` directory: in a wheel it is packaged as ``cato/zeek_scripts``."""
    for candidate in (_HERE.parent / "zeek_scripts", _HERE.parent.parent / "zeek-scripts"):
        if (candidate / "__load__.zeek").is_file():
            return candidate
    raise FileNotFoundError("cato's Zeek scripts (zeek-scripts/__load__.zeek) are missing from this install")


def static_load_script() -> Path:
    return static_scripts_dir() / "__load__.zeek"


def static_scripts_sha256() -> str:
    """Hash of the static scripts' text: part of the cache key of everything Zeek computed with them."""
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(static_scripts_dir().glob("*.zeek")))).hexdigest()


def embedded_static_part() -> str:
    """cato's static scripts (those ``__load__.zeek`` loads), guarded so that Zeek uses them only where
    cato was not loaded before: a generated script then runs as is, with or without cato installed."""
    root = static_scripts_dir()
    names = re.findall(r"^@load \./(\S+)", (root / "__load__.zeek").read_text(), re.M)
    parts = ["@ifndef ( Cato::LOG )"]
    for name in names:
        text = (root / f"{name}.zeek").read_text()
        body = "\n".join(line for line in text.splitlines() if not line.startswith("##!")).strip("\n")
        parts += [f"# ---- cato's zeek-scripts/{name}.zeek ----", body]
    parts.append("@endif")
    return "\n".join(parts) + "\n"
