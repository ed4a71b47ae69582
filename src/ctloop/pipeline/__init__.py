"""Pipelines: ``@component``, ``@pipeline``, artifacts, the engine and its runners.

The DSL is imported here; the engine, its runners and the loader are imported
on first use (PEP 562), so a command line that merely starts does not load them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ctloop.pipeline.artifacts import Artifact, Dataset, Input, Metrics, Model, Output
from ctloop.pipeline.component import ComponentDef, command_component, component
from ctloop.pipeline.dsl import Graph, PipelineDef, StepHandle, pipeline

if TYPE_CHECKING:
    from ctloop.pipeline.api import resume, run
    from ctloop.pipeline.engine import Engine, RunObserver, RunResult
    from ctloop.pipeline.loader import load_pipeline

_LAZY = {
    "resume": "ctloop.pipeline.api",
    "run": "ctloop.pipeline.api",
    "Engine": "ctloop.pipeline.engine",
    "RunObserver": "ctloop.pipeline.engine",
    "RunResult": "ctloop.pipeline.engine",
    "load_pipeline": "ctloop.pipeline.loader",
}

__all__ = [
    "Artifact",
    "ComponentDef",
    "Dataset",
    "Engine",
    "Graph",
    "Input",
    "Metrics",
    "Model",
    "Output",
    "PipelineDef",
    "RunObserver",
    "RunResult",
    "StepHandle",
    "command_component",
    "component",
    "load_pipeline",
    "pipeline",
    "resume",
    "run",
]


def __getattr__(name: str) -> object:  # the names above are typed by TYPE_CHECKING
    if name not in _LAZY:
        raise AttributeError(f"module 'ctloop.pipeline' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
