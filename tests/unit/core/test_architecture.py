"""The layering rules of DESIGN.md, checked on the source so they cannot rot.

A package imports only from packages above it in the layer order; web and
terminal libraries stay in the layers that present things; heavy drivers are
imported lazily, inside the functions that need them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[3] / "src" / "ctloop"

# DESIGN.md's order; `deploy` and `examples` sit just above the CLI that uses them.
LAYERS = [
    "core", "metadata", "artifacts", "data", "features", "models", "registry", "pipeline",
    "components", "monitoring", "triggers", "serving", "loop", "ui", "deploy", "examples", "cli",
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
    found = []
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
    wrong = []
    for path, tree in _modules():
        for node in tree.body:  # module level only; imports inside functions are fine
            names = [n for n, _ in _imports(node)] if isinstance(
                node, ast.Import | ast.ImportFrom) else []
            wrong.extend(f"{path.relative_to(SRC)}: {n}" for n in names
                         if n.split(".")[0] in LAZY)
    assert wrong == []
