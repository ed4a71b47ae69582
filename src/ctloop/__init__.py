"""ctloop: continuous training for machine-learning models.

The flat public API for pipeline authors; subsystems (``ctloop.data``,
``ctloop.features``, ``ctloop.models``, ``ctloop.registry``) have their own.
"""

from __future__ import annotations

from ctloop.core.errors import CtloopError
from ctloop.core.settings import Settings, load_settings
from ctloop.pipeline import (
    Artifact,
    Dataset,
    Input,
    Metrics,
    Model,
    Output,
    RunResult,
    command_component,
    component,
    pipeline,
    resume,
    run,
)

__version__ = "0.1.0"

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
