"""A loop tick cannot be broken by stored labels, and never ingests a span twice.

Labels ``7`` and ``0.5`` stored for a binary model (the log accepts what it is given)
are skipped with an anomaly on the span; the tick goes on and judges decay on the
labels that fit. A tick that died after ingesting a span does not ingest it again.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from ctloop.core.settings import load_settings
from ctloop.loop.controller import LoopController
from ctloop.loop.declaration import parse_loop
from ctloop.loop.sample import write_sample_spans
from ctloop.metadata import open_metadata_store

pytestmark = pytest.mark.slow

TABLE = {"model": "churn", "data": "landing/*.parquet", "event_time": "ts",
         "label": "churned", "id": "customer", "retrain_on": ["decay"],
         "window": "1 span", "decay": {"max_drop": 0.1, "min_labels": 100},
         "train": {"flavor": "lightgbm", "params": {"n_estimators": 10}}}


def _serve(rows: pd.DataFrame) -> None:
    from ctloop.serving import ServingConfig, create_app
    from ctloop.serving.background import background_server

    app = create_app("churn", config=ServingConfig(models=("churn",), reload_interval=0),
                     settings=load_settings(), feature_store=False)
    with background_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        answer = client.post("/v1/models/churn:predict", json={
            "rows": rows[["usage", "tenure", "spend", "plan"]].to_dict("records"),
            "request_ids": rows["customer"].tolist()})
        assert answer.status_code == 200, answer.text


def _ingest_runs(span: str) -> int:
    store = open_metadata_store(load_settings().metadata_url)
    try:
        return sum(1 for r in store.list_runs(limit=500) if r.pipeline == "loop_ingest"
                   and (r.trigger_info or {}).get("span") == span)
    finally:
        store.close()


def test_labels_that_do_not_fit_the_model_are_skipped_and_the_tick_goes_on(
    ctloop_home: Path,
) -> None:
    from ctloop.requestlog.log import open_prediction_log

    staged = ctloop_home / "staged"
    write_sample_spans(staged, spans=2, rows=400, change_at=None, shift_at=None)
    (ctloop_home / "landing").mkdir()
    shutil.copy(staged / "week-00.parquet", ctloop_home / "landing")
    spec = parse_loop("churn", TABLE, root=ctloop_home)
    controller = LoopController(spec, load_settings())
    try:
        (boot,) = controller.tick().reports
        assert boot.promoted == 1
        week1 = pd.read_parquet(staged / "week-01.parquet")
        _serve(week1)
        labels = week1["churned"].astype(float).to_numpy().copy()
        labels[:5], labels[5:8] = 7.0, 0.5  # what a careless feedback file holds
        log = open_prediction_log(None, settings=load_settings())
        try:
            log.add_labels(pd.DataFrame({"request_id": week1["customer"], "label": labels}))
        finally:
            log.close()
        shutil.copy(staged / "week-01.parquet", ctloop_home / "landing")
        result = controller.tick()
        assert result.errors == []
        (report,) = result.reports
        assert report.status == "valid" and report.live is not None
        assert report.live["n"] == 392  # 400 served, 8 labels left out
        assert report.live["roc_auc"] is not None
        (anomaly,) = report.anomalies
        assert anomaly.startswith("[warning] labels: 8 stored labels do not fit the binary "
                                  "model (e.g. 7.0, 0.5; expected 0 or 1): skipped"), anomaly
        decay = next(t for t in report.triggers if t["name"] == "decay")
        assert decay["reason"].startswith("live roc_auc "), decay
    finally:
        controller.close()


def test_a_retried_tick_never_ingests_a_span_again(ctloop_home: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    write_sample_spans(ctloop_home / "landing", spans=1, rows=300, change_at=None,
                       shift_at=None)
    spec = parse_loop("churn", TABLE, root=ctloop_home)
    controller = LoopController(spec, load_settings())
    original = controller.phases.features
    calls: list[Any] = []

    def dies_once(frame: pd.DataFrame) -> list[str]:
        calls.append(1)
        if len(calls) == 1:  # the controller dies right after the span was ingested
            raise RuntimeError("killed after ingest")
        return original(frame)

    monkeypatch.setattr(controller.phases, "features", dies_once)
    try:
        with pytest.raises(RuntimeError, match="killed after ingest"):
            controller.tick()
        assert _ingest_runs("week-00") == 1
        (report,) = controller.tick().reports
        assert report.promoted == 1 and report.bootstrap
        assert _ingest_runs("week-00") == 1  # read back, not run again
    finally:
        controller.close()
