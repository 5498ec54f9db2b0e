"""vinyl's modules import each other one way: no circle, and the layers in order.

The graph is read from the source (``ast``), so an import inside a function
counts as much as one at the top of a module: deferring an import hides a
circle from Python, not from a reader. An edge ``a -> b`` means that running
``a`` may import ``b``:

- ``import x.y`` and ``from x.y import name`` reach the module ``x.y``;
- ``from x import y`` reaches the submodule ``x.y`` if there is one, else the
  package ``x`` itself (its ``__init__``: ``from vinyl import atomic``);
- the parent packages Python imports first are not edges (every submodule
  would otherwise reach ``vinyl/__init__``);
- imports under ``if TYPE_CHECKING:`` are not edges (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import vinyl

ROOT = Path(vinyl.__file__).parent

#: The ORM layer: what users call (managers, QuerySets, instances) and the
#: model machinery behind it. Lowest first; see vinyl/__init__'s docstring.
ORM_LAYER = (
    "vinyl._vinylize",
    "vinyl.deletion",
    "vinyl.generic",
    "vinyl.prefetch",
    "vinyl.raw",
    "vinyl.queryset",
    "vinyl.proxies",
    "vinyl.related",
    "vinyl.descriptors",
    "vinyl.pickling",
    "vinyl.models",
    "vinyl.manager",
    "vinyl",
)


def module_names() -> dict[str, Path]:
    names = {}
    for path in ROOT.rglob("*.py"):
        parts = ("vinyl",) + path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    skipped.update(id(n) for n in ast.walk(child))
    return skipped


def import_graph() -> dict[str, set[str]]:
    """Module name -> the vinyl modules it imports (at module level or in a function)."""
    modules = module_names()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        skipped = _type_checking_only(tree)
        edges: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:  # import a.b.c of a non-module c
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def components(graph: dict[str, set[str]]) -> list[list[str]]:
    """The modules that import each other in a circle: strongly connected components (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
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
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each component, as a path."""
    return [_circle(graph, set(component)) for component in components(graph)]


def _circle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for succ in sorted(graph[node] & component):
                if succ == start:
                    return paths[node] + [start]
                if succ not in paths:
                    paths[succ] = paths[node] + [succ]
                    following.append(succ)
        frontier = following
    raise AssertionError(f"no circle in {component}")


def test_graph_sees_function_level_and_package_imports() -> None:
    graph = import_graph()
    # A function-level import (sync guard, installed when a manager is declared).
    assert "vinyl._syncguard" in graph["vinyl.manager"]
    # `from vinyl.engine.engines import ...` in vinyl/__init__ and `from vinyl import _querylog`.
    assert "vinyl.engine.engines" in graph["vinyl"]
    assert "vinyl._querylog" in graph["vinyl.engine.statements"]
    assert "vinyl" not in graph["vinyl.engine.statements"]


def test_cycles_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert cycles(graph) == [["a", "b", "c", "a"]]


def test_no_import_circle_among_vinyl_modules() -> None:
    graph = import_graph()
    found = components(graph)
    assert not found, "vinyl's modules import each other in a circle:\n" + "\n".join(
        f"{' -> '.join(_circle(graph, set(members)))}  (circles join: {', '.join(members)})" for members in found
    )


def _layer(name: str) -> str:
    for layer in ("vinyl.engine", "vinyl.translate"):
        if name == layer or name.startswith(layer + "."):
            return layer
    return "orm" if name in ORM_LAYER else "other"


def test_layers_point_down() -> None:
    """ORM -> vinyl.translate -> vinyl.engine, never the other way.

    The ORM layer is the top: nothing outside it (engine, translate, the
    backends, routing, transactions) imports it.
    """
    wrong = []
    for name, edges in import_graph().items():
        layer = _layer(name)
        for target in edges:
            other = _layer(target)
            if layer != "orm" and other == "orm":
                wrong.append(f"{name} -> {target}")
            if layer == "vinyl.engine" and other == "vinyl.translate":
                wrong.append(f"{name} -> {target}")
    assert not wrong, "a lower layer imports a higher one:\n" + "\n".join(sorted(wrong))


def test_orm_layer_is_ordered() -> None:
    """Each ORM module imports only the ORM modules listed before it."""
    graph = import_graph()
    wrong = []
    for position, name in enumerate(ORM_LAYER):
        higher = set(ORM_LAYER[position:])
        wrong += [f"{name} -> {target}" for target in sorted(graph[name] & higher)]
    assert not wrong, "an ORM module imports one listed after it in ORM_LAYER:\n" + "\n".join(wrong)
