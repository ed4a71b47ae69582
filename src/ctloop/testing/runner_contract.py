"""The runner conformance suite: every runner must pass the same tests.

Subclass :class:`RunnerContract`, set ``__test__ = True`` and ``runner_name``,
and override the ``runner_spec`` fixture when the runner needs an address
(e.g. a Dask scheduler started once per module)::

    class TestDaskRunner(RunnerContract):
        __test__ = True
        runner_name = "dask"

        @pytest.fixture
        def runner_spec(self, dask_cluster) -> str:
            return dask_cluster.scheduler_address

The pipelines live in this module (importable everywhere, so worker processes
find them) and are steered through files in a per-test folder passed as a
parameter, never through environment variables a long-lived worker would not
see.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ctloop.core.jsontypes import as_object, as_str
from ctloop.core.settings import Settings
from ctloop.metadata import open_metadata_store
from ctloop.pipeline import (
    Dataset,
    Input,
    Metrics,
    Output,
    PipelineDef,
    RunResult,
    command_component,
    component,
    pipeline,
)
from ctloop.pipeline.api import resume, run

__all__ = ["RunnerContract"]


def _mark(box: str, name: str) -> int:
    """Count one execution of ``name`` in ``box``; returns how many so far."""
    path = Path(box) / f"ran-{name}"
    with open(path, "a") as fh:
        fh.write(f"{os.getpid()}\n")
    return len(path.read_text().splitlines())


@component
def numbers(box: str, n: int, out: Output[Dataset]) -> dict[str, object]:
    import pandas as pd

    _mark(box, f"numbers-{n}")
    out.write(pd.DataFrame({"x": list(range(n))}))
    return {"n": n}


@component
def pause(
    box: str, data: Input[Dataset], seconds: float, out: Output[Dataset]
) -> dict[str, object]:
    start = time.time()
    _mark(box, "pause")
    time.sleep(seconds)
    out.write(data.read())
    return {"start": start, "end": time.time()}


@component
def add(box: str, a: Input[Dataset], b: Input[Dataset], metrics: Output[Metrics]) -> int:
    _mark(box, "add")
    if (Path(box) / "fail-add").exists():
        raise RuntimeError("add was told to fail")
    value = int(a.read()["x"].sum() + b.read()["x"].sum())
    metrics.log("total", value)
    return value


@component(retries=2, retry_backoff=0.05)
def wobbly(box: str, data: Input[Dataset], out: Output[Dataset]) -> int:
    runs = _mark(box, "wobbly")
    if runs < 3:
        raise ConnectionError(f"transient failure {runs}")
    out.write(data.read())
    return runs


@component
def forgets(out: Output[Dataset]) -> None:
    """Writes nothing: the runner must report the missing output."""


@component
def breaks(box: str, data: Input[Dataset], out: Output[Dataset]) -> None:
    _mark(box, "breaks")
    raise ValueError("broken on purpose")


wc = command_component(
    "wc",
    ["sh", "-c", "wc -c < {inputs.data} | tr -d ' ' > {outputs.out}; echo {params.label}"],
    inputs={"data": Dataset},
    outputs={"out": Metrics},
    parameters={"label": "hello"},
)


@pipeline
def diamond(box: str, n: int = 10, seconds: float = 0.0) -> None:
    left = pause(box=box, data=numbers(box=box, n=n), seconds=seconds)
    right = pause(box=box, data=numbers(box=box, n=n + 1), seconds=seconds)
    add(box=box, a=left, b=right)


@pipeline
def retrying(box: str) -> None:
    wobbly(box=box, data=numbers(box=box, n=3))


@pipeline
def forgetful() -> None:
    forgets()


@pipeline
def fails_early(box: str, seconds: float = 1.0) -> None:
    """``breaks`` fails at once while a slow sibling runs; its child never starts."""
    first = numbers(box=box, n=2)
    breaks(box=box, data=first)
    slow = pause(box=box, data=first, seconds=seconds)
    pause(box=box, data=slow, seconds=0.0)


@pipeline
def shell(box: str, n: int = 4) -> None:
    wc(data=numbers(box=box, n=n), label="counted")


def runs_of(box: Path, name: str) -> int:
    """How many times ``name`` executed (across processes and machines sharing ``box``)."""
    path = box / f"ran-{name}"
    return len(path.read_text().splitlines()) if path.exists() else 0



def _number(value: object) -> float:
    """A number a step returned (JSON); anything else fails the test here."""
    assert isinstance(value, int | float), value
    return value

class RunnerContract:
    """Behaviour every runner shares: recording, parallelism, caching, failures, resume."""

    __test__ = False
    runner_name: str = ""
    parallel_slots: int = 2  # max_workers given to runs that must overlap

    @pytest.fixture
    def runner_spec(self) -> str:
        """The ``runner`` setting to run with (a name, or an address)."""
        return self.runner_name

    @pytest.fixture
    def settings(self, tmp_path: Path) -> Settings:
        return Settings(home=tmp_path / ".ctloop")

    @pytest.fixture
    def box(self, tmp_path: Path) -> Path:
        folder = tmp_path / "box"
        folder.mkdir()
        return folder

    def run(  # type: ignore[explicit-any]  # PipelineDef: a pipeline of any parameters
        self, settings: Settings, spec: str, pipe: PipelineDef | str, *,
        cache: bool | None = None, **params: object,
    ) -> RunResult:
        return run(pipe, params, settings=settings, runner=spec,
                   max_workers=self.parallel_slots, cache=cache)

    # the tests ----------------------------------------------------------
    def test_records_steps_artifacts_and_lineage(
        self, settings: Settings, runner_spec: str, box: Path
    ) -> None:
        result = self.run(settings, runner_spec, diamond, box=str(box), n=10)
        assert result.ok, result.run.error
        assert [s.status for s in result.steps.values()] == ["succeeded"] * 5
        assert result.steps["add"].outputs == {"return": 45 + 55}
        store = open_metadata_store(settings.metadata_url)
        record = store.get_run(result.run.id)
        assert record.status == "succeeded" and record.executor["runner"] == self.runner_name
        for step in store.get_steps(result.run.id):
            assert step.executor["runner"] == self.runner_name
            assert {"host", "pid"} <= set(step.executor), step.executor
            assert step.attempts == 1 and step.duration_s is not None and step.cache_key
        metrics = result.output("add")
        assert metrics.type == "Metrics" and metrics.properties["total"] == 100
        events = store.get_events(step_id=result.steps["add"].id)
        assert sorted(e.name for e in events if e.kind == "input") == ["a", "b"]

    def test_independent_steps_run_at_the_same_time(
        self, settings: Settings, runner_spec: str, box: Path
    ) -> None:
        result = self.run(settings, runner_spec, diamond, box=str(box), n=3, seconds=0.8)
        assert result.ok, result.run.error
        left, right = (as_object(result.steps[n].outputs["return"]) for n in ("pause", "pause-2"))
        assert _number(left["start"]) < _number(right["end"])
        assert _number(right["start"]) < _number(left["end"])

    def test_rerun_is_cached(self, settings: Settings, runner_spec: str, box: Path) -> None:
        first = self.run(settings, runner_spec, diamond, box=str(box), n=5)
        second = self.run(settings, runner_spec, diamond, box=str(box), n=5)
        assert {s.status for s in second.steps.values()} == {"cached"}
        assert second.output("add").id == first.output("add").id
        assert runs_of(box, "add") == 1

    def test_failure_is_recorded_and_resume_finishes(
        self, settings: Settings, runner_spec: str, box: Path
    ) -> None:
        (box / "fail-add").touch()
        failed = self.run(settings, runner_spec, diamond, box=str(box), n=7)
        assert not failed.ok and "add was told to fail" in (failed.run.error or "")
        step = failed.steps["add"]
        assert step.status == "failed" and "RuntimeError" in (step.traceback or "")
        (box / "fail-add").unlink()
        resumed = resume(failed.run.id, settings=settings, runner=runner_spec)
        assert resumed.ok and resumed.run.id == failed.run.id
        assert runs_of(box, "pause") == 2 and runs_of(box, "add") == 2
        assert resumed.steps["add"].attempts == 2

    def test_a_failure_stops_the_rest_of_the_run(
        self, settings: Settings, runner_spec: str, box: Path
    ) -> None:
        started = time.time()
        result = self.run(settings, runner_spec, fails_early, box=str(box), seconds=1.0)
        assert not result.ok and "broken on purpose" in (result.run.error or "")
        statuses = {name: s.status for name, s in result.steps.items()}
        assert statuses["breaks"] == "failed" and statuses["pause-2"] == "skipped"
        assert "not run" in (result.steps["pause-2"].error or "")
        assert time.time() - started < 30
        store = open_metadata_store(settings.metadata_url)
        assert store.get_run(result.run.id).status == "failed"
        assert all(s.status != "running" for s in store.get_steps(result.run.id))

    def test_retries_with_backoff(self, settings: Settings, runner_spec: str, box: Path) -> None:
        result = self.run(settings, runner_spec, retrying, box=str(box))
        assert result.ok, result.run.error
        assert result.steps["wobbly"].attempts == 3 and runs_of(box, "wobbly") == 3

    def test_missing_output_fails_clearly(self, settings: Settings, runner_spec: str) -> None:
        result = self.run(settings, runner_spec, forgetful)
        assert not result.ok
        assert "did not write its output 'out'" in (result.steps["forgets"].error or "")

    def test_command_component(self, settings: Settings, runner_spec: str, box: Path) -> None:
        result = self.run(settings, runner_spec, shell, box=str(box), n=4)
        assert result.ok, result.run.error
        assert "counted" in as_str(as_object(result.steps["wc"].outputs["return"])["stdout"])
        assert result.output("wc").size > 0
