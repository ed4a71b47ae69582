"""Drift and decay monitors on real flights, read back from a real prediction log."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop.artifacts import open_artifact_store
from ctloop.core.errors import NotFound, UserInputError
from ctloop.data.stats import compute_statistics
from ctloop.metadata.base import ArtifactRecord
from ctloop.models.metrics import metric_matrix
from ctloop.monitoring.monitors import MonitorResult, check_decay, check_drift, record_result
from ctloop.registry import ModelRegistry
from ctloop.requestlog.log import open_prediction_log
from ctloop.testing.inmemory import InMemoryMetadataStore

FEATURES = ["temp", "dewp", "humid", "wind_speed", "distance", "hour", "origin", "carrier"]


@pytest.fixture
def july_log(tmp_path: Path, july, make_records):
    log = open_prediction_log(tmp_path / "july")
    log.append(make_records(july))
    return log


def test_drift_fires_for_january_reference_vs_july_serving(july_log, january) -> None:
    result = check_drift(july_log, "delays", january[FEATURES])
    assert isinstance(result, MonitorResult)
    assert result.fired and result.kind == "drift"
    assert {"temp", "dewp"} <= set(result.strings("drifted_features"))
    assert result.n == len(july_log.read())
    assert "FIRED" in result.summary() and "temp" in result.summary()


def test_drift_reference_as_statistics_or_parquet(july_log, january, tmp_path: Path) -> None:
    stats = compute_statistics(january[FEATURES])
    assert check_drift(july_log, "delays", stats).fired
    path = tmp_path / "jan.parquet"
    january[FEATURES].to_parquet(path)
    assert check_drift(july_log, "delays", path).fired
    stats_file = tmp_path / "jan.json"
    stats_file.write_text(json.dumps(stats.to_dict()))
    assert check_drift(july_log, "delays", str(stats_file)).fired


def test_no_drift_between_two_halves_of_one_month(tmp_path: Path, january, make_records) -> None:
    half = np.arange(len(january)) % 2 == 0
    log = open_prediction_log(tmp_path)
    log.append(make_records(january[~half]))
    result = check_drift(log, "delays", january[half][FEATURES])
    assert not result.fired
    assert result.details["drifted_features"] == []


def test_drift_window_and_too_few_rows(july_log, january) -> None:
    week = check_drift(july_log, "delays", january[FEATURES],
                       start=datetime(2013, 7, 1), end=datetime(2013, 7, 8))
    assert week.fired and week.n < len(july_log.read()) / 3
    assert week.window["start"] == "2013-07-01T00:00:00+00:00"
    empty = check_drift(july_log, "delays", january[FEATURES], start=datetime(2020, 1, 1))
    assert not empty.fired and empty.n == 0 and "need 100" in empty.note
    assert empty.status == "no_data" and "NO DATA" in empty.summary()
    assert check_drift(july_log, "nobody", january[FEATURES]).status == "no_data"


def test_drift_bad_references(july_log, tmp_path: Path) -> None:
    missing = check_drift(july_log, "delays", tmp_path / "missing.parquet")
    assert missing.status == "no_data" and "does not exist" in missing.note
    with pytest.raises(UserInputError, match="share no columns"):
        check_drift(july_log, "delays", pd.DataFrame({"other": [1.0, 2.0]}))


def _auc(frame: pd.DataFrame) -> float:
    score = np.clip(frame["dep_delay"].fillna(0).to_numpy() / 60.0, 0, 1)
    y = frame["delayed"].to_numpy()
    return float(metric_matrix(np.ones((1, len(y))), y, score, task="classification")["roc_auc"][0])


def _labelled_log(path: Path, frame: pd.DataFrame, make_records, flip_share: float = 0.0):
    log = open_prediction_log(path)
    log.append(make_records(frame))
    labels = frame["delayed"].to_numpy().astype(float)
    if flip_share:
        rng = np.random.default_rng(0)
        flip = rng.random(len(labels)) < flip_share
        labels[flip] = 1 - labels[flip]
    log.add_labels(pd.DataFrame({"request_id": frame.index.astype(str), "label": labels}))
    return log


def test_decay_fires_when_labels_are_flipped(tmp_path: Path, january, make_records) -> None:
    baseline = _auc(january)
    flipped = _labelled_log(tmp_path / "a", january, make_records, flip_share=0.3)
    result = check_decay(flipped, "delays", baseline=baseline, max_drop=0.05)
    assert result.fired and result.kind == "decay"
    assert result.value is not None and result.value < baseline - 0.05
    assert result.n == len(january)
    assert result.threshold == pytest.approx(baseline - 0.05)
    assert "FIRED" in result.summary()


def test_decay_quiet_on_true_labels(tmp_path: Path, january, make_records) -> None:
    baseline = _auc(january)
    log = _labelled_log(tmp_path, january, make_records)
    result = check_decay(log, "delays", baseline=baseline, max_drop=0.05)
    assert not result.fired
    assert result.value == pytest.approx(baseline)


def test_decay_needs_enough_labels(tmp_path: Path, january, make_records) -> None:
    log = open_prediction_log(tmp_path)
    log.append(make_records(january.head(1000)))
    result = check_decay(log, "delays", baseline=0.9)
    assert not result.fired and result.value is None and "0 labelled rows" in result.note
    with pytest.raises(UserInputError, match="Unknown metric"):
        check_decay(log, "delays", metric="auc", baseline=0.9)


def _register(store, name: str, auc: float | None) -> None:
    art = store.add_artifact(ArtifactRecord(id=f"a-{name}-{auc}", type="Model",
                                            uri="file:///nowhere", sha256="0" * 64, size=1))
    evaluation = {} if auc is None else {
        "overall": {"metrics": {"roc_auc": {"value": auc, "lo": None, "hi": None}}}}
    ModelRegistry(store).register(name, art.id, properties={"evaluation": evaluation})


def test_decay_baseline_from_the_registry(tmp_path: Path, january, make_records) -> None:
    store = InMemoryMetadataStore()
    _register(store, "delays", _auc(january))
    log = _labelled_log(tmp_path / "log", january, make_records, flip_share=0.3)
    result = check_decay(log, "delays", store=store)
    assert result.fired and result.baseline == pytest.approx(_auc(january))
    assert result.details["baseline_version"] == 1
    with pytest.raises(NotFound, match="No model named 'ghost'"):
        check_decay(log, "ghost", store=store)
    _register(store, "bare", None)
    with pytest.raises(UserInputError, match="no recorded 'roc_auc'"):
        check_decay(log, "bare", store=store)


def test_results_are_recorded_as_artifacts(tmp_path: Path, july_log, january) -> None:
    store = InMemoryMetadataStore()
    artifacts = open_artifact_store((tmp_path / "artifacts").as_uri())
    result = check_drift(july_log, "delays", january[FEATURES],
                         end=datetime(2013, 8, 1, tzinfo=UTC))
    record = record_result(result, store, artifacts)
    listed = store.list_artifacts(type="MonitorReport")
    assert [a.id for a in listed] == [record.id]
    assert listed[0].properties["summary"] == result.summary()
    body = json.loads(artifacts.get(record.uri, record.sha256).read_text())
    assert body["fired"] is True and body["kind"] == "drift"


def test_decay_results_are_pinned(tmp_path: Path, july, make_records) -> None:
    """Whole decay results on July with a fifth of the labels flipped, with a given baseline
    and with the registry's (a lower-is-better metric), pinned to the digit."""
    log = _labelled_log(tmp_path, july, make_records, flip_share=0.2)
    given = check_decay(log, "delays", baseline=0.8, max_drop=0.02).to_dict()
    base = {"higher_is_better": True, "rows_logged": 28293, "served_version": 1,
            "task": "binary"}
    assert given == {
        "kind": "decay", "model": "delays", "fired": True, "status": "fired", "note": "",
        "value": pytest.approx(0.7193953927305314), "threshold": pytest.approx(0.78),
        "baseline": 0.8, "window": {"start": None, "end": None}, "n": 28293,
        "details": {**base, "metric": "roc_auc", "max_drop": 0.02, "baseline_version": None,
                    "drop": pytest.approx(0.08060460726946861)},
        "summary": "decay delays: FIRED: roc_auc 0.7194 vs baseline 0.8 (fires below 0.78); "
                   "n=28293; … → …",
    }
    store = InMemoryMetadataStore()
    art = store.add_artifact(ArtifactRecord(id="a1", type="Model", uri="file:///nowhere",
                                            sha256="0" * 64, size=1))
    metrics = {"roc_auc": {"value": 0.77, "lo": None, "hi": None},
               "log_loss": {"value": 0.4, "lo": None, "hi": None}}
    ModelRegistry(store).register("delays", art.id, properties={
        "evaluation": {"overall": {"metrics": metrics}}})
    registered = check_decay(log, "delays", store=store, metric="log_loss").to_dict()
    assert registered == {
        "kind": "decay", "model": "delays", "fired": True, "status": "fired", "note": "",
        "value": pytest.approx(5.698251486245192), "threshold": pytest.approx(0.45),
        "baseline": 0.4, "window": {"start": None, "end": None}, "n": 28293,
        "details": {**base, "higher_is_better": False, "metric": "log_loss", "max_drop": 0.05,
                    "baseline_version": 1, "drop": pytest.approx(5.298251486245191)},
        "summary": "decay delays: FIRED: log_loss 5.698 vs baseline 0.4 (fires above 0.45); "
                   "n=28293; … → …",
    }


