"""Imports run one way: no circle among the package's modules, kernels never reach the loss layer,
and every module imports on its own (nothing relies on another module having been imported first).

The graph is read from the source with ``ast`` and includes function-local imports: a circle that
only closes at call time is still a circle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Installed package name -> folder in the repository (setup.py's package-dir mapping).
ROOTS = {"sista_kit": "sista_kit", "sista_kit.kernels": "kernels", "sista_kit.baselines": "baselines"}
#: mmengine config scripts: read by ``Config.fromfile``, never imported.
NOT_MODULES = ("sista_kit.downstream.configs.",)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in ROOTS.items():
        base = REPO_ROOT / folder
        for file in sorted(base.rglob("*.py")):
            rel = file.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if name.startswith(NOT_MODULES) or "__pycache__" in file.parts:
                continue
            found[name] = file
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, file: Path) -> set[str]:
    """Package modules that ``name`` imports anywhere in its source (type-checking blocks aside)."""
    tree = ast.parse(file.read_text(), str(file))
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_type_checking(node)
        for child in node.body
        for n in ast.walk(child)
    }
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                targets.add(sub if sub in MODULES else source)
    return {t for t in targets if t in MODULES and t != name}


GRAPH = {name: _imports(name, file) for name, file in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One witness path per strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_graph_sees_the_package():
    """The walker finds the modules and the edges it must (guards the test against reading nothing)."""
    assert {"sista_kit.models.checkpoint", "sista_kit.kernels.dispatch", "sista_kit.baselines.mgca"} <= set(
        GRAPH
    )
    assert "sista_kit.models.vision" in GRAPH["sista_kit.models.checkpoint"]
    assert "sista_kit.models.clip" in GRAPH["sista_kit.models.checkpoint"]  # function-local import
    assert "sista_kit.losses.registry" in GRAPH["sista_kit.baselines.mgca"]  # package-dir mapping
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle():
    cycles = _cycles(GRAPH)
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_registry_imports_no_provider():
    """Losses are found through entry points, not by the registry importing their modules."""
    assert GRAPH["sista_kit.losses.registry"] == set()


@pytest.mark.parametrize(
    "module", sorted(m for m in GRAPH if m.startswith("sista_kit.kernels")), ids=lambda m: m
)
def test_kernels_do_not_import_losses(module):
    reach = [m for m in GRAPH[module] if m == "sista_kit.losses" or m.startswith("sista_kit.losses.")]
    assert not reach, f"{module} imports {reach}; kernels may share only a dependency-free validation module"


def test_downstream_is_above_models_and_data():
    """Lower layers never import higher ones (data -> models -> eval -> losses -> train -> downstream).

    ``eval`` (retrieval and grounding of a model on a split) needs only data and models; pretraining uses it
    for its held-out curves."""
    order = ["data", "models", "eval", "losses", "train", "downstream"]
    for name, targets in GRAPH.items():
        layer = name.split(".")[1] if name.count(".") else ""
        if layer not in order:
            continue
        above = {t.split(".")[1] for t in targets if t.count(".")} & set(order[order.index(layer) + 1 :])
        assert not above, f"{name} imports the higher layer(s) {sorted(above)}: {sorted(targets)}"


_IMPORT_ALONE = """
import importlib, sys, traceback
# mmengine registries cannot be created twice in one process (a child scope is unique).
KEEP = {"sista_kit.downstream.mm.registry"}
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "sista_kit" or m.startswith("sista_kit.")]:
        if loaded not in KEEP:
            del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ":\\n" + traceback.format_exc(limit=3))
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


@pytest.mark.slow
def test_every_module_imports_alone():
    """Each module imports with no other sista_kit module loaded before it (one fresh interpreter;
    third-party libraries stay cached between modules to keep it fast)."""
    names = sorted(m for m in GRAPH if not m.endswith(".__main__"))  # those run a command line
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALONE, *names],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
