"""Import a user's Python file (a pipeline, feature definitions) by its path."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from ctloop.core.errors import UserInputError

__all__ = ["import_file"]


def import_file(path: Path, prefix: str) -> ModuleType:
    """Import ``path`` as a module named after ``prefix`` and the file's content hash.

    The same content is imported once (later calls return the same module); an
    edited file gets a new module, so long-running processes (triggers,
    servers) never keep running stale code. The module is registered in
    ``sys.modules`` before it runs (pickling and dataclasses inside it work)
    and removed again if it raises.
    """
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    except OSError as exc:
        raise UserInputError(f"Cannot read {path}: {exc.strerror}.") from None
    module_name = f"{prefix}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UserInputError(f"{path} is not a Python file that can be imported.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module
