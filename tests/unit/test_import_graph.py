"""The modules of reconciler import each other without cycles.

Counted with the imports made only for type checking: a cycle there still ties
two modules into one to read and to change (the planner package was built
without spec <-> render and plan <-> scale_in cycles; this keeps it so).
"""

from __future__ import annotations

import ast
from pathlib import Path

import reconciler

ROOT = Path(reconciler.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ROOT.rglob("*.py") if "_pb2" not in p.name}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import sub` names the submodule when there is one.
                targets = [
                    f"{node.module}.{a.name}"
                    if f"{node.module}.{a.name}" in modules
                    else node.module
                    for a in node.names
                ]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for nxt in sorted(graph[module]):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b", "a"]]


# Type-only cycles left as they are, each within one small package: the simulated
# Nomad's state is one class assembled from mixins that name each other's records,
# and a Nomad CAS conflict carries the variable it lost to.
_TYPE_ONLY_CYCLES = ("reconciler.sim.nomad_state.", "reconciler.nomad.")


def test_no_module_of_reconciler_imports_itself_through_others() -> None:
    cycles = [
        c
        for c in _cycles(_graph())
        if not any(all(m.startswith(p) for m in c) for p in _TYPE_ONLY_CYCLES)
    ]
    assert cycles == []
