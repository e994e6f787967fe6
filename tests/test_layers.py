"""The layer contract, read from the package tree: imports point one way, no circles.

A *layer* is a top-level entry of the package: a sub-package (``core``, ``convex``,
``train``, ``stats``, ``report``, ``sweep``, ``tracking``, ``app``, and ``flows`` and
``tasks``) or a top-level module (``files``); the package root
is the science core's facade. A layer's rank is not written down: it is its floor in the
graph of imports between layers (0 for one that imports no other, else one above the
highest it imports), which exists because that graph has no circle. The rules:

- no circle among modules, none among layers (so an import that points up, from a layer
  to one that builds on it, is a circle and fails);
- the science core (``core``, ``convex``, ``files``) imports no heavy stack, and each layer
  only the stacks of its table below (a new layer must be entered there);
- ``train`` (torch) and ``stats`` (pandas) never reach each other;
- ``app`` is the top: no other layer imports it.

The test reads the source, lazy imports and TYPE_CHECKING imports included, so an
import that only runs on some path is checked as well.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# flows/ and tasks/ sit at the top of the repository and ship as realspace.flows and
# realspace.tasks (links inside src/realspace, which rglob does not follow)
SOURCES = {
    "realspace": ROOT / "src" / "realspace",
    "realspace.flows": ROOT / "flows",
    "realspace.tasks": ROOT / "tasks",
}

# third-party stacks each layer may import (scipy, cvxpy, numpy: anyone); the layers not
# listed (tasks, flows, app) may import every one
HEAVY = {"torch", "triton", "pandas", "matplotlib", "mlflow", "prefect", "prefect_ray", "ray"}
ALLOWED_HEAVY = {
    "realspace": set(),  # the facade
    "files": set(),
    "core": set(),
    "convex": set(),
    "train": {"torch", "triton"},
    "stats": {"pandas"},
    "report": {"pandas", "matplotlib"},
    "sweep": {"pandas", "matplotlib", "torch"},
    "tracking": {"pandas", "matplotlib", "torch", "mlflow"},
}
EVERY_STACK = {"tasks", "flows", "app"}
INDEPENDENT = [("train", "stats")]
TOP = "app"


def layer_of(module: str) -> str:
    """realspace.core.nets -> core; realspace.files -> files; realspace -> realspace."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def modules() -> dict[str, Path]:
    out = {}
    for pkg, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([pkg, *parts])] = path  # a link's target is listed by its own root
    return out


