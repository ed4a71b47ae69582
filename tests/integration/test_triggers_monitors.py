"""Degradation and drift triggers on real flights: the controller reads the project's
prediction log, runs the monitor, records a MonitorReport and starts the pipeline."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop.core.jsontypes import as_str
from ctloop.core.settings import load_settings
from ctloop.examples.flights.data import flights, load_table
from ctloop.metadata import open_metadata_store
from ctloop.models.metrics import metric_matrix
from ctloop.monitoring import PredictionRecord, open_prediction_log
from ctloop.triggers import Controller, make_trigger

PIPES = Path(__file__).with_name("triggers_pipelines.py")
FEATURES = ["temp", "dewp", "humid", "wind_speed", "distance", "hour", "origin", "carrier"]


def _served(month: int) -> pd.DataFrame:
    weather = load_table("weather")[["origin", "time_hour", "temp", "dewp", "humid", "wind_speed"]]
    frame = flights([month])
    return frame.merge(weather, on=["origin", "time_hour"], how="left").set_index(frame.index)


def _log(frame: pd.DataFrame, *, flip_share: float = 0.0) -> float:
    """Serve ``frame`` into the project's log with labels; returns the true AUC."""
    score = np.clip(frame["dep_delay"].fillna(0).to_numpy() / 60.0, 0, 1)
    feats = [{str(k): v for k, v in row.items()} for row in
             frame[FEATURES].astype(object).where(frame[FEATURES].notna(), None).to_dict("records")]
    ts = frame["time_hour"].dt.tz_localize(UTC).dt.to_pydatetime()
    log = open_prediction_log()
    log.append([PredictionRecord(str(i), "delays", 1, "champion", t, float(s), f)
                for i, t, s, f in zip(frame.index, ts, score, feats, strict=True)])
    labels = frame["delayed"].to_numpy().astype(float)
    flip = np.random.default_rng(1).random(len(labels)) < flip_share
    labels[flip] = 1 - labels[flip]
    log.add_labels(pd.DataFrame({"request_id": frame.index.astype(str), "label": labels}))
    log.close()
    y = frame["delayed"].to_numpy()
    return float(metric_matrix(np.ones((1, len(y))), y, score, task="classification")
                 ["roc_auc"][0])


@pytest.fixture(scope="module")
def january() -> pd.DataFrame:
    return _served(1)


def test_degradation_trigger_fires_on_flipped_labels(ctloop_home: Path, january) -> None:
    auc = _log(january, flip_share=0.3)
    decay = make_trigger("decay", f"{PIPES}:hello", cooldown="1d",
                         degradation={"model": "delays", "baseline": auc, "max_drop": 0.05},
                         params={"message": "{summary}"})
    quiet = make_trigger("quiet", f"{PIPES}:hello",
                         degradation={"model": "delays", "baseline": auc, "max_drop": 0.5})
    controller = Controller([decay, quiet])
    (firing,) = controller.tick()
    assert firing.trigger == "decay" and firing.status == "succeeded"
    assert firing.info["value"] < auc - 0.05
    store = open_metadata_store(load_settings().metadata_url)
    assert firing.run_id is not None
    run = store.get_run(firing.run_id)
    assert run.trigger == "degradation"
    assert as_str(run.parameters["message"]).startswith("decay delays")
    (report,) = store.list_artifacts(type="MonitorReport")
    assert report.id == run.trigger_info["report"] and report.properties["fired"] is True
    assert controller.tick() == []  # cooling down


def test_degradation_trigger_quiet_on_true_labels(ctloop_home: Path, january) -> None:
    auc = _log(january)
    trigger = make_trigger("decay", f"{PIPES}:hello",
                           degradation={"model": "delays", "baseline": auc})
    assert Controller([trigger]).tick() == []


def test_drift_trigger_fires_for_july_against_january(ctloop_home: Path, january) -> None:
    january[FEATURES].to_parquet(ctloop_home / "train.parquet")
    _log(_served(7))
    trigger = make_trigger("drift", f"{PIPES}:hello", root=ctloop_home,
                           drift={"model": "delays", "reference": "train.parquet"})
    (firing,) = Controller([trigger]).tick()
    assert firing.kind == "drift" and firing.status == "succeeded"
    assert "temp" in firing.info["summary"]


def test_unknown_model_is_an_error_firing_not_a_crash(ctloop_home: Path, january) -> None:
    _log(january.head(500))
    ghost = make_trigger("ghost", f"{PIPES}:hello", degradation={"model": "ghost"})
    cron = make_trigger("cron", f"{PIPES}:hello", cron="* * * * *")
    controller = Controller([ghost, cron])
    (firing,) = controller.tick()
    assert firing.status == "error" and "No model named 'ghost'" in (firing.error or "")
    assert controller.status()["ghost"]["last_error"] == firing.error
