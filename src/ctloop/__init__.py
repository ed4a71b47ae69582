"""ctloop: continuous training for machine-learning models.

The flat public API for pipeline authors; subsystems (``ctloop.data``,
``ctloop.features``, ``ctloop.models``, ``ctloop.registry``) have their own.
Every name here is imported on first use (PEP 562), the DSL included, so the
command line, ``ctloop serve`` and the request log's writer process start
without loading the pipeline package (about a tenth of the serving start).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from ctloop.core.errors import CtloopError

if TYPE_CHECKING:
    from ctloop.core.settings import Settings, load_settings
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
    from ctloop.pipeline.api import resume, run
    from ctloop.pipeline.engine import RunResult

__version__ = "0.1.0"

_LAZY = {
    **dict.fromkeys(("Artifact", "Dataset", "Input", "Metrics", "Model", "Output",
                     "command_component", "component", "pipeline"), "ctloop.pipeline"),
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


class _Package(types.ModuleType):
    """``ctloop.pipeline`` stays the ``@pipeline`` decorator, as when the DSL was imported
    eagerly: importing the subpackage later must not rebind the name to the module."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "pipeline" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
