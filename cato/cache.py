"""cato's on-disk cache (``$CATO_CACHE``, else ``~/.cache/cato``): merged corpus streams, datasets,
profiles and cross-validation scores, each keyed by what it was computed from.

Several processes may fill it at once (two studies on one corpus, a benchmark beside a study), so
every file goes in whole: written under a name of its own, then renamed into place. A reader sees
the complete file or none, and two writers of the same entry both succeed.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable


def default_cache_dir() -> Path:
    return Path(os.environ.get("CATO_CACHE", Path.home() / ".cache" / "cato"))


def private_name(path: Path) -> Path:
    """A sibling of ``path`` that no other process or thread uses."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` whole: ``write`` fills a private file, which then replaces ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = private_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda p: p.write_text(text))
