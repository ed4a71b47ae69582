"""Issue 19: a span a worker cannot read is an infrastructure failure, never a data anomaly.

In a deployment, a path that exists in the controller's container but not in a
Dask worker's made every span "quarantined (1 anomalies)" for a
``FileNotFoundError``. The loop now quarantines only for the data's own faults
(ValidationFailed, an unreadable table) and raises ``IngestFailed`` otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ctloop.core.settings import load_settings
from ctloop.loop import get_loop
from ctloop.loop.failures import IngestFailed
from ctloop.loop.phases import LoopPhases
from ctloop.loop.sample import write_sample_spans
from ctloop.loop.spans import Span

pytestmark = pytest.mark.slow

TOML = """
[ctloop.loops.churn]
model = "churn"
data = "landing/*.parquet"
event_time = "ts"
label = "churned"
id = "customer"
retrain_on = ["decay"]
train = { flavor = "lightgbm", params = { n_estimators = 10 } }
decay = { min_labels = 100 }
"""


def _phases(project: Path) -> LoopPhases:
    (project / "ctloop.toml").write_text(TOML)
    write_sample_spans(project / "landing", spans=1, rows=200, change_at=None, shift_at=None)
    settings = load_settings()
    return LoopPhases(get_loop("churn", settings), settings)


def _span(path: Path) -> Span:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Span(name=path.stem, path=str(path), start=now, end=now, rows=200)


def test_a_span_the_worker_cannot_find_raises_instead_of_being_quarantined(
        ctloop_home: Path) -> None:
    phases = _phases(ctloop_home)
    try:
        first = sorted((ctloop_home / "landing").glob("*.parquet"))[0]
        good = _span(first)  # pins the schema, as the first span does
        assert phases.validate(good, None).ok

        gone = _span(ctloop_home / "elsewhere" / first.name)  # seen by one process only
        with pytest.raises(IngestFailed) as caught:  # raised: never a quarantine
            phases.validate(gone, good)
        assert "not the data" in caught.value.message
        assert "FileNotFoundError" in caught.value.message
    finally:
        phases.close()


def test_a_span_without_its_label_is_still_quarantined(ctloop_home: Path) -> None:
    import pandas as pd

    phases = _phases(ctloop_home)
    try:
        first = sorted((ctloop_home / "landing").glob("*.parquet"))[0]
        good = _span(first)
        assert phases.validate(good, None).ok
        broken = ctloop_home / "broken.parquet"
        pd.read_parquet(first).drop(columns=["churned"]).to_parquet(broken, index=False)
        ingested = phases.validate(_span(broken), None)
        assert not ingested.ok  # the data's own fault: quarantined
        assert any("no label column" in line for line in ingested.anomalies), ingested.anomalies
    finally:
        phases.close()
