"""Building pipelines: signatures, edges, and every kind of bad definition."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctloop.core.errors import NotFound, PipelineDefinitionError, UserInputError
from ctloop.pipeline import (
    Dataset,
    Input,
    Metrics,
    Model,
    Output,
    command_component,
    component,
    load_pipeline,
    pipeline,
)


@component
def make(rows: int, out: Output[Dataset]) -> None:
    out.path.write_text(str(rows))


@component(version="7", retries=2)
def fit(data: Input[Dataset], model: Output[Model], alpha: float = 0.5) -> int:
    return 1


@component
def split(data: Dataset, left: Output[Dataset], right: Output[Dataset]) -> None:
    pass


@component
def score(data: Input[Dataset], model: Input[Model], metrics: Output[Metrics]) -> None:
    pass


def test_component_reads_its_signature() -> None:
    assert fit.inputs == {"data": Dataset}
    assert fit.outputs == {"model": Model}
    assert set(fit.parameters) == {"alpha"}
    assert fit.parameters["alpha"].default == 0.5
    assert fit.version == "7" and fit.retries == 2
    assert split.inputs == {"data": Dataset}  # a bare artifact type is an input
    assert len(make.version) == 16  # default version: a hash of the source


def test_component_called_outside_a_pipeline_is_a_function(tmp_path: Path) -> None:
    out = Dataset(tmp_path / "x")
    make(rows=3, out=out)
    assert out.path.read_text() == "3"


def test_calls_form_a_dag_with_unique_step_names() -> None:
    @pipeline
    def p(rows: int = 10):
        a = make(rows=rows)
        b = make(rows=rows + 1)
        m = fit(data=a, alpha=0.1)
        score(data=b, model=m)

    graph = p.build({"rows": 5})
    assert list(graph.steps) == ["make", "make-2", "fit", "score"]
    assert graph.steps["score"].upstream == ["fit", "make-2"]
    assert graph.steps["fit"].params == {"alpha": 0.1}
    assert graph.steps["make-2"].params == {"rows": 6}
    assert graph.order().index("fit") > graph.order().index("make")
    assert graph.downstream("make") == {"fit", "score"}
    assert p.build({"rows": 5}).version == graph.version


def test_pipeline_version_changes_with_shape() -> None:
    @pipeline
    def one():
        make(rows=1)

    @pipeline
    def two():
        fit(data=make(rows=1))

    assert one.build().version != two.build().version


def test_multi_output_step_needs_a_named_output() -> None:
    @pipeline
    def ambiguous():
        fit(data=split(data=make(rows=1)))

    with pytest.raises(PipelineDefinitionError, match=r"outputs: left, right"):
        ambiguous.build()

    @pipeline
    def explicit():
        s = split(data=make(rows=1))
        fit(data=s.outputs["right"])

    assert explicit.build().steps["fit"].inputs["data"].output == "right"


def test_positional_arguments_are_refused() -> None:
    @pipeline
    def p():
        make(3)  # type: ignore[call-overload]  # wrong on purpose

    with pytest.raises(PipelineDefinitionError, match="keyword arguments"):
        p.build()


def test_unknown_argument_lists_known_ones() -> None:
    @pipeline
    def p():
        make(rowz=3)

    with pytest.raises(PipelineDefinitionError, match=r"no argument 'rowz'.*rows"):
        p.build()


def test_missing_input_is_a_dangling_edge() -> None:
    @pipeline
    def p():
        fit(alpha=1.0)

    with pytest.raises(PipelineDefinitionError, match=r"input 'data'.*not connected"):
        p.build()


def test_input_from_another_pipeline_is_dangling() -> None:
    captured = {}

    @pipeline
    def first():
        captured["handle"] = make(rows=1)

    first.build()

    @pipeline
    def second():
        fit(data=captured["handle"])

    with pytest.raises(PipelineDefinitionError, match="dangling input"):
        second.build()


def test_wrong_input_type() -> None:
    @pipeline
    def p():
        m = fit(data=make(rows=1))
        fit(data=m)

    with pytest.raises(PipelineDefinitionError, match="expects Dataset, got Model"):
        p.build()


def test_cycle_through_after_is_reported() -> None:
    @pipeline
    def p():
        a = make(rows=1)
        b = fit(data=a)
        a.after(b)

    with pytest.raises(PipelineDefinitionError, match="cycle"):
        p.build()


def test_parameter_of_wrong_type_names_parameter_and_rule() -> None:
    @pipeline
    def p(rows: int = 1):
        make(rows=rows)

    with pytest.raises(UserInputError, match=r"parameter 'rows' of pipeline 'p' must be int"):
        p.build({"rows": "many"})
    assert p.build({"rows": "12"}).params == {"rows": 12}  # lax coercion of CLI strings
    with pytest.raises(UserInputError, match="no parameter 'rowz'"):
        p.build({"rowz": 1})


def test_step_parameter_of_wrong_type() -> None:
    @pipeline
    def p():
        make(rows=[1, 2])

    with pytest.raises(UserInputError, match="parameter 'rows' of step 'make' must be int"):
        p.build()


def test_empty_pipeline() -> None:
    @pipeline
    def p():
        pass

    with pytest.raises(PipelineDefinitionError, match="no steps"):
        p.build()


def test_command_component_declares_ports() -> None:
    wc = command_component(
        "wc",
        ["wc", "-c", "{inputs.text}"],
        inputs={"text": Dataset},
        outputs={"out": Metrics},
        parameters={"n": 3},
    )
    assert wc.parameters["n"].default == 3 and wc.command is not None
    with pytest.raises(PipelineDefinitionError, match="empty command"):
        command_component("x", [])
    with pytest.raises(PipelineDefinitionError, match="retries"):
        component(retries=-1)(lambda: None)


def test_loader_finds_pipelines_and_explains_mistakes(tmp_path: Path) -> None:
    f = tmp_path / "pipes.py"
    f.write_text(
        "from ctloop.pipeline import component, pipeline, Output, Dataset\n"
        "@component\n"
        "def a(out: Output[Dataset]) -> None: ...\n"
        "@pipeline\n"
        "def training():\n"
        "    a()\n"
    )
    definition, source = load_pipeline(f"{f}:training")
    assert definition.name == "training" and source.endswith("pipes.py:training")
    assert load_pipeline(str(f))[0].name == "training"  # the only pipeline
    with pytest.raises(NotFound, match="Did you mean 'training'"):
        load_pipeline(f"{f}:trainig")
    with pytest.raises(NotFound, match="does not exist"):
        load_pipeline(f"{tmp_path / 'nope.py'}:x")
    bad = tmp_path / "bad.py"
    bad.write_text("def (:\n")
    with pytest.raises(UserInputError, match="syntax error at line 1"):
        load_pipeline(f"{bad}:x")


def test_runner_names_and_options() -> None:
    from ctloop.core.errors import ConfigError
    from ctloop.pipeline.runners import open_runner

    assert open_runner("local").name == "local"
    assert open_runner("subprocess").name == "subprocess"
    with pytest.raises(ConfigError, match="Unknown runner 'ray'"):
        open_runner("ray")
    runner = open_runner("dask", {"n_workers": 3, "threads_per_worker": 2})
    assert (runner.n_workers, runner.threads_per_worker) == (3, 2)  # type: ignore[attr-defined]
    assert open_runner("tcp://127.0.0.1:1").address == "tcp://127.0.0.1:1"  # type: ignore[attr-defined]
    for bad in ("tcp://127.0.0.1", "tcp://:8786", "tcp://host:port"):
        with pytest.raises(ConfigError, match="Write it as tcp://HOST:PORT"):
            open_runner(bad)
    with pytest.raises(ConfigError, match="Known options: n_workers"):
        open_runner("dask", {"workers": 3})
