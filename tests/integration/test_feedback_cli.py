"""``ctloop feedback`` checks labels against the version that served each row.

A label the model cannot have (7 or 0.5 for a binary model) refuses the whole file with
one line, storing nothing; ids no prediction carries are counted and left out (refused
with --strict, stored with --keep-unknown); conflicting labels for one id are refused
unless a policy (first, last) is chosen, and counted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pandas as pd
import pytest

from ctloop.core.settings import load_settings
from ctloop.loop.controller import LoopController
from ctloop.loop.declaration import parse_loop
from ctloop.loop.sample import write_sample_spans
from ctloop.requestlog.log import open_prediction_log
from ctloop.testing.cli import cli

pytestmark = pytest.mark.slow

TABLE = {"model": "churn", "data": "landing/*.parquet", "event_time": "ts",
         "label": "churned", "id": "customer", "retrain_on": ["decay"],
         "train": {"flavor": "lightgbm", "params": {"n_estimators": 10}}}


def _labelled() -> int:
    log = open_prediction_log(None, settings=load_settings())
    try:
        frame = log.read(model_name="churn", with_labels=True)
        return int(frame["label"].notna().sum()) if "label" in frame.columns else 0
    finally:
        log.close()


def test_feedback_refuses_labels_that_do_not_fit_and_reports_unknown_and_conflicting_ids(
    ctloop_home: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from ctloop.serving import ServingConfig, create_app
    from ctloop.serving.background import background_server

    staged = ctloop_home / "staged"
    write_sample_spans(staged, spans=2, rows=200, change_at=None, shift_at=None)
    (ctloop_home / "landing").mkdir()
    shutil.copy(staged / "week-00.parquet", ctloop_home / "landing")
    controller = LoopController(parse_loop("churn", TABLE, root=ctloop_home), load_settings())
    try:
        assert controller.tick().reports[0].promoted == 1
    finally:
        controller.close()
    week = pd.read_parquet(staged / "week-01.parquet")
    app = create_app("churn", config=ServingConfig(models=("churn",), reload_interval=0),
                     settings=load_settings(), feature_store=False)
    with background_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        answer = client.post("/v1/models/churn:predict", json={
            "rows": week[["usage", "tenure", "spend", "plan"]].to_dict("records"),
            "request_ids": week["customer"].tolist()})
        assert answer.status_code == 200, answer.text
    good = week[["customer", "churned"]].rename(columns={"customer": "row_id",
                                                         "churned": "label"})

    def feedback(frame: pd.DataFrame, *options: str) -> tuple[int, str, str]:
        path = ctloop_home / "labels.csv"
        frame.to_csv(path, index=False)
        return cli(capsys, "feedback", "churn", str(path), *options)

    careless = good.assign(label=good["label"].astype(float))
    careless.loc[3, "label"], careless.loc[4, "label"] = 7.0, 0.5
    code, _, err = feedback(careless)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "2 label(s) do not fit churn:1, a binary model" in err and "has 7;" in err
    assert "Nothing of this batch was stored" in err and _labelled() == 0

    unknown = pd.concat([good, pd.DataFrame({"row_id": ["nobody-1", "nobody-2"],
                                             "label": [1, 0]})])
    code, _, err = feedback(unknown, "--strict")
    assert code == 2 and "2 of 202 labels name no served prediction" in err
    assert _labelled() == 0

    conflicting = pd.concat([good, good.head(1).assign(label=1 - good["label"].iloc[0])])
    code, _, err = feedback(conflicting)
    assert code == 2 and "1 id(s) have conflicting labels" in err and _labelled() == 0

    code, out, err = feedback(pd.concat([unknown, conflicting.tail(1)]), "--on-duplicate",
                              "last", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report | {"model": "churn", "stored": 200, "matched": 201, "rows": 203,
                     "unknown": 2, "conflicts": 1} == report
    assert _labelled() == 200
