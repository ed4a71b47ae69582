"""Online features in the prediction service: looked up by entity keys, request values win."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from ctloop.artifacts import open_artifact_store
from ctloop.examples.flights.features import flight_entities, flights_feature_store, training_set
from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
from ctloop.models import fit_model
from ctloop.registry import ModelRegistry
from ctloop.serving import ServingConfig, create_app

REFS = ["weather:temp", "weather:wind_speed", "planes:seats"]
MOMENT = pd.Timestamp("2013-02-10 12:00")


def test_missing_features_come_from_the_online_store(ctloop_home: Path) -> None:
    fs = flights_feature_store(online_store=f"sqlite:///{ctloop_home / 'online.db'}")
    train = training_set([1], store=fs, features=REFS).to_pandas()
    columns = ["origin", "hour", "temp", "wind_speed", "seats"]
    trained = fit_model(
        train,
        label="delayed",
        features=columns,
        algorithm="lightgbm",
        params={"n_estimators": 10, "n_jobs": 1},
    )
    trained.save(ctloop_home / "model")
    fs.materialize(end=MOMENT, views=["weather", "planes"])

    store = open_metadata_store(f"sqlite:///{ctloop_home / 'meta.db'}")
    artifacts = open_artifact_store((ctloop_home / "artifacts").as_uri())
    stored = artifacts.put(ctloop_home / "model")
    model = store.add_artifact(
        ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256, stored.size)
    )
    data = store.add_artifact(
        ArtifactRecord(
            new_id(), "Dataset", "file:///d", "0" * 64, 1, properties={"feature_refs": REFS}
        )
    )
    registry = ModelRegistry(store, actor="test")
    # The refs are found through the version's lineage: its training data's properties.
    registry.register("flights", model.id, properties={"lineage": {"inputs": [{"id": data.id}]}})
    registry.promote("flights", 1)

    day = flight_entities([2])
    rows = day[
        (day["event_timestamp"] > MOMENT - pd.Timedelta("1h")) & (day["event_timestamp"] <= MOMENT)
    ].head(30)
    rows = rows[["origin", "hour", "tailnum"]].reset_index(drop=True)
    online = fs.get_online_features(REFS, {str(k): v for k, v in rows.to_dict("list").items()},
                                    now=MOMENT)
    full = rows.assign(**{r.split(":")[1]: pd.Series(online.values[r]) for r in REFS})
    loaded = registry.load("flights:1", artifacts)
    assert full["temp"].notna().all() and full["seats"].notna().any()

    unknown_planes = full["seats"].isna().to_numpy()
    assert unknown_planes.any()  # tailnums the planes view has never seen
    url = "/v1/models/flights:predict"
    strict = create_app(
        "flights", metadata=store, artifacts=artifacts, feature_store=fs, prediction_log=False
    )
    with TestClient(strict) as client:  # by default such rows are refused, naming the input
        refused = client.post(
            url, json={"rows": rows.to_dict("records"), "now": MOMENT.isoformat()}
        )
        assert refused.status_code == 422, refused.text
        assert "seats" in refused.json()["detail"] and "missing_features" in refused.text
        known = rows[~unknown_planes]
        answered = client.post(
            url, json={"rows": known.to_dict("records"), "now": MOMENT.isoformat()}
        ).json()
        np.testing.assert_allclose(
            answered["predictions"], loaded.predict(full[~unknown_planes]), atol=1e-12
        )
        assert "missing" not in answered
    app = create_app(
        "flights", metadata=store, artifacts=artifacts, feature_store=fs, prediction_log=False,
        config=ServingConfig(missing_features="flag"),
    )
    with TestClient(app) as client:
        body = client.post(
            url, json={"rows": rows.to_dict("records"), "now": MOMENT.isoformat()}
        ).json()
        np.testing.assert_allclose(body["predictions"], loaded.predict(full), atol=1e-12)
        assert [m == ["seats"] for m in body["missing"]] == unknown_planes.tolist()
        hot = rows.assign(temp=99.0)
        overridden = client.post(
            url, json={"rows": hot.to_dict("records"), "now": MOMENT.isoformat()}
        ).json()
        np.testing.assert_allclose(
            overridden["predictions"], loaded.predict(full.assign(temp=99.0)), atol=1e-12
        )
        no_keys = client.post(url, json={"rows": [{"hour": 5}], "now": MOMENT.isoformat()})
        assert no_keys.status_code == 422 and "origin" in no_keys.json()["detail"]
        assert client.get("/v1/models/flights").json()["routes"][0]["feature_refs"] == REFS
        assert "weather" in str(client.get("/features").json())
    store.close()
    fs.close()
