"""Hot reload: promotion and rollback are served without a restart; broken versions are not."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ctloop.core.errors import IntegrityError
from ctloop.requestlog.log import open_prediction_log
from ctloop.serving import ServingConfig
from ctloop.testing.services import patience

ROWS = [
    {"origin": "JFK", "hour": 7, "distance": 1000},
    {"origin": "EWR", "hour": 18, "distance": 300},
]


def _versions(client: TestClient) -> set[int]:
    response = client.post("/v1/models/flights:predict", json={"rows": ROWS})
    assert response.status_code == 200, response.text
    return set(response.json()["versions"])


def test_promote_and_rollback_swap_the_champion(three_versions) -> None:
    app = three_versions.app("flights")
    pool = app.state.serving.pool
    with TestClient(app) as client:
        assert _versions(client) == {1}
        three_versions.registry.promote("flights", 3, reason="better")
        pool.refresh()
        assert _versions(client) == {3}
        three_versions.registry.rollback("flights")
        pool.refresh()
        assert _versions(client) == {1}
        assert client.get("/v1/models/flights").json()["aliases"]["champion"] == 1


def test_the_poller_follows_the_registry(three_versions) -> None:
    config = ServingConfig.from_table({"reload_interval": 0.1})
    with TestClient(three_versions.app("flights", config=config)) as client:
        assert _versions(client) == {1}
        three_versions.registry.promote("flights", 2)
        deadline = time.monotonic() + patience(5)
        while _versions(client) != {2} and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _versions(client) == {2}


def test_a_version_that_fails_to_load_keeps_the_old_one(three_versions, model_dirs) -> None:
    broken = three_versions.register(model_dirs[2], damaged=True)  # recorded hash is wrong
    app = three_versions.app("flights")
    with TestClient(app) as client:
        with pytest.raises(IntegrityError, match="cannot be promoted"):
            three_versions.registry.promote("flights", broken)
        # Moved behind the registry's back (it refuses): the service still refuses to load it.
        three_versions.store.move_alias("flights", "champion", broken, actor="x", reason="")
        app.state.serving.pool.refresh()
        assert _versions(client) == {1}
        ready = client.get("/ready")
        assert ready.status_code == 200  # still serving version 1
        error = ready.json()["errors"]["flights"]["champion"]
        assert f"flights:{broken} failed to load" in error and "integrity" in error
        assert client.get("/v1/models").json()["errors"]["flights"]["champion"] == error
        three_versions.registry.rollback("flights")
        app.state.serving.pool.refresh()
        assert _versions(client) == {1} and client.get("/ready").json()["errors"] == {}


def test_a_broken_champion_at_startup_is_not_ready(project, model_dirs) -> None:
    version = project.register(model_dirs[0], damaged=True)
    project.store.move_alias("flights", "champion", version, actor="x", reason="")
    with TestClient(project.app("flights")) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["missing"] == ["flights"]
        response = client.post("/v1/models/flights:predict", json={"rows": ROWS})
        assert response.status_code == 503 and "failed to load" in response.json()["detail"]


def test_request_log_has_one_record_per_served_row(three_versions, sample, tmp_path) -> None:
    config = ServingConfig.from_table({"canary": "challenger=30%"})
    log = open_prediction_log(tmp_path / "log")
    app = three_versions.app("flights", config=config, prediction_log=log)
    with TestClient(app) as client:
        answers = [
            client.post(
                "/v1/models/flights:predict",
                json={"rows": sample.iloc[i : i + 25].to_dict("records")},
            ).json()
            for i in range(0, 100, 25)
        ]
    frame = log.read(model_name="flights")  # the app flushed the log on shutdown
    assert len(frame) == 100 and frame["served"].all() and frame["request_id"].is_unique
    want = (
        pd.DataFrame(
            {
                "request_id": [r for a in answers for r in a["request_ids"]],
                "route": [r for a in answers for r in a["routes"]],
                "model_version": [v for a in answers for v in a["versions"]],
                "prediction": [p for a in answers for p in a["predictions"]],
            }
        )
        .set_index("request_id")
        .sort_index()
    )
    got = frame.set_index("request_id").sort_index()
    assert (got["route"] == want["route"]).all()
    assert (got["model_version"] == want["model_version"]).all()
    assert (got["prediction"] - want["prediction"]).abs().max() < 1e-12
    assert set(got["route"]) == {"champion", "challenger"}
    assert {"f_origin", "f_hour", "f_distance"} <= set(frame.columns)


def test_replayed_requests_are_logged_at_their_logical_time(
    three_versions, sample, tmp_path
) -> None:
    log = open_prediction_log(tmp_path / "log")
    app = three_versions.app("flights", prediction_log=log)
    with TestClient(app) as client:
        ok = client.post("/v1/models/flights:predict",
                         json={"rows": sample.head(5).to_dict("records"),
                               "now": "2013-06-01T12:00:00"})
        bad = client.post("/v1/models/flights:predict",
                          json={"rows": sample.head(5).to_dict("records"), "now": "June"})
    assert ok.status_code == 200
    assert bad.status_code == 422 and "ISO timestamp" in bad.json()["detail"]
    frame = log.read(model_name="flights", include_rejected=True, include_unserved=True)
    answered = frame[frame["served"]]
    assert len(answered) == 5 and len(frame) == 6  # the rejected request is logged too
    assert {str(t)[:19] for t in answered["ts"]} == {"2013-06-01 12:00:00"}
