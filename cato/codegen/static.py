"""Where the package's static Zeek scripts (the zkg script_dir) live."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Iterable

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


#: The module of cato's static scripts. A compiled package's scripts take a module of their own
#: (:func:`package_module`), so that several packages run in one Zeek.
MODULE = "Cato"


def package_module(name: str) -> str:
    """The Zeek module of the compiled package named ``name``: ``Cato_`` and the name, each character
    that cannot be in a Zeek name made ``_``."""
    return f"{MODULE}_" + re.sub(r"[^A-Za-z0-9_]", "_", name)


def in_module(text: str, module: str, keep: Iterable[str] = ()) -> str:
    """``text``, Zeek written in module ``Cato``, moved to ``module``: its ``module Cato;`` and its
    names ``Cato::x``, and the connection record's field ``cato`` (one per module). Names that stay in
    ``Cato``: those of cato's plugin (``Cato::Native``, its functions ``Cato::native_*``) and ``keep``
    (what every package on a Zeek shares: see ``cato.deploy.zeek_side``)."""
    if module == MODULE:
        return text
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", module):
        raise ValueError(f"{module!r} is not a Zeek module name")
    kept = "|".join([r"native_\w+", "Native", *map(re.escape, keep)])
    text = re.sub(r"^module Cato;", f"module {module};", text, flags=re.M)
    text = re.sub(rf"\bCato::(?!(?:{kept})\b)", f"{module}::", text)
    field = module[0].lower() + module[1:]
    text = re.sub(r"(\$)cato\b", rf"\g<1>{field}", text)
    return re.sub(r"^(\s*)cato: State\b", rf"\g<1>{field}: State", text, flags=re.M)
