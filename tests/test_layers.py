"""The layer contract: imports point one way, and the core imports no heavy stack.

    core (numpy, scipy, cvxpy)
      <- train (torch)  |  stats (pandas)      two siblings that never import each other
      <- report (matplotlib)
      <- sweep (planning: pydantic, yaml, rich)
      <- tracking (MLflow)
      <- tasks <- flows (Prefect, Ray)
      <- service <- cli

A module may import its own layer and the layers below it, never one above, not even
inside a function (a lazy import still points up). The test reads the source, so an
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

# lowest first; a module belongs to the first layer one of whose prefixes it starts with
LAYERS = [
    ("core", ["realspace"]),  # the package root and the top-level science modules
    ("train", ["realspace.train"]),
    ("stats", ["realspace.stats"]),
    ("report", ["realspace.report"]),
    ("sweep", ["realspace.sweep"]),
    ("tracking", ["realspace.tracking"]),
    ("tasks", ["realspace.tasks"]),
    ("flows", ["realspace.flows"]),
    ("service", ["realspace.service", "realspace.submit"]),
    ("cli", ["realspace.cli"]),
]
# same rank: neither may import the other
SIBLINGS = {"train": "stats", "stats": "train"}
RANK = {
    "core": 0,
    "train": 1,
    "stats": 1,
    "report": 2,
    "sweep": 3,
    "tracking": 4,
    "tasks": 5,
    "flows": 6,
    "service": 7,
    "cli": 8,
}

# third-party packages each layer may use (and everything a lower layer may)
HEAVY = {"torch", "triton", "pandas", "matplotlib", "mlflow", "prefect", "prefect_ray", "ray"}
ALLOWED_HEAVY = {
    "core": set(),
    "train": {"torch", "triton"},
    "stats": {"pandas"},
    "report": {"pandas", "matplotlib"},
    "sweep": {"pandas", "matplotlib", "torch"},
    "tracking": {"pandas", "matplotlib", "torch", "mlflow"},
}


def layer_of(module: str) -> str:
    best = ("core", "realspace")
    for name, prefixes in LAYERS:
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > len(best[1]):
                best = (name, p)
    return best[0]


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


def test_the_source_tree_holds_every_layer():
    layers = {layer_of(m) for m in MODULES}
    assert layers >= {
        "core",
        "train",
        "stats",
        "report",
        "sweep",
        "tracking",
        "tasks",
        "flows",
        "service",
        "cli",
    }, layers


def test_imports_point_down():
    upward = []
    for module, path in MODULES.items():
        mine = layer_of(module)
        for target, line in imports(module, path):
            if not target.startswith("realspace"):
                continue
            resolved = _resolve(target)
            theirs = layer_of(resolved)
            if RANK[theirs] > RANK[mine] or SIBLINGS.get(mine) == theirs:
                upward.append(
                    f"{path.relative_to(ROOT)}:{line} ({mine}) imports {target} ({theirs})"
                )
    assert not upward, "imports pointing up:\n" + "\n".join(upward)


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


def test_lower_layers_import_no_heavy_stack():
    found = []
    for module, path in MODULES.items():
        mine = layer_of(module)
        if mine not in ALLOWED_HEAVY:
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
        "import realspace.cli",
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
    """The checker itself: a core module importing the trainer is reported."""
    fake = tmp_path / "bad.py"
    fake.write_text("def f():\n    from .train import loop\n    from realspace import cli\n")
    found = sorted(_resolve(t) for t, _ in imports("realspace.bad", fake))
    assert found == ["realspace.cli", "realspace.train"]
    assert all(RANK[layer_of(t)] > RANK[layer_of("realspace.bad")] for t in found)
