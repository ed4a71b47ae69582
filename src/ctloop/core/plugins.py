"""Backends chosen by URL scheme and loaded lazily.

Nothing imports a backend module by name except through this table, so heavy
drivers (psycopg, redis, dask, s3fs) load only when their URL is used, and a
missing extra fails with the command that fixes it.
"""

from __future__ import annotations

import importlib
from typing import Any

from ctloop.core.errors import BackendUnavailable, ConfigError

__all__ = ["load_object", "require"]


def load_object(spec: str) -> Any:
    """Import ``"package.module:attr"``."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise BackendUnavailable(
            f"Cannot import {module_name!r} ({exc}). Install the missing package."
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise ConfigError(f"{module_name!r} has no attribute {attr!r}.") from exc


def require(module: str, extra: str, what: str) -> Any:
    """Import an optional dependency or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise BackendUnavailable(
            f"{what} needs the {module!r} package: pip install 'ctloop[{extra}]'"
        ) from exc
