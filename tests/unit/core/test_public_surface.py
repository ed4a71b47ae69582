"""The public surface: every name a package exports exists and says what it is.

For each package of ``src/ctloop`` (a folder with ``__init__.py``), every name in
its ``__all__`` must be importable from it, and every exported class, function
and module must have a docstring (constants and type aliases cannot carry one).
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[3] / "src" / "ctloop"
PACKAGES = sorted(
    ".".join(("ctloop", *p.parent.relative_to(SRC).parts)).rstrip(".")
    for p in SRC.rglob("__init__.py")
)


def _documented(obj: object) -> bool:
    """Its own docstring: not inherited, not the signature dataclasses write in."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    if not isinstance(doc, str) or not doc.strip():
        return False
    return not (inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("))


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_exists_and_is_documented(package: str) -> None:
    module = importlib.import_module(package)
    assert _documented(module), f"{package} has no module docstring"
    exported = getattr(module, "__all__", None)
    if exported is None:
        return
    assert len(exported) == len(set(exported)), f"{package}.__all__ repeats a name"
    missing = [name for name in exported if not hasattr(module, name)]
    assert missing == [], f"{package}.__all__ names what it does not have: {missing}"
    undocumented = [
        name for name in exported
        if (inspect.isclass(getattr(module, name)) or inspect.isfunction(getattr(module, name))
            or inspect.ismodule(getattr(module, name)))
        and not _documented(getattr(module, name))
    ]
    assert undocumented == [], f"{package} exports undocumented names: {undocumented}"


def _standard_components() -> list[object]:
    from ctloop.components import data_validation, partitioned_statistics, training
    from ctloop.pipeline.component import ComponentDef

    found: list[object] = []
    for module in (training, data_validation, partitioned_statistics):
        found += [obj for obj in vars(module).values()
                  if isinstance(obj, ComponentDef) and obj.module == module.__name__]
    return found


def test_standard_components_document_every_parameter_and_are_in_the_docs() -> None:
    from ctloop.pipeline.component import ComponentDef, component_signature

    docs = "".join((SRC.parents[1] / "docs" / name).read_text()
                   for name in ("models.md", "pipelines.md"))
    components = _standard_components()
    assert {getattr(c, "name", "") for c in components} >= {
        "train", "evaluate", "infra_check", "push", "statistics", "schema", "validate"}
    for comp in components:
        assert isinstance(comp, ComponentDef)
        signature = component_signature(comp)
        assert signature in docs, f"docs/models.md or docs/pipelines.md lacks: {signature}"
        args = {*comp.inputs, *comp.outputs, *comp.parameters}
        undocumented = [a for a in args
                        if not re.search(rf"^\s+{a}: \S", comp.description, re.M)]
        assert undocumented == [], f"{comp.name}'s docstring has no Args entry for {undocumented}"
        text = comp.__doc__ or ""
        assert signature in text and all(a in text for a in args)  # what help() shows
