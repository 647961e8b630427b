"""The package's layout rules: lib/ is plain Python without Dagster and without import cycles;
defs/ leaves task differences to the task objects; no module grows past one sitting."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ml_assets"
MAX_LINES = 420


def _imports(path: Path) -> set[str]:
    """Every module an ``import`` in the file names, at any depth (lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _lib_graph() -> dict[str, set[str]]:
    modules = {f"ml_assets.lib.{p.stem}": p for p in (PACKAGE / "lib").glob("*.py")}
    return {name: _imports(path) & set(modules) - {name} for name, path in modules.items()}


def test_lib_never_imports_dagster() -> None:
    offenders = {
        p.name
        for p in (PACKAGE / "lib").glob("*.py")
        if any(m == "dagster" or m.startswith("dagster.") for m in _imports(p))
    }
    assert not offenders


def test_lib_has_no_import_cycle() -> None:
    graph, done, path = _lib_graph(), set(), []

    def visit(module: str) -> None:
        if module in path:
            pytest.fail("import cycle: " + " -> ".join([*path[path.index(module) :], module]))
        if module in done:
            return
        path.append(module)
        for dependency in sorted(graph[module]):
            visit(dependency)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_defs_do_not_branch_on_the_task() -> None:
    branching = [p.name for p in (PACKAGE / "defs").glob("*.py") if "spec.task ==" in p.read_text()]
    assert not branching, "ask the spec's task object (lib/tasks.py) instead"


def test_no_module_is_longer_than_one_sitting() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these modules (over {MAX_LINES} lines): {long}"
