"""Import hygiene of the core library.

The import graph of ``qperf`` is read from the source: every ``import`` statement (module
level, inside functions, under ``TYPE_CHECKING``) and every ``importlib.import_module`` of a
literal name, so a cycle hidden in a lazy import counts as a cycle. Checked: no cycles between
modules or between subpackages, imports flowing one way down the pipeline, no Slicer; and, in
fresh interpreters, that ``qperf --help``, ``import qperf`` and ``import qperf.io`` load no
heavy package.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from collections import deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Layers of the pipeline, lowest first: a module may import from its own layer and those below.
#: Modules outside these packages (errors, types, progress, flow, phantom, ...) are held to the
#: absence of cycles only.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("qperf.io",),
    ("qperf.gd", "qperf.motion"),
    ("qperf.aif",),
    ("qperf.kinetics",),
    ("qperf.segmentation",),
    ("qperf.aha",),
    ("qperf.report",),
    ("qperf.pipeline", "qperf.workflow"),
    ("qperf.batch",),
    ("qperf.cli",),
)
#: Top-level modules of the Slicer application, which the core never imports.
SLICER = ("slicer", "qt", "ctk", "vtk", "vtkmodules", "PythonQt", "mrml")
SLICER_PREFIXES = ("qSlicer", "vtkSlicer", "vtkMRML")
#: Packages that take from a tenth of a second (nibabel, scipy) to seconds (torch) to import.
HEAVY = ("torch", "matplotlib", "scipy", "SimpleITK", "skimage", "nibabel", "pydicom", "h5py")

Graph = dict[str, set[str]]


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted name -> file, for every module of ``package`` (a folder in ``root``)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _absolute(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = (name if is_package else name.rpartition(".")[0]).split(".")
    base = parts[: len(parts) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imported_modules(name: str, path: Path, modules: set[str]) -> set[str]:
    """Absolute names imported by module ``name`` anywhere in ``path``.

    ``from a import b`` imports the module ``a.b`` when there is one, else ``a``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, name, path.name == "__init__.py")
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                out.add(sub if sub in modules else module)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.add(node.args[0].value)
    return out


def import_graph(root: Path, package: str) -> tuple[Graph, Graph]:
    """The module graph of ``package`` and, per module, the top-level outside packages it imports."""
    files = module_files(root, package)
    graph: Graph = {name: set() for name in files}
    outside: Graph = {name: set() for name in files}
    for name, path in files.items():
        for target in imported_modules(name, path, set(files)):
            if target.split(".")[0] != package:
                outside[name].add(target.split(".")[0])
                continue
            while target and target not in files:  # an attribute of a module, or a missing module
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph, outside


