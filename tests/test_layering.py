"""The pipeline's layering: every module of ``cato/`` imports only from its own stage or earlier ones.

features → codegen → corpus → zeek → dataset → model → search → study → deploy → cli. The imports
are read from the source (function-level imports included), so a lazy import that points backwards
fails here too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cato"

#: The pipeline, in order. ``cato`` itself (version), ``cato.cache`` and ``cato.executors`` (where work runs)
#: are the foundation.
STAGES = (
    ("cato", "cato.cache", "cato.executors"),
    ("cato.features",),
    ("cato.codegen",),
    ("cato.corpus",),
    ("cato.zeek",),
    ("cato.dataset",),
    ("cato.model",),
    ("cato.search",),
    ("cato.study",),
    ("cato.deploy",),
    ("cato.cli", "cato.__main__"),
)


def stage_of(module: str) -> int:
    """Index of the stage holding ``module``: its longest matching prefix."""
    best, best_len = None, -1
    for i, prefixes in enumerate(STAGES):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    if best is None:
        raise AssertionError(f"{module} belongs to no stage: add it to STAGES")
    return best


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def cato_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of a cato module in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "cato"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "cato":
            out.append((node.lineno, node.module))
    return out


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_stage():
    for path in modules():
        stage_of(module_name(path))


def test_no_module_imports_from_a_later_stage():
    backwards = []
    for path in modules():
        name = module_name(path)
        for line, imported in cato_imports(path):
            if stage_of(imported) > stage_of(name):
                backwards.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {name} imports {imported}")
    assert not backwards, "imports that point up the pipeline:\n" + "\n".join(backwards)


def test_the_checker_sees_a_backward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from cato.study import Study\n")
    assert cato_imports(bad) == [(2, "cato.study")]
    assert stage_of("cato.study") > stage_of("cato.model.onnx")


@pytest.mark.parametrize("module", ["cato.search.pareto", "cato.search.samplers", "cato.search.objectives"])
def test_search_maths_loads_no_zeek_runner(module):
    """Hypervolume and samplers need the objectives' directions, not the evaluator that profiles in Zeek."""
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('cato.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for heavy in ("cato.zeek", "cato.dataset", "cato.search.evaluator", "cato.codegen"):
        assert f"'{heavy}" not in loaded, f"{module} loads {heavy}: {loaded}"
