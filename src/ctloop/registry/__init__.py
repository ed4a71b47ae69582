"""The model registry: versions, aliases, promotion, rollback, history (on the metadata store)."""

from ctloop.registry.refs import ModelRef, parse_ref
from ctloop.registry.registry import ROLLBACK_MARK, ModelRegistry, default_actor

__all__ = ["ROLLBACK_MARK", "ModelRef", "ModelRegistry", "default_actor", "parse_ref"]