def cycles(graph: Graph) -> list[list[str]]:
    """One shortest cycle through each strongly connected component of more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)

    found = []
    for component in components:
        members, start = set(component), component[0]
        previous: dict[str, str] = {}
        queue = deque([start])
        while queue:  # breadth first from start, back to start, inside the component
            v = queue.popleft()
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    found.append([start, *reversed(path[:-1]), start] if len(path) > 1 else [start, v, start])
                    queue.clear()
                    break
                if w not in previous:
                    previous[w] = v
                    queue.append(w)
    return found


def subpackage_graph(graph: Graph) -> Graph:
    """The graph between ``qperf.X`` (subpackages and top-level modules)."""
    out: Graph = {}
    for source, targets in graph.items():
        a = ".".join(source.split(".")[:2])
        for target in targets:
            b = ".".join(target.split(".")[:2])
            if a != b:
                out.setdefault(a, set()).add(b)
    return out


def _describe(found: list[list[str]]) -> str:
    return "\n".join(" -> ".join(c) for c in found)


# ------------------------------------------------------------------------------ the checker


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_checker_finds_cycles_through_lazy_and_type_checking_imports(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from . import b\n",
            "pkg/b.py": "def f():\n    from pkg.sub.c import value\n    return value\n",
            "pkg/sub/__init__.py": "from .c import value\n",
            "pkg/sub/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import Thing\nvalue = 1\n",
            "pkg/d.py": "import importlib\nimport numpy\nimportlib.import_module('pkg.e')\n",
            "pkg/e.py": "from pkg import d\n",
            "pkg/f.py": "from pkg import a, sub\nfrom pkg.sub import value\n",
        },
    )
    graph, outside = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.sub.c"}
    assert graph["pkg.sub.c"] == {"pkg.a"}
    assert graph["pkg.f"] == {"pkg.a", "pkg.sub"}
    assert outside["pkg.d"] == {"importlib", "numpy"}
    assert sorted(cycles(graph)) == [["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"], ["pkg.d", "pkg.e", "pkg.d"]]
    assert sorted(cycles(subpackage_graph(graph))) == [
        ["pkg.a", "pkg.b", "pkg.sub", "pkg.a"],
        ["pkg.d", "pkg.e", "pkg.d"],
    ]
    graph["pkg.sub.c"].clear()
    graph["pkg.e"].clear()
    assert cycles(graph) == []


# ------------------------------------------------------------------------------ the graph of qperf


@pytest.fixture(scope="module")
def qperf_graph() -> tuple[Graph, Graph]:
    return import_graph(ROOT, "qperf")


def test_qperf_has_no_import_cycles(qperf_graph: tuple[Graph, Graph]) -> None:
    graph, _ = qperf_graph
    assert len(graph) > 50
    found = cycles(graph)
    assert not found, f"import cycles between modules:\n{_describe(found)}"


def test_qperf_subpackages_have_no_import_cycles(qperf_graph: tuple[Graph, Graph]) -> None:
    found = cycles(subpackage_graph(qperf_graph[0]))
    assert not found, f"import cycles between subpackages:\n{_describe(found)}"


def test_imports_flow_down_the_pipeline(qperf_graph: tuple[Graph, Graph]) -> None:
    layer = {package: i for i, names in enumerate(LAYERS) for package in names}
    upward = sorted(
        f"{source} ({a}) imports {target} ({b})"
        for source, targets in qperf_graph[0].items()
        for target in targets
        if (a := ".".join(source.split(".")[:2])) in layer
        and (b := ".".join(target.split(".")[:2])) in layer
        and layer[b] > layer[a]
    )
    assert not upward, "imports against the pipeline order:\n" + "\n".join(upward)


def test_qperf_never_imports_slicer(qperf_graph: tuple[Graph, Graph]) -> None:
    offending = sorted(
        f"{module} imports {name}"
        for module, names in qperf_graph[1].items()
        for name in names
        if name in SLICER or name.startswith(SLICER_PREFIXES)
    )
    assert not offending, "\n".join(offending)


# ------------------------------------------------------------------------------ what loads


def _loaded(code: str) -> set[str]:
    """The heavy packages loaded after running ``code`` in a fresh interpreter."""
    script = textwrap.dedent(code) + textwrap.dedent(
        f"""
        import json as _json, sys as _sys
        print(_json.dumps(sorted({{m.split(".")[0] for m in _sys.modules}} & {set(HEAVY)!r})))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_help_loads_no_heavy_package() -> None:
    """``qperf --help`` and a command's help import every command module but none of the heavy packages."""
    loaded = _loaded(
        """
        import contextlib, io
        from qperf.cli import main
        for argv in (["--help"], ["analyze", "--help"]):
            with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
                main(argv)
        """
    )
    assert loaded == set()


def test_importing_the_core_and_its_io_is_light() -> None:
    assert _loaded("import qperf, qperf.io, qperf.io.atomic") == set()
    # the AIF detector of the segmentation package needs no network until it runs
    assert _loaded("import qperf.segmentation.aif_lv") & {"torch", "matplotlib"} == set()


def test_the_analysis_imports_neither_torch_nor_matplotlib_before_its_first_step() -> None:
    """What ``qperf analyze`` imports before its first step: the network and the figures come later."""
    workflow = "qperf.workflow" if (ROOT / "qperf" / "workflow").is_dir() else "qperf.pipeline"
    loaded = _loaded(f"import qperf.cli.commands.analyze, qperf.io, qperf.io.insertion, qperf.progress, {workflow}")
    assert loaded & {"torch", "matplotlib"} == set()
