"""Where the package's static Zeek scripts (the zkg script_dir) live."""

from __future__ import annotations

import hashlib
from pathlib import Path

_HERE = Path(__file__).resolve().parent


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
