"""Batch prediction fills missing inputs from the online store exactly as the service does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ctloop.artifacts import open_artifact_store
from ctloop.batch import predict_file
from ctloop.core.errors import UserInputError
from ctloop.examples.flights.features import flight_entities, flights_feature_store, training_set
from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
from ctloop.models import fit_model
from ctloop.registry import ModelRegistry
from ctloop.serving import create_app
from ctloop.serving.config import ServingConfig

REFS = ["weather:temp", "weather:wind_speed", "planes:seats"]
MOMENT = pd.Timestamp("2013-02-10 12:00")


def test_batch_and_service_fill_features_the_same_way(ctloop_home: Path) -> None:
    fs = flights_feature_store(online_store=f"sqlite:///{ctloop_home / 'online.db'}")
    train = training_set([1], store=fs, features=REFS).to_pandas()
    fit_model(
        train,
        label="delayed",
        features=["origin", "hour", "temp", "wind_speed", "seats"],
        algorithm="lightgbm",
        params={"n_estimators": 10, "n_jobs": 1},
    ).save(ctloop_home / "model")
    fs.materialize(end=MOMENT, views=["weather", "planes"])
    store = open_metadata_store(f"sqlite:///{ctloop_home / 'meta.db'}")
    artifacts = open_artifact_store((ctloop_home / "artifacts").as_uri())
    stored = artifacts.put(ctloop_home / "model")
    model = store.add_artifact(
        ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256, stored.size)
    )
    registry = ModelRegistry(store, actor="test")
    registry.register("flights", model.id, properties={"feature_refs": REFS})
    registry.promote("flights", 1)

    day = flight_entities([2])
    window = (day["event_timestamp"] > MOMENT - pd.Timedelta("1h")) & (
        day["event_timestamp"] <= MOMENT
    )
    rows = day[window].head(40)[["origin", "hour", "tailnum"]].reset_index(drop=True)
    rows.to_parquet(ctloop_home / "keys.parquet")
    result = predict_file(
        registry,
        artifacts,
        "flights@champion",
        ctloop_home / "keys.parquet",
        ctloop_home / "scored.parquet",
        feature_store=fs,
        chunk_rows=15,
        now=MOMENT.isoformat(),
    )
    assert len(rows) > 15 and result.rows == len(rows)
    assert sorted(result.missing_filled) == ["seats", "temp", "wind_speed"]
    scored = pd.read_parquet(ctloop_home / "scored.parquet")
    # Batch scoring answers rows the store cannot fill (flagged, values null); the service
    # does the same when told to flag instead of rejecting them.
    app = create_app(
        "flights", config=ServingConfig(missing_features="flag"), metadata=store,
        artifacts=artifacts, feature_store=fs, prediction_log=False,
    )
    with TestClient(app) as client:
        served = client.post(
            "/v1/models/flights:predict",
            json={"rows": rows.to_dict("records"), "now": MOMENT.isoformat()},
        )
        assert served.status_code == 200, served.text
        served = served.json()["predictions"]
        explained = client.post(
            "/v1/models/flights:explain",
            json={"instances": rows.head(3).to_dict("records"), "now": MOMENT.isoformat()},
        ).json()
    np.testing.assert_allclose(scored["score"], served, atol=1e-12)
    assert [e["prediction"] for e in explained["explanations"]] == pytest.approx(served[:3])

    # Without the feature store the same file cannot be scored, and says why.
    with pytest.raises(UserInputError, match=r"missing column\(s\) \['temp', 'wind_speed'"):
        predict_file(
            registry,
            artifacts,
            "flights@champion",
            ctloop_home / "keys.parquet",
            ctloop_home / "again.parquet",
        )
    store.close()
    fs.close()
