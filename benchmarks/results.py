"""RESULTS.md's tables, rendered from ``benchmarks/results/*.json`` by the benchmarks' own code.

    python benchmarks/results.py            # rewrite every table of RESULTS.md from the JSON
    python benchmarks/results.py --check    # exit 1, naming each table that differs from its JSON

RESULTS.md marks each generated table, with its source line (the date and commit each results file
was measured at), as a block:

    <!-- table: NAME -->
    ...
    <!-- /table -->

The prose around the blocks is written by people. Each benchmark in ``SOURCES`` defines
``results_tables(results: Path) -> dict[str, str]``: its blocks by NAME, from its own results files
(``provenance.load`` refuses a file that does not say when and at which commit it was measured).
A block with no renderer, or a renderer with no block, is an error: every table is generated.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from provenance import RESULTS  # noqa: E402

RESULTS_MD = HERE / "RESULTS.md"
SOURCES = ("extraction_strategies", "tune_protocol", "ablation", "ground_truth", "serve", "parity",
           "deadline_tune", "throughput", "analyzer_features")
BLOCK = re.compile(r"^<!-- table: (?P<name>[\w.-]+) -->\n(?P<body>.*?)^<!-- /table -->$", re.S | re.M)


class ResultsError(Exception):
    """RESULTS.md and the renderers do not name the same tables."""


def rendered(results: Path = RESULTS, sources: tuple[str, ...] = SOURCES) -> dict[str, str]:
    """Every table, by name, from the results files under ``results``."""
    tables: dict[str, str] = {}
    for module in sources:
        for name, text in importlib.import_module(module).results_tables(results).items():
            if name in tables:
                raise ResultsError(f"table {name!r} is rendered twice (again by {module})")
            tables[name] = text.strip("\n")
    return tables


def render(markdown: str, tables: dict[str, str]) -> tuple[str, list[str]]:
    """``markdown`` with every block replaced by its table, and the names of the blocks that changed."""
    names = [m["name"] for m in BLOCK.finditer(markdown)]
    missing = sorted(set(names) - set(tables))
    unused = sorted(set(tables) - set(names))
    repeated = sorted({n for n in names if names.count(n) > 1})
    if missing or unused or repeated:
        raise ResultsError("; ".join(filter(None, (
            missing and f"no renderer for {', '.join(missing)}",
            unused and f"no block in RESULTS.md for {', '.join(unused)}",
            repeated and f"more than one block named {', '.join(repeated)}"))))
    changed = []

    def fill(m: re.Match) -> str:
        body = tables[m["name"]] + "\n"
        if m["body"] != body:
            changed.append(m["name"])
        return f"<!-- table: {m['name']} -->\n{body}<!-- /table -->"

    return BLOCK.sub(fill, markdown), changed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table differs from its JSON")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--markdown", type=Path, default=RESULTS_MD)
    args = ap.parse_args()
    try:
        text, changed = render(args.markdown.read_text(), rendered(args.results))
    except (ResultsError, ValueError, OSError) as e:
        print(f"{args.markdown}: {e}", file=sys.stderr)
        return 2
    if args.check:
        for name in changed:
            print(f"{args.markdown}: table {name} differs from its results file", file=sys.stderr)
        return 1 if changed else 0
    args.markdown.write_text(text)
    print(f"{args.markdown}: {len(changed)} table(s) rewritten" + (f": {', '.join(changed)}" if changed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
