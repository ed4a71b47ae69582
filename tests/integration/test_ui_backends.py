"""The dashboard's queries on every metadata backend: SQLite, PostgreSQL, MySQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ctloop.core.jsontypes import JSONValue
from ctloop.core.settings import load_settings
from ctloop.metadata import (
    ArtifactRecord,
    EventRecord,
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
    new_id,
    open_metadata_store,
)
from ctloop.testing.databases import temporary_metadata_url
from ctloop.ui import create_app
from ctloop.ui.queries import RunFilter, UiQueries

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with temporary_metadata_url(request.param, tmp_path) as fresh:
        yield fresh


def _fill(url: str) -> list[RunRecord]:
    store = open_metadata_store(url)
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    runs = []
    for i in range(12):
        run = store.create_run(RunRecord(
            id=new_id(), pipeline="train" if i % 2 else "score", pipeline_version="1",
            status=RunStatus.FAILED if i % 4 == 0 else RunStatus.SUCCEEDED,
            parameters={"lr": 0.1 if i < 6 else 0.2, "batch": f"b{i}"},
            trigger="drift" if i % 3 == 0 else "manual", created_at=t0 + timedelta(days=i),
            started_at=t0 + timedelta(days=i), ended_at=t0 + timedelta(days=i, seconds=90)))
        for j, status in enumerate([StepStatus.CACHED, StepStatus.SUCCEEDED]):
            step = store.save_step(StepRecord(id=new_id(), run_id=run.id, name=f"s{j}",
                                              component="c", component_version="1",
                                              status=status, upstream=[f"s{j - 1}"] if j else []))
        art = store.add_artifact(ArtifactRecord(id=new_id(), type="Metrics", uri="file:///x",
                                                sha256="0" * 64, size=1, name="evaluation",
                                                properties={"roc_auc": 0.5 + i / 100},
                                                producer_step_id=step.id))
        store.add_events([EventRecord(step.id, art.id, "output", "evaluation")])
        runs.append(run)
    store.close()
    return runs


def test_runs_pages_filters_counts_and_compare(url: str, tmp_path: Path) -> None:
    runs = _fill(url)
    queries = UiQueries(url)
    page = queries.run_page(RunFilter(pipeline="train", per_page=4, page=2))
    assert page.total == 6 and page.pages == 2 and len(page.rows) == 2
    assert [r.run.id for r in page.rows] == [runs[3].id, runs[1].id]  # newest first
    assert all(r.steps == 2 and r.cached == 1 and r.cached_share == 0.5 for r in page.rows)
    assert page.pipelines == ["score", "train"] and page.triggers == ["drift", "manual"]
    drift = queries.run_page(RunFilter(trigger="drift", since=datetime(2025, 3, 4, tzinfo=UTC),
                                       until=datetime(2025, 3, 11, tzinfo=UTC)))
    assert [r.run.id for r in drift.rows] == [runs[9].id, runs[6].id, runs[3].id]
    failed = queries.run_page(RunFilter(trigger="drift", status="failed"))
    assert [r.run.id for r in failed.rows] == [runs[0].id]
    metrics = queries.run_metrics([runs[0].id, runs[11].id])
    assert metrics[runs[11].id]["s1.evaluation.roc_auc"] == pytest.approx(0.61)
    queries.close()

    settings = load_settings(tmp_path, metadata_url=url)
    client = TestClient(create_app(settings), raise_server_exceptions=False)
    html = client.get("/runs?pipeline=train&per_page=25").text
    assert "6 matching" in html and html.count('class="badge succeeded"') == 6
    compare = client.get(f"/compare?run={runs[1].id}&run={runs[7].id}").text
    differing = re.findall(r'<tr class="differs"><th>([^<]+)</th>', compare)
    assert "lr" in differing and "batch" in differing and "s1.evaluation.roc_auc" in differing
    run_page = client.get(f"/runs/{runs[5].id}").text
    assert 'class="node state-cached"' in run_page and "cache hit" in run_page


def test_runs_carry_the_gates_verdict_and_headline_metric(url: str) -> None:
    """The step returns and the evaluation's ``Metrics`` read back on every backend."""
    store = open_metadata_store(url)
    ids = {}
    cases: list[tuple[str, dict[str, JSONValue], StepStatus]] = [
        ("blessed", {"blessed": True, "summary": "ok"}, StepStatus.SUCCEEDED),
        ("refused", {"blessed": False, "summary": "no gain"}, StepStatus.SUCCEEDED),
        ("quarantined", {}, StepStatus.FAILED),
    ]
    for name, returned, status in cases:
        run = store.create_run(RunRecord(
            id=new_id(), pipeline="train", pipeline_version="1",
            status=RunStatus.FAILED if status is StepStatus.FAILED else RunStatus.SUCCEEDED,
            parameters={"gate": {"changes": {"log_loss": 0.01}}}))
        step = store.save_step(StepRecord(
            id=new_id(), run_id=run.id, name="judge" if returned else "validate",
            component="evaluate" if returned else "validate", component_version="1",
            status=status, outputs={"return": returned} if returned else {}))
        if returned:
            art = store.add_artifact(ArtifactRecord(
                id=new_id(), type="Metrics", uri="file:///x", sha256="0" * 64, size=1,
                name="evaluation", producer_step_id=step.id,
                properties={"task": "binary", "roc_auc": 0.8, "log_loss": 0.42}))
            store.add_events([EventRecord(step.id, art.id, "output", "evaluation")])
        ids[name] = run.id
    store.close()
    queries = UiQueries(url)
    rows = {r.run.id: r for r in queries.run_page(RunFilter()).rows}
    queries.close()
    assert {name: rows[run_id].badge for name, run_id in ids.items()} == {
        "blessed": "blessed", "refused": "refused", "quarantined": "quarantined"}
    headline = rows[ids["refused"]].headline
    assert headline is not None and (headline.metric, headline.value) == ("log_loss", 0.42)
    assert rows[ids["quarantined"]].headline is None
