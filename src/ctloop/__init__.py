"""ctloop: continuous training for machine-learning models.

The flat public API for pipeline authors; subsystems (``ctloop.data``,
``ctloop.features``, ``ctloop.models``, ``ctloop.registry``) have their own.
The DSL is imported here; ``run``, ``resume``, ``RunResult`` and the settings
are imported on first use (PEP 562), so the command line starts quickly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ctloop.core.errors import CtloopError
from ctloop.pipeline import (
    Artifact,
    Dataset,
    Input,
    Metrics,
    Model,
    Output,
    command_component,
    component,
    pipeline,
)

if TYPE_CHECKING:
    from ctloop.core.settings import Settings, load_settings
    from ctloop.pipeline.api import resume, run
    from ctloop.pipeline.engine import RunResult

__version__ = "0.1.0"

_LAZY = {
    "Settings": "ctloop.core.settings",
    "load_settings": "ctloop.core.settings",
    "resume": "ctloop.pipeline.api",
    "run": "ctloop.pipeline.api",
    "RunResult": "ctloop.pipeline.engine",
}

__all__ = [
    "Artifact",
    "CtloopError",
    "Dataset",
    "Input",
    "Metrics",
    "Model",
    "Output",
    "RunResult",
    "Settings",
    "command_component",
    "component",
    "load_settings",
    "pipeline",
    "resume",
    "run",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'ctloop' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