def imports(module: str, path: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import in the file, at any depth."""
    tree = ast.parse(path.read_text(), str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from . import x, y: x and y are modules or names
                    found += [(f"{name}.{a.name}", node.lineno) for a in node.names]
                    continue
            else:
                name = node.module
                # from realspace import service: the name may be a module; _resolve keeps
                # the longest prefix that is one
                found += [(f"{name}.{a.name}", node.lineno) for a in node.names]
                continue
            found.append((name, node.lineno))
    return found


MODULES = modules()


def _resolve(target: str) -> str:
    """A `from package import name` may name a symbol, not a module: the longest module
    prefix that exists is what is imported."""
    parts = target.split(".")
    while parts and ".".join(parts) not in MODULES:
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the realspace modules it imports (lazy and TYPE_CHECKING imports too: a
    circle through them is still a circle for a reader, and one edit from a failing import)."""
    graph = {}
    for module, path in MODULES.items():
        targets = {_resolve(t) for t, _ in imports(module, path) if t.startswith("realspace")}
        graph[module] = targets - {module, ""}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles():
    assert circles(import_graph()) == []


def test_the_circle_finder_finds_circles():
    """The checker itself, on a graph with a two-module circle, a three-module circle and
    a diamond (which is no circle)."""
    graph = {
        "a": {"b"},
        "b": {"a", "c"},
        "c": set(),
        "x": {"y"},
        "y": {"z"},
        "z": {"x"},
        "p": {"q", "r"},
        "q": {"s"},
        "r": {"s"},
        "s": set(),
    }
    assert sorted(circles(graph)) == [["a", "b"], ["x", "y", "z"]]


def layer_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """layer -> the other layers its modules import."""
    out: dict[str, set[str]] = {}
    for module, targets in graph.items():
        mine = layer_of(module)
        out.setdefault(mine, set()).update(layer_of(t) for t in targets if layer_of(t) != mine)
    return out


def floors(layers: dict[str, set[str]]) -> dict[str, int]:
    """Each layer's floor: 0 without imports, else one above the highest it imports (the
    graph must have no circle)."""
    out: dict[str, int] = {}

    def floor(v):
        if v not in out:
            out[v] = 1 + max((floor(w) for w in layers.get(v, ())), default=-1)
        return out[v]

    for v in layers:
        floor(v)
    return out


def reaches(layers: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in layers.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


LAYER_GRAPH = layer_graph(import_graph())


def test_the_tree_holds_the_layers_and_no_layer_circle():
    assert {"core", "convex", "train", "stats", "report", "sweep", "tracking", "tasks", "flows"} | {
        TOP
    } <= set(LAYER_GRAPH)
    assert circles(LAYER_GRAPH) == []
    ranks = floors(LAYER_GRAPH)
    # the science core at the bottom, the application on top: read from the imports
    assert ranks["core"] == 0 and ranks["files"] == 0
    assert ranks[TOP] == max(ranks.values())
    assert ranks["core"] < ranks["convex"] < ranks["stats"] < ranks["report"]
    assert max(ranks["train"], ranks["tracking"]) < ranks["tasks"] < ranks["flows"] < ranks[TOP]


def test_every_layer_has_its_stacks_declared():
    assert set(LAYER_GRAPH) <= set(ALLOWED_HEAVY) | EVERY_STACK


def test_train_and_stats_never_reach_each_other():
    for a, b in INDEPENDENT:
        assert b not in reaches(LAYER_GRAPH, a) and a not in reaches(LAYER_GRAPH, b)


def test_nothing_imports_the_application():
    assert [v for v, ws in LAYER_GRAPH.items() if TOP in ws and v != TOP] == []


def test_lower_layers_import_no_heavy_stack():
    found = []
    for module, path in MODULES.items():
        mine = layer_of(module)
        if mine in EVERY_STACK:
            continue
        for target, line in imports(module, path):
            top = target.split(".")[0]
            if top in HEAVY and top not in ALLOWED_HEAVY[mine]:
                found.append(f"{path.relative_to(ROOT)}:{line} ({mine}) imports {target}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "statement",
    [
        "import realspace",
        "import realspace.app.cli",
        "import realspace.stats",
        "import realspace.sweep.plan",
    ],
)
def test_light_imports_load_no_heavy_stack(statement):
    """What `realspace --help` and the planner load: no torch, Ray, Prefect or MLflow
    (checked in a fresh interpreter, so nothing imported by other tests counts)."""
    code = (
        f"{statement}; import sys; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'ray', 'prefect', 'mlflow', 'triton'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", (statement, out.stdout, out.stderr)


def test_import_realspace_loads_numpy_alone():
    """The package root (the science core's facade) loads no scipy, pandas, cvxpy or
    matplotlib either: they load where first used."""
    code = (
        "import realspace, sys; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'scipy', 'pandas', 'cvxpy', 'matplotlib', 'pydantic', 'torch', 'mlflow'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_contract_catches_an_upward_import(tmp_path):
    """The checker itself: a core module importing the trainer, or the command line, closes
    a circle of layers (both import the core), and the floors of a graph are its levels."""
    fake = tmp_path / "bad.py"
    fake.write_text("def f():\n    from ..train import loop\n    from realspace.app import cli\n")
    found = sorted(_resolve(t) for t, _ in imports("realspace.core.bad", fake))
    assert found == ["realspace.app.cli", "realspace.train"]
    graph = {**import_graph(), "realspace.core.bad": set(found)}
    assert circles(layer_graph(graph)) != []
    assert floors({"a": {"b", "c"}, "b": {"c"}, "c": set(), "d": set()}) == {
        "a": 2,
        "b": 1,
        "c": 0,
        "d": 0,
    }


def test_a_module_over_400_lines_says_why_at_its_top():
    """Long modules hide their parts: one over 400 lines says in its docstring why it stays
    whole (a sentence naming its length, "About 430 lines because ...")."""
    import re

    long = []
    for path in MODULES.values():
        lines = path.read_text().count("\n")
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > 400 and not re.search(r"\b\d{3} lines\b", doc):
            long.append(f"{path.relative_to(ROOT)}: {lines} lines, no reason at its top")
    assert not long, "\n".join(long)
