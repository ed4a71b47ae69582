"""What the typed DSL means at run time: Annotated roles, pipeline calls build graphs."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from ctloop.core.errors import PipelineDefinitionError
from ctloop.pipeline import Dataset, Input, Metrics, Output, component, pipeline
from ctloop.pipeline.artifacts import INPUT, OUTPUT, artifact_class


@component
def make(rows: int, out: Output[Dataset]) -> None:
    """Write ``rows`` rows."""


@component
def count(data: Input[Dataset], metrics: Output[Metrics]) -> int:
    metrics.log("n", 1)
    return 7


@pipeline
def small(rows: int = 3) -> None:
    count(data=make(rows=rows))


def test_input_and_output_are_annotated_aliases() -> None:
    assert typing.get_args(Input[Dataset]) == (Dataset, INPUT)
    assert typing.get_args(Output[Dataset]) == (Dataset, OUTPUT)
    assert artifact_class(Input[Dataset]) == ("input", Dataset)
    assert artifact_class(Output[Metrics]) == ("output", Metrics)
    assert artifact_class(Dataset) == ("input", Dataset)
    assert artifact_class(int) is None and artifact_class(typing.Annotated[int, "x"]) is None
    assert make.outputs == {"out": Dataset} and count.inputs == {"data": Dataset}


def test_input_of_a_non_artifact_is_refused_when_declared() -> None:
    with pytest.raises(PipelineDefinitionError, match=r"argument 'data'.*Artifact subclass"):
        @component
        def wrong(data: Input[int]) -> None:  # type: ignore[type-var]  # the mistake under test
            pass


def test_calling_a_pipeline_builds_its_graph_with_checked_arguments() -> None:
    graph = small(rows=5)
    assert list(graph.steps) == ["make", "count"] and graph.params == {"rows": 5}
    assert small(4).params == {"rows": 4}  # positional, as the function takes it
    assert small().params == {"rows": 3}


def test_a_component_called_outside_a_pipeline_runs_its_function(tmp_path: Path) -> None:
    metrics = Metrics(tmp_path / "m.json")
    assert count(Dataset(tmp_path / "d.parquet"), metrics) == 7
    assert metrics.read() == {"n": 1}
