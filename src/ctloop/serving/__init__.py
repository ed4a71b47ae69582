"""The prediction service: routing (canary, A/B, shadow), request log, online features.

``create_app`` is imported lazily so ``import ctloop.serving`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ctloop.serving.config import ServingConfig, Split, parse_split
from ctloop.serving.errors import InvalidRequest, NotReady
from ctloop.serving.scoring.routing import Router, bucket

if TYPE_CHECKING:
    from ctloop.serving.app import create_app

__all__ = [
    "InvalidRequest",
    "NotReady",
    "Router",
    "ServingConfig",
    "Split",
    "bucket",
    "create_app",
    "parse_split",
]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from ctloop.serving.app import create_app

        return create_app
    raise AttributeError(name)
