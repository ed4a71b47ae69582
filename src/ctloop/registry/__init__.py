"""The model registry: versions, aliases, promotion, rollback, history (on the metadata store).

``ModelRegistry`` loads the model libraries, so it is imported on first use: a
command can parse a reference (``parse_ref``) and answer a mistake without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ctloop.registry.refs import ModelRef, parse_ref

if TYPE_CHECKING:
    from ctloop.registry.registry import ROLLBACK_MARK, ModelRegistry, default_actor

__all__ = ["ROLLBACK_MARK", "ModelRef", "ModelRegistry", "default_actor", "parse_ref"]

_LAZY = {"ROLLBACK_MARK", "ModelRegistry", "default_actor"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from ctloop.registry import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'ctloop.registry' has no attribute {name!r}")
