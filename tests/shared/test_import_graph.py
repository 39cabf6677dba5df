"""The import graph of ``main.py``, ``functions/`` and ``shared/`` has no cycles.

Read from the source with ``ast`` (nothing is imported). Every import statement counts: those at module
level AND those inside functions (a function-level import hides a cycle from Python's loader but not
from a reader), and those under ``if TYPE_CHECKING:`` too. ``from a.b import c`` is an edge to the
module ``a.b.c`` when that module exists, else to ``a.b``.
"""

from __future__ import annotations

import ast
from pathlib import Path

from shared.config import ROOT


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _our_modules() -> dict[str, Path]:
    files = [ROOT / "main.py", *sorted((ROOT / "functions").rglob("*.py")), *sorted((ROOT / "shared").rglob("*.py"))]
    return {_module_name(p): p for p in files}


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The modules of ours that ``path`` imports anywhere in its body (module or function level)."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                out.add(candidate if candidate in modules else base)
    return {m for m in out if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    modules = _our_modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path ``[a, b, ..., a]``, or None (an iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for root in sorted(graph):
        if state.get(root):
            continue
        path: list[str] = [root]
        stack = [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_the_import_graph_has_no_cycles() -> None:
    graph = import_graph()
    assert {"main", "functions.cli", "shared.http", "shared.idempotency", "shared.render"} <= set(graph)
    assert "shared.render" in graph["shared.idempotency"]  # the graph sees imports (sanity)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_shared_never_imports_functions_or_main() -> None:
    graph = import_graph()
    wrong = {(a, b) for a, deps in graph.items() if a.startswith("shared") for b in deps if not b.startswith("shared")}
    assert wrong == set()


def test_the_cycle_finder_finds_a_function_level_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    source = "def f():\n    from shared import http\n"
    tree = ast.parse(source)
    assert any(isinstance(n, ast.ImportFrom) for n in ast.walk(tree))  # ast.walk reaches into function bodies
