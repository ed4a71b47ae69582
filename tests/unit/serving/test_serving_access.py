"""API keys and roles, admin promote/rollback over HTTP, the feedback route."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from ctloop.core.errors import ConfigError
from ctloop.requestlog.log import open_prediction_log
from ctloop.serving import ServingConfig
from ctloop.serving.auth import hash_key

URL = "/v1/models/flights:predict"
ROW = {"origin": "JFK", "hour": 5, "distance": 1000}
KEYS = {"ops": "k-admin-0123456789", "app": "k-predict-0123456789", "dash": "k-read-0123456789"}


def _config(**extra) -> ServingConfig:
    roles = {"ops": ["admin"], "app": ["predict"], "dash": ["read"]}
    table = {name: {"hash": hash_key(KEYS[name]), "roles": r} for name, r in roles.items()}
    return ServingConfig.from_table({"keys": table, **extra})


def _auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def test_every_route_needs_a_key_with_the_right_role(three_versions) -> None:
    with TestClient(three_versions.app("flights", config=_config())) as client:
        assert client.get("/health").status_code == 200  # public by default
        assert client.get("/v2/health/ready").status_code == 200
        for path in ("/metrics", "/v1/models", "/v2/models/flights", "/openapi.json"):
            answer = client.get(path)
            assert answer.status_code == 401, path
            assert "API key" in str(answer.json())
        denied = client.post(URL, json={"rows": [ROW]})
        assert denied.status_code == 401 and denied.headers["www-authenticate"].startswith("Bearer")
        wrong = client.post(URL, json={"rows": [ROW]}, headers={"X-API-Key": "guess"})
        assert wrong.status_code == 401 and "not valid" in wrong.json()["detail"]
        weak = client.post(URL, json={"rows": [ROW]}, headers=_auth("dash"))
        assert weak.status_code == 403 and "'predict'" in weak.json()["detail"]
        assert client.get("/v1/models", headers=_auth("dash")).status_code == 200
        assert client.post(URL, json={"rows": [ROW]}, headers=_auth("app")).status_code == 200
        assert client.post(URL, json={"rows": [ROW]},
                           headers={"X-API-Key": KEYS["ops"]}).status_code == 200
        v2 = client.post("/v2/models/flights/infer", json={}, headers=_auth("dash"))
        assert v2.status_code == 403 and set(v2.json()) == {"error"}
        assert KEYS["app"] not in client.get("/v1/models", headers=_auth("ops")).text
    public = _config(public=["health", "metrics"])
    with TestClient(three_versions.app("flights", config=public)) as client:
        assert client.get("/metrics").status_code == 200


def test_refused_predictions_are_logged(three_versions, tmp_path) -> None:
    log = open_prediction_log(tmp_path / "log")
    app = three_versions.app("flights", config=_config(), prediction_log=log)
    with TestClient(app) as client:
        assert client.post(URL, json={"rows": [ROW]}).status_code == 401
        assert client.post("/v2/models/flights/infer", json={},
                           headers=_auth("dash")).status_code == 403
        assert client.get("/v1/models", headers=_auth("dash")).status_code == 200
        assert client.post(URL, json={"rows": [ROW]}, headers=_auth("app")).status_code == 200
        app.state.serving.logger.flush()
    frame = log.read(model_name="flights", include_rejected=True, include_unserved=True)
    assert len(frame) == 3 and frame["served"].sum() == 1  # two refusals, one answer
    assert sorted(frame["status"]) == [200, 401, 403]


def test_refused_requests_are_all_counted_and_only_a_bounded_sample_is_logged(
    three_versions, tmp_path
) -> None:
    log = open_prediction_log(tmp_path / "log")
    app = three_versions.app("flights", config=_config(public=["health", "metrics"]),
                             prediction_log=log)
    with TestClient(app) as client:
        for _ in range(150):  # anyone can send these: they must not grow the log
            assert client.post(URL, json={"rows": [ROW]}).status_code == 401
        metrics = client.get("/metrics").text
        app.state.serving.logger.flush()
    assert 'ctloop_denied_requests_total{status="401"} 150.0' in metrics
    refused = log.read(model_name="flights", include_rejected=True, include_unserved=True)
    per_minute = app.state.serving.denied_sample.per_minute
    assert per_minute == 60  # two minutes' samples when the requests straddle a minute
    assert per_minute <= len(refused) <= 2 * per_minute < 150


def test_keys_from_the_environment_and_bad_key_config(three_versions, monkeypatch) -> None:
    monkeypatch.setenv(
        "CTLOOP_SERVING_KEYS", f'{{"env": {{"hash": "{hash_key("k-env")}", "roles": "predict"}}}}'
    )
    with TestClient(three_versions.app("flights")) as client:
        assert client.post(URL, json={"rows": [ROW]}).status_code == 401
        ok = client.post(URL, json={"rows": [ROW]}, headers={"X-API-Key": "k-env"})
        assert ok.status_code == 200
    with pytest.raises(ConfigError, match="in clear"):
        ServingConfig.from_table({"keys": {"x": {"key": "secret"}}})
    with pytest.raises(ConfigError, match="sha256"):
        ServingConfig.from_table({"keys": {"x": {"hash": "md5:abc"}}})
    with pytest.raises(ConfigError, match="role"):
        ServingConfig.from_table({"keys": {"x": {"hash": hash_key("k"), "roles": ["root"]}}})


def test_admin_promotes_and_rolls_back_with_the_key_as_actor(three_versions) -> None:
    registry = three_versions.registry
    with TestClient(three_versions.app("flights", config=_config())) as client:
        denied = client.post("/admin/models/flights/promote", json={"version": 3},
                             headers=_auth("app"))
        assert denied.status_code == 403
        moved = client.post("/admin/models/flights/promote",
                            json={"version": 3, "reason": "better AUC"}, headers=_auth("ops"))
        assert moved.status_code == 200, moved.text
        assert moved.json()["actor"] == "api-key:ops" and moved.json()["version"] == 3
        answer = client.post(URL, json={"rows": [ROW]}, headers=_auth("app")).json()
        assert answer["versions"] == [3]  # reloaded at once, no poll wait
        back = client.post("/admin/models/flights/rollback", json={}, headers=_auth("ops"))
        assert back.status_code == 200 and back.json()["version"] == 1
        bad = client.post("/admin/models/flights/promote", json={"version": "3"},
                          headers=_auth("ops"))
        assert bad.status_code == 422 and "positive integer" in bad.json()["detail"]
        missing = client.post("/admin/models/flights/promote", json={"version": 99},
                              headers=_auth("ops"))
        assert missing.status_code == 404
        events = client.get("/admin/models/flights/history", headers=_auth("ops")).json()
        assert [e["actor"] for e in events["events"]][-2:] == ["api-key:ops", "api-key:ops"]
    history = registry.history("flights", "champion")
    assert [(e.version, e.actor) for e in history][-2:] == [(3, "api-key:ops"), (1, "api-key:ops")]
    with TestClient(three_versions.app("flights")) as client:  # no keys: no admin
        open_admin = client.post("/admin/models/flights/promote", json={"version": 2})
        assert open_admin.status_code == 403 and "keys" in open_admin.json()["detail"]
    assert registry.aliases("flights")["champion"] == 1


def test_feedback_labels_join_the_logged_predictions(three_versions, tmp_path) -> None:
    log = open_prediction_log(tmp_path / "log")
    app = three_versions.app("flights", prediction_log=log)
    with TestClient(app) as client:
        answer = client.post(URL, json={"rows": [ROW, ROW], "request_ids": ["a", "b"]})
        assert answer.status_code == 200
        stored = client.post("/v1/models/flights/feedback", json={"labels": [
            {"request_id": "a", "label": 1}, {"request_id": "b", "label": 0}]})
        assert stored.status_code == 200 and stored.json()["stored"] == 2
        for body, word in (
            ({"labels": []}, "non-empty"),
            ({"labels": [{"label": 1}]}, "exactly one"),
            ({"labels": [{"request_id": "a", "row_id": "r", "label": 1}]}, "exactly one"),
            ({"labels": [{"request_id": "a", "label": "yes"}]}, "it takes 0 or 1"),
            ({"labels": [{"request_id": "a", "label": [1]}]}, "number or a class name"),
            # what a careless feedback file holds: a label the binary model cannot have
            ({"labels": [{"request_id": "a", "label": 1}, {"request_id": "b", "label": 7}]},
             "row 1 (request_id 'b') has 7"),
            ({"labels": [{"request_id": "a", "label": 0.5}]}, "it takes 0 or 1"),
            ({"labels": [{"request_id": "a", "label": 1}, {"request_id": "a", "label": 0}]},
             "conflicting labels"),
            ({"labels": [{"request_id": 5, "label": 1}]}, "string"),
            ({"rows": []}, "feedback body"),
        ):
            bad = client.post("/v1/models/flights/feedback", json=body)
            assert bad.status_code == 422 and word in bad.json()["detail"], bad.text
        assert client.post("/v1/models/nope/feedback", json={"labels": [
            {"request_id": "a", "label": 1}]}).status_code == 404
        app.state.serving.logger.flush()
    frame = log.read(model_name="flights", with_labels=True).set_index("request_id")
    assert frame.loc["a", "label"] == 1 and frame.loc["b", "label"] == 0  # nothing bad stored
