"""The engine over the in-memory store: it needs only a ``PipelineStore``, so its rules are
tested without a database file (records, cache hits, failure and skip, resume, lineage)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ctloop.metadata import RunStatus, StepStatus
from ctloop.metadata.lineage import lineage
from ctloop.pipeline import Dataset, Input, Metrics, Output, component, pipeline
from ctloop.pipeline.engine import Engine
from ctloop.pipeline.runners.local import LocalRunner
from ctloop.testing.inmemory import InMemoryMetadataStore

FAIL = {"total": False}  # steers the last step; set by a test, reset by the fixture


@component
def numbers(n: int, out: Output[Dataset]) -> int:
    out.write(pd.DataFrame({"x": list(range(n))}))
    return n


@component
def total(data: Input[Dataset], metrics: Output[Metrics]) -> int:
    if FAIL["total"]:
        raise RuntimeError("total was told to fail")
    value = int(data.read()["x"].sum())
    metrics.log("total", value)
    return value


@component
def count(data: Input[Dataset], metrics: Output[Metrics]) -> int:
    metrics.log("rows", len(data.read()))
    return len(data.read())


@pipeline
def sums(n: int = 4) -> None:
    data = numbers(n=n)
    total(data=data)
    count(data=data)


@pytest.fixture
def engine(tmp_path: Path) -> Engine[InMemoryMetadataStore]:
    FAIL["total"] = False
    return Engine(store=InMemoryMetadataStore(), artifacts_url=(tmp_path / "a").as_uri(),
                  runner=LocalRunner(), home=tmp_path, max_workers=2)


def test_a_run_is_recorded_and_a_rerun_is_all_cache_hits(
    engine: Engine[InMemoryMetadataStore],
) -> None:
    first = engine.run(sums, {"n": 4})
    assert first.ok and first.steps["total"].outputs == {"return": 6}
    assert [s.status for s in engine.store.get_steps(first.run.id)] == [StepStatus.SUCCEEDED] * 3
    walked = lineage(engine.store, first.output("total").id)
    assert {s.name for s, _ in walked.steps.values()} == {"total", "numbers"}
    again = engine.run(sums, {"n": 4})
    assert {s.status for s in again.steps.values()} == {StepStatus.CACHED}
    assert again.steps["total"].cached_from == first.steps["total"].id
    assert engine.run(sums, {"n": 5}).steps["total"].status is StepStatus.SUCCEEDED


def test_a_failed_step_fails_the_run_and_resume_redoes_only_it(
    engine: Engine[InMemoryMetadataStore],
) -> None:
    FAIL["total"] = True
    failed = engine.run(sums, {"n": 3})
    assert failed.run.status is RunStatus.FAILED
    assert failed.run.error is not None and "step 'total' failed" in failed.run.error
    assert failed.steps["total"].status is StepStatus.FAILED
    assert failed.steps["numbers"].status is StepStatus.SUCCEEDED
    FAIL["total"] = False
    resumed = engine.resume(failed.run.id, sums)
    assert resumed.ok and resumed.run.id == failed.run.id
    assert resumed.steps["total"].attempts == 2 and resumed.steps["numbers"].attempts == 1
    assert engine.store.get_run(failed.run.id).status is RunStatus.SUCCEEDED
