"""The prediction service in-process: predictions, listings, health, metrics, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from ctloop.serving import ServingConfig


def _rows(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


def test_predictions_equal_the_loaded_model(three_versions, sample) -> None:
    p = three_versions
    direct = p.registry.load("flights:1", p.artifacts).predict(sample)
    with TestClient(p.app("flights")) as client:
        by_rows = client.post("/v1/models/flights:predict", json={"rows": _rows(sample)})
        by_columns = client.post(
            "/v1/models/flights:predict",
            json={"columns": {c: sample[c].tolist() for c in ["origin", "hour", "distance"]}},
        )
    assert by_rows.status_code == 200, by_rows.text
    body = by_rows.json()
    np.testing.assert_allclose(body["predictions"], direct, rtol=0, atol=1e-12)
    np.testing.assert_allclose(by_columns.json()["predictions"], direct, rtol=0, atol=1e-12)
    assert set(body["versions"]) == {1} and set(body["routes"]) == {"champion"}
    assert len(body["request_ids"]) == len(sample) == len(set(body["request_ids"]))


def test_request_ids_are_echoed(three_versions, sample) -> None:
    with TestClient(three_versions.app("flights")) as client:
        ids = [f"r{i}" for i in range(3)]
        body = client.post(
            "/v1/models/flights:predict", json={"rows": _rows(sample.head(3)), "request_ids": ids}
        ).json()
    assert body["request_ids"] == ids


def test_listing_detail_health_ready_metrics(three_versions, sample) -> None:
    config = ServingConfig.from_table({"canary": "challenger=10%", "shadow": "v3"})
    with TestClient(three_versions.app(config=config)) as client:
        assert client.get("/health").json() == {"status": "ok"}
        ready = client.get("/ready")
        assert ready.status_code == 200 and ready.json()["loaded"] == {
            "flights": {"champion": 1, "challenger": 2}
        }
        [model] = client.get("/v1/models").json()["models"]
        assert model["aliases"] == {"champion": 1, "challenger": 2}
        assert [r["version"] for r in model["routes"]] == [1, 2]
        assert model["routing"]["splits"][0]["share"] == 0.1
        assert model["shadow"]["version"] == 3
        detail = client.get("/v1/models/flights").json()
        assert detail["routes"][0]["inputs"] == ["origin", "hour", "distance"]
        client.post("/v1/models/flights:predict", json={"rows": _rows(sample.head(50))})
        client.post("/v1/models/flights:predict", json={"rows": [{"origin": "JFK"}]})
        text = client.get("/metrics").text
    requests = 'ctloop_requests_total{endpoint="predict",model="flights",protocol="v1",status='
    assert requests + '"200"} 1.0' in text
    assert requests + '"422"} 1.0' in text
    assert (
        'ctloop_request_latency_seconds_count{endpoint="predict",model="flights",'
        'route="champion",version="1"}' in text
    )
    assert (
        'ctloop_predictions_total{model="flights",route="champion",status="ok",version="1"}' in text
    )
    assert 'route="shadow",status="ok",version="3"} 50.0' in text
    assert "ctloop_request_latency_seconds_bucket" in text
    assert 'ctloop_model_version_loaded{model="flights",route="challenger"} 2.0' in text


def _error(response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail", "type"}, body
    for word in words:
        assert word in body["detail"], body["detail"]
    assert "Traceback" not in response.text
    return body


def test_bad_input_is_4xx_json_with_a_clear_message(three_versions, sample) -> None:
    url = "/v1/models/flights:predict"
    with TestClient(three_versions.app("flights")) as client:
        _error(client.post(url, json={"rows": [{"origin": "JFK", "hour": 5}]}), 422, "distance")
        _error(client.post("/v1/models/flight:predict", json={"rows": [{}]}), 404, "flights")
        _error(client.post(url, content=b"{not json"), 422, "not valid JSON")
        _error(client.post(url, json=[1, 2]), 422, "JSON object")
        _error(client.post(url, json={}), 422, "exactly one of 'instances', 'rows' or 'columns'")
        _error(client.post(url, json={"rows": []}), 422, "non-empty")
        _error(client.post(url, json={"rows": [1]}), 422, "object")
        _error(
            client.post(url, json={"columns": {"origin": ["JFK"], "hour": [1, 2]}}),
            422,
            "equally long",
        )
        _error(
            client.post(url, json={"rows": _rows(sample.head(2)), "request_ids": ["a"]}),
            422,
            "one id per row",
        )
        _error(
            client.post(url, json={"rows": _rows(sample.head(1)), "extra": 1}), 422, "Unknown key"
        )
        bad = _rows(sample.head(2))
        bad[0]["distance"] = "far"
        _error(client.post(url, json={"rows": bad}), 422, "distance", "far")
        bad[0]["distance"] = {"nested": 1}
        _error(client.post(url, json={"rows": bad}), 422)
        _error(client.get("/v1/models/nope"), 404, "nope")
        _error(client.get("/v3/whatever"), 404, "/v1/models")
        _error(client.get(url), 405)


def test_no_model_loaded_yet_is_503(project, model_dirs) -> None:
    project.register(model_dirs[0])  # registered, never promoted
    with TestClient(project.app("flights")) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503 and "champion" in ready.json()["errors"]["flights"]
        _error(
            client.post("/v1/models/flights:predict", json={"rows": [{"origin": "JFK"}]}),
            503,
            "no version loaded",
            "champion",
        )


def test_without_named_models_every_champion_is_served(three_versions, model_dirs) -> None:
    three_versions.register(model_dirs[1], name="other")
    three_versions.registry.promote("other", 1)
    three_versions.register(model_dirs[1], name="unpromoted")
    with TestClient(three_versions.app()) as client:
        names = [m["name"] for m in client.get("/v1/models").json()["models"]]
    assert names == ["flights", "other"]


def test_unknown_model_names_share_one_metrics_series(three_versions) -> None:
    with TestClient(three_versions.app("flights")) as client:
        for i in range(30):
            assert client.post(f"/v1/models/m{i}:predict", json={"rows": [{}]}).status_code == 404
            client.post(f"/v2/models/m{i}/infer", json={"inputs": []})
        text = client.get("/metrics").text
    lines = [line for line in text.splitlines() if line.startswith("ctloop_requests_total")]
    assert len(lines) == 2, lines  # one v1 and one v2 series, not 60
    assert all('model="_unknown"' in line for line in lines)
    assert 'protocol="v1",status="404"} 30.0' in text
    assert not any(f'"m{i}"' in text for i in range(30))


def test_ready_names_a_mistyped_model_and_the_nearest_registered(three_versions) -> None:
    """`ctloop serve flihgts`: /ready says no such model (and the nearest), not 'promote'."""
    with TestClient(three_versions.app("flihgts")) as client:
        ready = client.get("/ready")
    body = ready.json()
    assert ready.status_code == 503 and body["missing"] == ["flihgts"]
    assert "No model named 'flihgts' (did you mean 'flights'?)" in body["detail"]
    assert "promote" not in body["detail"].lower()


def test_ready_of_a_model_without_the_alias_still_advises_a_promotion(project, model_dirs) -> None:
    project.register(model_dirs[0])
    with TestClient(project.app("flights")) as client:
        body = client.get("/ready").json()
    assert body["ready"] is False and "flights" in body["missing"]
    assert "No model named" not in (body.get("detail") or "")


def test_a_running_app_keeps_what_it_loaded_out_of_the_collector(three_versions, sample) -> None:
    """While serving, what was loaded at start is frozen (full collections never walk it)
    and young cycles are collected less often; both are undone when the app stops."""
    import gc

    before = gc.get_threshold()
    with TestClient(three_versions.app("flights")) as client:
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] >= 20_000
        answer = client.post("/v1/models/flights:predict", json={"rows": _rows(sample)})
        assert answer.status_code == 200, answer.text
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def test_two_apps_in_one_process_leave_the_collector_as_the_first_found_it(three_versions
                                                                            ) -> None:
    """The first app to stop does not unfreeze the other's objects; the last restores."""
    import gc
    import sys

    before, switch = gc.get_threshold(), sys.getswitchinterval()
    with TestClient(three_versions.app("flights")):
        with TestClient(three_versions.app("flights")):
            assert gc.get_threshold()[0] >= 20_000 and gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] >= 20_000 and gc.get_freeze_count() > 0
        assert sys.getswitchinterval() <= 0.0005
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    assert sys.getswitchinterval() == switch
