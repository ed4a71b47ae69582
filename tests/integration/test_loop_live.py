"""The live loop: the controller, the real prediction service, labels by `ctloop feedback`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pandas as pd
import pytest

from ctloop.core.settings import load_settings
from ctloop.loop.sample import write_sample_spans
from ctloop.testing.cli import cli
from ctloop.testing.loops import churn_loop

pytestmark = pytest.mark.slow

TOML = churn_loop(
    'id = "customer"',
    'window = "auto"',
    'retrain_on = ["decay", "drift"]',
    'train = { flavor = "lightgbm", params = { n_estimators = 20 } }',
    'decay = { max_drop = 0.1, min_labels = 100 }',
    'drift = { columns = ["usage", "tenure", "spend"] }',
)


def _serve(rows: pd.DataFrame) -> None:
    """Score rows through the project's prediction service, as production would."""
    from ctloop.serving import ServingConfig, create_app
    from ctloop.serving.background import background_server

    features = ["usage", "tenure", "spend", "plan"]
    app = create_app("churn", config=ServingConfig(models=("churn",), reload_interval=0),
                     settings=load_settings(), feature_store=False)
    with background_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        answer = client.post("/v1/models/churn:predict", json={
            "rows": rows[features].to_dict("records"),
            "request_ids": rows["customer"].tolist()})
        assert answer.status_code == 200, answer.text


def test_live_loop_with_served_traffic_and_feedback(ctloop_home: Path, capsys) -> None:
    (ctloop_home / "ctloop.toml").write_text(TOML)
    staged = ctloop_home / "staged"
    write_sample_spans(staged, spans=3, rows=600, change_at=2, shift_at=None)
    landing = ctloop_home / "landing"
    landing.mkdir()
    for name in ("week-00", "week-01"):
        shutil.copy(staged / f"{name}.parquet", landing)
    code, out, err = cli(capsys, "loop", "run", "churn", "--once", "--json")
    assert code == 0, err
    first = json.loads(out)["spans"]
    assert first[0]["bootstrap"] and first[0]["promoted"] == 1
    quiet = {t["name"]: t for t in first[1]["triggers"]}
    assert not quiet["decay"]["fired"] and quiet["decay"]["reason"].startswith("no data")
    # Production serves the week the concept flipped; its labels arrive by row id.
    week2 = pd.read_parquet(staged / "week-02.parquet")
    _serve(week2)
    labels = ctloop_home / "labels.csv"
    week2[["customer", "churned"]].rename(columns={"customer": "row_id",
                                                   "churned": "label"}).to_csv(labels,
                                                                               index=False)
    code, out, err = cli(capsys, "feedback", "churn", str(labels), "--json")
    assert code == 0, err
    delivered = json.loads(out)
    assert delivered | {"model": "churn", "stored": 600, "matched": 600, "rows": 600,
                        "unknown": 0, "conflicts": 0} == delivered
    # The week's batch lands: decay is measured on the served rows and fires.
    shutil.copy(staged / "week-02.parquet", landing)
    code, out, err = cli(capsys, "loop", "run", "churn", "--once", "--json")
    assert code == 0, err
    (week,) = json.loads(out)["spans"]
    fired = {t["name"]: t for t in week["triggers"]}
    assert fired["decay"]["fired"] and week["live"]["n"] == 600
    assert week["window"] == ["week-02"] and week["promoted"] == 2
    code, out, err = cli(capsys, "loop", "status", "churn", "--json")
    status = json.loads(out)
    assert status["champion"] == 2 and status["valid"] == 3 and status["quarantined"] == 0
    assert {t["name"]: t["fired"] for t in status["triggers"]} == {"decay": True,
                                                                    "drift": False}
    assert status["lease"] is None  # released after the tick
    code, out, _ = cli(capsys, "loop", "run", "churn", "--once", "--json")
    assert json.loads(out)["spans"] == []  # nothing new: nothing fires twice
