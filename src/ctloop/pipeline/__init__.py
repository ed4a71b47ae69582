"""Pipelines: ``@component``, ``@pipeline``, artifacts, the engine and its runners."""

from __future__ import annotations

from ctloop.pipeline.api import resume, run
from ctloop.pipeline.artifacts import Artifact, Dataset, Input, Metrics, Model, Output
from ctloop.pipeline.component import ComponentDef, command_component, component
from ctloop.pipeline.dsl import Graph, PipelineDef, StepHandle, pipeline
from ctloop.pipeline.engine import Engine, RunObserver, RunResult
from ctloop.pipeline.loader import load_pipeline

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
