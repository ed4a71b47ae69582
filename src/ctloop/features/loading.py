"""Loading feature definitions: a Python file's entities and views, as one ``Definitions``."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from ctloop.core.errors import UserInputError
from ctloop.core.importing import import_file
from ctloop.features.definitions import AggregationView, Entity, FeatureView

__all__ = ["Definitions", "View", "load_definitions"]

View = FeatureView | AggregationView


@dataclass(frozen=True)
class Definitions:
    """The entities and views of a definitions file or of the catalog."""

    entities: dict[str, Entity] = field(default_factory=dict)
    views: dict[str, View] = field(default_factory=dict)

    @classmethod
    def of(cls, items: Iterable[object]) -> Definitions:
        """Collect entities and views from any objects (others are ignored)."""
        entities: dict[str, Entity] = {}
        views: dict[str, View] = {}
        for item in items:
            if isinstance(item, Entity):
                entities[item.name] = item
            elif isinstance(item, FeatureView | AggregationView):
                if item.name in views and views[item.name] is not item:
                    raise UserInputError(
                        f"Two views are named {item.name!r}. Give each view a unique name."
                    )
                views[item.name] = item
                for entity in item.entities:
                    entities.setdefault(entity.name, entity)
        return cls(entities, views)


def _import_as_package_module(path: Path) -> ModuleType | None:
    """The file's own module when it is importable by name (e.g. ``ctloop.examples.flights``).

    Its functions then keep their real import path in the catalog, so a later
    process (``ctloop features materialize``, the feature server) can call a
    PythonSource; a file outside ``sys.path`` gets a synthetic module name.
    """
    target = path.resolve()
    for entry in sys.path:
        try:
            relative = target.relative_to(Path(entry or ".").resolve())
        except (ValueError, OSError):
            continue
        parts = relative.with_suffix("").parts
        if not parts or not all(part.isidentifier() for part in parts):
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.origin and Path(spec.origin).resolve() == target:
            return importlib.import_module(name)
    return None


def load_definitions(path: str | Path) -> Definitions:
    """Import a Python file and collect the Entity and view objects it defines at top level."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"The definitions file {str(path)!r} does not exist.")
    # hash() of a str differs from process to process: the module name (and so the
    # "module:function" of every PythonSource in the catalog) must not.
    prefix = "ctloop_definitions_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    try:
        module = _import_as_package_module(path) or import_file(path, prefix)
    except UserInputError:
        raise
    except Exception as exc:
        raise UserInputError(
            f"Importing the definitions file {str(path)!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return Definitions.of(vars(module).values())
