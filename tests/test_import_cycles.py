"""No import cycles between chatgate modules, counting imports in functions and TYPE_CHECKING."""

from __future__ import annotations

import ast
import itertools
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


class Edge(NamedTuple):
    source: str
    target: str
    where: str  # path:line
    how: str  # "module level", "in a function" or "under TYPE_CHECKING"


def module_names(src: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` under ``src`` by dotted name; a package is its ``__init__``."""
    modules = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    """The dotted names one module imports, with the line and the context of each import."""

    def __init__(self, package: str) -> None:
        self.package = package  # what a relative import is relative to
        self.found: list[tuple[str, int, str]] = []
        self.context: list[str] = []

    def how(self) -> str:
        return self.context[-1] if self.context else "module level"

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        # under TYPE_CHECKING stays the stronger statement for a function defined there
        self.context.append(self.how() if self.context else "in a function")
        self.generic_visit(node)
        self.context.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self.context.append("under TYPE_CHECKING")
        for child in node.body:
            self.visit(child)
        self.context.pop()
        for child in node.orelse:  # the runtime branch
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, node.lineno, self.how()))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            parts = self.package.split(".")
            anchor = ".".join(parts[: len(parts) - node.level + 1])
            base = f"{anchor}.{base}" if base else anchor
        for alias in node.names:
            # `from a import b`: b is either the module a.b or a name in a; resolved by the caller
            self.found.append((f"{base}.{alias.name}", node.lineno, self.how()))


def _owner(name: str, modules: Mapping[str, Path]) -> str | None:
    """The module ``name`` denotes: itself or its longest prefix that is a module."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(src: Path, package: str) -> dict[str, list[Edge]]:
    """Every import of a ``package`` module by every module of ``package`` under ``src``.

    A cycle hidden in a function or under ``if TYPE_CHECKING:`` still ties modules together: they
    cannot be understood, tested or moved apart, so those imports count too. ``import a.b`` is an
    import of ``a.b``; ``from a import b`` of the module ``a.b`` when it exists, else of ``a`` (a
    package is its ``__init__``); relative imports are resolved first. Importing ``a.b`` does not
    count as importing ``a`` as well, although Python runs that ``__init__`` first: a package whose
    ``__init__`` re-exports its submodules would otherwise always be a cycle.
    """
    modules = module_names(src, package)
    graph: dict[str, list[Edge]] = {}
    for name, path in modules.items():
        visitor = _Imports(name if path.name == "__init__.py" else name.rpartition(".")[0])
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        edges: dict[tuple[str, int], Edge] = {}  # `from a import b, c`: one edge to a
        for imported, line, how in visitor.found:
            if imported != package and not imported.startswith(package + "."):
                continue
            target = _owner(imported, modules)
            if target is not None:
                where = f"{path.relative_to(src.parent)}:{line}"
                edges.setdefault((target, line), Edge(name, target, where, how))
        graph[name] = list(edges.values())
    return graph


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def _shortest_path(
    graph: Mapping[str, Iterable[str]], start: str, goal: str, within: set[str]
) -> list[str]:
    previous: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            path = [node]
            while (step := previous[path[-1]]) is not None:
                path.append(step)
            return path[::-1]
        for succ in sorted(set(graph.get(node, ()))):
            if succ in within and succ not in previous:
                previous[succ] = node
                queue.append(succ)
    raise AssertionError(f"{goal} is not reachable from {start}")


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Short cycles (``[a, b, a]``) that together use every import taking part in a cycle."""
    found: list[list[str]] = []
    for component in strongly_connected(graph):
        members = set(component)
        covered: set[tuple[str, str]] = set()
        for source in component:
            for target in sorted(set(graph.get(source, ()))):
                if target not in members or (source, target) in covered:
                    continue
                loop = [source, *_shortest_path(graph, target, source, members)[:-1]]
                first = loop.index(min(loop))
                loop = loop[first:] + loop[:first]
                covered.update(zip(loop, [*loop[1:], loop[0]], strict=True))
                found.append([*loop, loop[0]])
    return found


def describe(chain: list[str], graph: Mapping[str, list[Edge]]) -> str:
    lines = [" -> ".join(chain)]
    for source, target in itertools.pairwise(chain):
        sites = [e for e in graph[source] if e.target == target]
        lines += [f"    {e.where} imports {target} ({e.how})" for e in sites]
    return "\n".join(lines)


def test_finder_reports_each_cycle_once() -> None:
    graph = {
        "a": ["b"],
        "b": ["c", "a"],
        "c": ["a"],
        "d": ["d"],  # imports itself
        "e": ["a", "f"],  # reaches a cycle without being in one
        "f": [],
    }
    assert cycles(graph) == [["a", "b", "a"], ["a", "b", "c", "a"], ["d", "d"]]
    assert cycles({"a": ["b"], "b": ["c"], "c": []}) == []


def test_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg import b\n",  # a submodule
        "pkg/b.py": "def f():\n    from .sub import c\n",  # relative, in a function
        "pkg/sub/__init__.py": "from typing import TYPE_CHECKING\nX = 1\n",
        "pkg/sub/c.py": "import typing\nif typing.TYPE_CHECKING:\n    from .. import a\n",
        "pkg/d.py": "from pkg.sub import X\nimport pkg.nowhere\nimport os\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    graph = import_graph(tmp_path, "pkg")
    targets = {name: sorted(e.target for e in edges) for name, edges in graph.items()}
    assert targets == {
        "pkg": [],
        "pkg.a": ["pkg.b"],
        "pkg.b": ["pkg.sub.c"],
        "pkg.sub": [],
        "pkg.sub.c": ["pkg.a"],
        "pkg.d": ["pkg", "pkg.sub"],  # X is a name in pkg.sub; pkg.nowhere is no module
    }
    assert [e.how for e in graph["pkg.sub.c"]] == ["under TYPE_CHECKING"]
    assert [e.how for e in graph["pkg.b"]] == ["in a function"]
    (chain,) = cycles({name: [e.target for e in edges] for name, edges in graph.items()})
    assert chain == ["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]
    assert "pkg/b.py:2 imports pkg.sub.c (in a function)" in describe(chain, graph)


def test_no_import_cycles() -> None:
    graph = import_graph(SRC, "chatgate")
    found = cycles({name: [e.target for e in edges] for name, edges in graph.items()})
    if found:
        report = "\n".join(describe(chain, graph) for chain in found)
        pytest.fail(f"{len(found)} import cycle(s):\n{report}", pytrace=False)