def test_stationary_drift_result_is_pinned(july_log, january) -> None:
    """A stationary-threshold drift result over two weeks, with columns, weights and an
    excluded feature, pinned to the digit."""
    result = check_drift(july_log, "delays", january[FEATURES], thresholds="stationary",
                         start=datetime(2013, 7, 1), end=datetime(2013, 7, 15),
                         columns=["temp", "origin", "other"], share=0.3,
                         weights={"temp": 1.0}, exclude=["origin"]).to_dict()
    temp = pytest.approx(4.4350759445995385)
    assert result == {
        "kind": "drift", "model": "delays", "fired": True, "status": "fired", "note": "",
        "value": 1.0, "threshold": 0.3, "baseline": None, "n": 12275,
        "window": {"start": "2013-07-01T00:00:00+00:00", "end": "2013-07-15T00:00:00+00:00"},
        "details": {
            "dataset_drifted": True, "drift_share": 0.3, "drifted_features": ["temp"],
            "excluded": ["origin"], "reference": "DataFrame[26398 rows]",
            "scores": {"temp": {"drifted": True, "method": "wasserstein", "score": temp}},
            "share_drifted": 1.0, "thresholds": "stationary", "weighted": True,
            "top_drifted": [{"drifted": True, "feature": "temp", "score": temp,
                             "ratio": pytest.approx(3.0502476959412483),
                             "threshold": pytest.approx(1.4540051781699515)}],
        },
        "summary": "drift delays: FIRED: 1 of features drifted (fires at 0.3); drifted: temp; "
                   "n=12275; 2013-07-01T00:00:00+00:00 → 2013-07-15T00:00:00+00:00",
    }
