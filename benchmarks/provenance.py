"""Where a benchmark's figures come from: written into its JSON when it runs, read back when RESULTS.md is rendered.

Every results file that RESULTS.md quotes carries ``date`` and ``commit`` (the code that measured it,
``+dirty`` when the tree had uncommitted changes). ``stamp()`` makes them; ``measured()`` reads them
back for a table's source line, and refuses a file without them, so no table can hide its commit.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def git_commit() -> str:
    """The checked-out commit, short, with ``+dirty`` when tracked files differ from it."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def stamp(**machine: str) -> dict:
    """The provenance fields of a results file: date, commit, the command line and the machine."""
    return {"date": dt.date.today().isoformat(), "commit": git_commit(),
            "command": shlex.join(["python", os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
            "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), **machine}}


def load(name: str, results: Path = RESULTS) -> dict:
    """A results file, refused (ValueError naming it) unless it says when and at which commit it was measured."""
    path = results / name
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not data.get("date") or not data.get("commit"):
        raise ValueError(f"{path}: no 'date' and 'commit': a table cannot say where its figures come from "
                         "(re-run its benchmark, which stamps them)")
    return data


def measured(*names: str, results: Path = RESULTS) -> str:
    """A table's source line: when and at which commit each of its results files was measured."""
    stamps: dict[tuple[str, str], list[str]] = {}
    for name in names:
        data = load(name, results)
        stamps.setdefault((data["date"], data["commit"]), []).append(f"`{name}`")
    return "; ".join(f"{date}, commit {commit}: {', '.join(files)}" for (date, commit), files in stamps.items())
