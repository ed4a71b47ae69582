"""A module name that imports its module on first use, so a server starts without it.

``ctloop serve`` answering a compiled LightGBM model never touches pandas, yet
many modules on its import path use pandas in a few functions. Each binds the
name lazily instead of importing at the top::

    if TYPE_CHECKING:
        import pandas as pd
    else:
        pd = lazy_module("pandas", globals(), "pd")

The first attribute read imports the module (under the import lock, so
threads are safe, unlike ``importlib.util.LazyLoader`` before Python 3.12) and
rebinds the caller's global to the real module: later reads cost nothing.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

__all__ = ["lazy_module", "loaded"]


class _LazyModule:
    """Stands in for a module until an attribute is read."""

    __slots__ = ("_alias", "_name", "_namespace")

    def __init__(self, name: str, namespace: dict[str, Any], alias: str) -> None:
        self._name = name
        self._namespace = namespace
        self._alias = alias

    def __getattr__(self, attribute: str) -> Any:
        module = importlib.import_module(self._name)
        if self._namespace.get(self._alias) is self:
            self._namespace[self._alias] = module
        return getattr(module, attribute)

    def __repr__(self) -> str:
        return f"<module {self._name!r} (not imported yet)>"


def lazy_module(name: str, namespace: dict[str, Any], alias: str) -> Any:
    """``name`` itself when already imported, else a stand-in importing it on first use.

    ``namespace`` and ``alias`` are the caller's ``globals()`` and the name the
    stand-in is bound to there; it replaces itself with the module on first use.
    """
    module = sys.modules.get(name)
    if module is not None:
        return module
    return _LazyModule(name, namespace, alias)


def loaded(name: str) -> ModuleType | None:
    """The module when something imported it already, else None (an ``isinstance`` against
    a pandas class needs no pandas when pandas was never imported: nothing can be one)."""
    return sys.modules.get(name)
