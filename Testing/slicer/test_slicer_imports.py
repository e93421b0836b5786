"""Import hygiene of the Slicer modules' libraries, read from the source (no Slicer needed).

Every ``import`` statement counts (module level, inside functions, under ``TYPE_CHECKING``), so
a cycle hidden in a lazy import is still a cycle. Checked: no cycles between the modules of the
``*Lib`` packages; the packages depend on each other one way only (QPerfCommonLib on none of
them, QPerfSegLib and QPerfFlowLib on QPerfCommonLib); QPerfFlow never imports QPerfSeg.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: Module folder -> its library package.
LIBRARIES = {"QPerfCommon": "QPerfCommonLib", "QPerfSeg": "QPerfSegLib", "QPerfFlow": "QPerfFlowLib"}
#: Which libraries each library may import.
ALLOWED = {
    "QPerfCommonLib": set(),
    "QPerfSegLib": {"QPerfCommonLib"},
    "QPerfFlowLib": {"QPerfCommonLib"},
}

Graph = dict[str, set[str]]


def libraryModules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the libraries and every module file (``QPerfSeg``)."""
    out = {}
    for folder, package in LIBRARIES.items():
        out[folder] = REPO / folder / f"{folder}.py"
        for path in sorted((REPO / folder / package).glob("*.py")):
            out[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return out


def importedNames(name: str, path: Path) -> set[str]:
    """Absolute names imported anywhere in ``path`` (relative imports resolved against ``name``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)
    return out


def importGraph() -> Graph:
    """Module -> the modules of the libraries (and module files) it imports."""
    files = libraryModules()
    graph: Graph = {name: set() for name in files}
    for name, path in files.items():
        for target in importedNames(name, path):
            while target and target not in files:
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph


def findCycle(graph: Graph) -> list[str]:
    """One cycle of ``graph`` as a list of nodes (first repeated at the end), or an empty list."""
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(v: str) -> list[str]:
        state[v] = 1
        path.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return path[path.index(w) :] + [w]
            if w not in state:
                found = visit(w)
                if found:
                    return found
        path.pop()
        state[v] = 2
        return []

    for v in sorted(graph):
        if v not in state:
            found = visit(v)
            if found:
                return found
    return []


def top(name: str) -> str:
    return name.split(".")[0]


def test_the_graph_sees_every_library_and_its_imports():
    graph = importGraph()
    assert {top(n) for n in graph} == set(LIBRARIES) | set(LIBRARIES.values())
    assert "QPerfCommonLib.scene" in graph["QPerfCommonLib.sequences"], "a relative import was missed"
    assert "QPerfCommonLib.segmentation" in graph["QPerfFlowLib.compute"], "an absolute import was missed"
    assert "QPerfSegLib.workflowtest" in graph["QPerfSegLib.selftest"], "an import inside a function was missed"


def test_a_cycle_is_found_where_there_is_one():
    assert findCycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert findCycle({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_in_the_slicer_libraries():
    cycle = findCycle(importGraph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("library", sorted(ALLOWED))
def test_libraries_depend_on_each_other_one_way(library):
    graph = importGraph()
    used = {top(t) for name, targets in graph.items() if top(name) == library for t in targets} - {library}
    assert used <= ALLOWED[library], f"{library} imports {sorted(used - ALLOWED[library])}"


def test_qperfflow_never_imports_qperfseg():
    graph = importGraph()
    flow = {name: targets for name, targets in graph.items() if top(name) in ("QPerfFlow", "QPerfFlowLib")}
    found = sorted(
        f"{n} -> {t}" for n, targets in flow.items() for t in targets if top(t) in ("QPerfSeg", "QPerfSegLib")
    )
    assert not found, f"QPerfFlow imports QPerfSeg: {found}"
