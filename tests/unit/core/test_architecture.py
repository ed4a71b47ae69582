"""The layering rules of docs/architecture.md, checked on the source so they cannot rot.

A package imports only from packages above it in the layer order; web and
terminal libraries stay in the layers that present things; heavy drivers are
imported lazily, inside the functions that need them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[3] / "src" / "ctloop"

# docs/architecture.md's table of layers; `deploy` and `examples` sit just above the CLI
# that uses them.
# The request log sits above monitoring (which reads it) and serving (which writes it).
LAYERS = [
    "core", "metadata", "artifacts", "data", "features", "models", "registry", "pipeline",
    "components", "requestlog", "monitoring", "triggers", "serving", "batch", "loop", "ui",
    "deploy",
    "examples", "cli",
]
# Presentation libraries and where they may be imported.
ALLOWED = {
    "typer": {"cli"},
    "rich": {"cli"},
    "fastapi": {"serving", "ui", "features/server.py"},
    "starlette": {"serving", "ui", "features/server.py"},
}
# Drivers that must never load at import time (only inside functions).
LAZY = {"redis", "psycopg", "pymysql", "s3fs", "boto3", "dask", "distributed", "lightgbm",
        "xgboost"}


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(f, ast.parse(f.read_text())) for f in sorted(SRC.rglob("*.py"))]


def _imports(tree: ast.AST) -> list[tuple[str, ast.AST]]:
    found: list[tuple[str, ast.AST]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, node) for alias in node.names)
    return found


def _package(path: Path) -> str | None:
    rel = path.relative_to(SRC).parts
    return rel[0] if len(rel) > 1 else None


def test_packages_import_only_from_layers_above() -> None:
    wrong = []
    for path, tree in _modules():
        pkg = _package(path)
        if pkg not in LAYERS:
            continue
        for name, _ in _imports(tree):
            parts = name.split(".")
            if parts[0] == "ctloop" and len(parts) > 1 and parts[1] in LAYERS:
                if LAYERS.index(parts[1]) > LAYERS.index(pkg):
                    wrong.append(f"{path.relative_to(SRC)} imports {name}")
    assert wrong == []


@pytest.mark.parametrize("library", sorted(ALLOWED))
def test_presentation_libraries_stay_in_their_layers(library: str) -> None:
    wrong = []
    for path, tree in _modules():
        rel = path.relative_to(SRC).as_posix()
        allowed = ALLOWED[library]
        if _package(path) in allowed or rel in allowed:
            continue
        if any(name.split(".")[0] == library for name, _ in _imports(tree)):
            wrong.append(rel)
    assert wrong == []


def test_drivers_are_imported_lazily() -> None:
    wrong: list[str] = []
    for path, tree in _modules():
        for node in tree.body:  # module level only; imports inside functions are fine
            names = [n for n, _ in _imports(node)] if isinstance(
                node, ast.Import | ast.ImportFrom) else []
            wrong.extend(f"{path.relative_to(SRC)}: {n}" for n in names
                         if n.split(".")[0] in LAZY)
    assert wrong == []


# Import cycles still to be removed, each with the issue that removes it. Imports under
# `if TYPE_CHECKING:` do not run and do not count (the type-only demo -> report edge of
# examples/flights, which issue 9 removes with the demo rebuild, is one).
CYCLES_ALLOWED: set[frozenset[str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_imports(tree: ast.Module, modules: set[str]) -> set[str]:
    """Modules of ctloop an import that runs (module level or in a function) names.

    ``from ctloop.x import y`` names module ``x.y`` when that is a module, else ``x``;
    imports under ``if TYPE_CHECKING:`` are skipped.
    """
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("ctloop."):
                base = node.module.removeprefix("ctloop.")
                for alias in node.names:
                    found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules
                              else base)
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("ctloop.") for a in node.names
                         if a.name.startswith("ctloop."))
    return found


def _import_graph() -> dict[str, set[str]]:
    modules = {_module_name(path): tree for path, tree in _modules()}
    graph: dict[str, set[str]] = {}
    for name, tree in modules.items():
        targets = set()
        for imported in _runtime_imports(tree, set(modules)):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_within_ctloop() -> None:
    cycles = [c for c in _cycles(_import_graph()) if frozenset(c) not in CYCLES_ALLOWED]
    assert cycles == [], "import cycles (a module imports, directly or not, itself): " + "; ".join(
        " <-> ".join(c) for c in cycles)
