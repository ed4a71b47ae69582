"""`:explain` over HTTP (KServe v1 and OIP v2 style) against real LightGBM versions."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ctloop.examples.flights.data import flights
from ctloop.models import fit_model

ROWS = [
    {"origin": "JFK", "hour": 7, "distance": 1000},
    {"origin": "EWR", "hour": 18, "distance": 300},
    {"origin": "LGA", "hour": 12, "distance": 700},
]
COLUMNS = ["origin", "hour", "distance"]


@pytest.fixture
def client(three_versions):
    with TestClient(three_versions.app("flights")) as c:
        yield c


def _predictions(client: TestClient) -> list[float]:
    return client.post("/v1/models/flights:predict", json={"rows": ROWS}).json()["predictions"]


def test_v1_explains_instances_and_adds_up_to_the_served_prediction(client) -> None:
    response = client.post("/v1/models/flights:explain", json={"instances": ROWS})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 1 and body["route"] == "champion"
    assert body["features"] == COLUMNS and body["space"] == "log_odds"
    assert body["method"] == "tree_shap"
    for row, served in zip(body["explanations"], _predictions(client), strict=True):
        total = row["base_value"] + sum(c["value"] for c in row["contributions"])
        assert total == pytest.approx(row["raw_score"], abs=1e-9)
        assert 1 / (1 + np.exp(-row["raw_score"])) == pytest.approx(served, abs=1e-9)
        assert row["prediction"] == pytest.approx(served, abs=1e-9)
        assert {c["feature"] for c in row["contributions"]} == set(COLUMNS)


def test_v1_takes_rows_columns_lists_and_top(client) -> None:
    want = client.post("/v1/models/flights:explain", json={"instances": ROWS}).json()
    as_lists = [[r[c] for c in COLUMNS] for r in ROWS]
    as_columns = {c: [r[c] for r in ROWS] for c in COLUMNS}
    for body in ({"rows": ROWS}, {"instances": as_lists}, {"columns": as_columns}):
        got = client.post("/v1/models/flights:explain", json=body)
        assert got.status_code == 200, got.text
        assert got.json()["explanations"] == want["explanations"]
    top = client.post("/v1/models/flights:explain", json={"rows": ROWS, "top": 1}).json()
    for row, full in zip(top["explanations"], want["explanations"], strict=True):
        [only] = row["contributions"]
        assert abs(only["value"]) == max(abs(c["value"]) for c in full["contributions"])


def test_v2_explains_column_tensors_a_matrix_and_a_named_version(client) -> None:
    tensors = {
        "inputs": [
            {
                "name": "origin",
                "shape": [3],
                "datatype": "BYTES",
                "data": [r["origin"] for r in ROWS],
            },
            {"name": "hour", "shape": [3], "datatype": "INT64", "data": [r["hour"] for r in ROWS]},
            {
                "name": "distance",
                "shape": [3, 1],
                "datatype": "FP64",
                "data": [[r["distance"]] for r in ROWS],
            },
        ],
        "id": "req-1",
        "parameters": {"top": 2},
    }
    response = client.post("/v2/models/flights/explain", json=tensors)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "flights" and body["model_version"] == "1"
    assert body["id"] == "req-1" and body["parameters"]["features"] == COLUMNS
    out = {o["name"]: o for o in body["outputs"]}
    assert out["contributions"]["shape"] == [3, 3] and out["top_features"]["shape"] == [3, 2]
    contributions = np.array(out["contributions"]["data"]).reshape(3, 3)
    np.testing.assert_allclose(
        contributions.sum(axis=1) + out["base_value"]["data"], out["raw_score"]["data"]
    )
    np.testing.assert_allclose(out["prediction"]["data"], _predictions(client), atol=1e-12)
    matrix = {
        "inputs": [
            {
                "name": "x",
                "shape": [3, 3],
                "datatype": "BYTES",
                "data": [[str(r[c]) for c in COLUMNS] for r in ROWS],  # BYTES: text, as predict
            }
        ]
    }
    same = client.post("/v2/models/flights/versions/1/explain", json=matrix)
    assert same.status_code == 200, same.text
    np.testing.assert_allclose(
        {o["name"]: o for o in same.json()["outputs"]}["contributions"]["data"],
        out["contributions"]["data"],
    )


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/v1/models/flights:explain", b"{nope", 422, "not valid JSON"),
        ("/v1/models/flights:explain", [1, 2], 422, "JSON object"),
        ("/v1/models/flights:explain", {"instances": ROWS, "rows": ROWS}, 422, "exactly one"),
        ("/v1/models/flights:explain", {"instances": []}, 422, "non-empty"),
        ("/v1/models/flights:explain", {"instances": [{}]}, 422, "at least one input"),
        ("/v1/models/flights:explain", {"instances": [[1, 2]]}, 422, "length [2]"),
        ("/v1/models/flights:explain", {"rows": [{"hour": 1, "distance": 5}]}, 422, "origin"),
        ("/v1/models/flights:explain", {"rows": ROWS, "top": 0}, 422, "positive integer"),
        ("/v1/models/flights:explain", {"rows": ROWS, "why": 1}, 422, "Unknown key"),
        ("/v1/models/nope:explain", {"rows": ROWS}, 404, "No model 'nope'"),
        # v2 bodies are decoded by predict's parser: its statuses (400) and messages
        ("/v2/models/flights/explain", {"inputs": []}, 400, '"inputs" must be a non-empty'),
        (
            "/v2/models/flights/explain",
            {"inputs": [{"name": "hour", "shape": [4], "datatype": "INT64", "data": [1, 2]}]},
            400,
            "holds 4 values but 'data' has 2",
        ),
        (
            "/v2/models/flights/explain",
            {"inputs": [{"name": "m", "shape": [1, 2], "datatype": "INT64", "data": [[1, 2]]}]},
            400,
            "or one [n, 3] tensor",
        ),
        (
            "/v2/models/flights/versions/9/explain",
            {
                "inputs": [
                    {"name": "m", "shape": [1, 3], "datatype": "BYTES", "data": [["JFK", 1, 2]]}
                ]
            },
            404,
            "Version 9",
        ),
    ],
)
def test_bad_explain_requests_get_a_4xx_json_body(client, path, body, status, says) -> None:
    if isinstance(body, bytes):
        response = client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        response = client.post(path, json=body)
    assert response.status_code == status, response.text
    answer = response.json()  # v2 routes answer {"error": ...}, as the protocol says
    assert says in (answer["error"] if path.startswith("/v2/") else answer["detail"])


def test_a_model_without_contributions_answers_422(project, tmp_path) -> None:
    fit_model(
        flights([1]).head(2000),
        label="delayed",
        features=["origin", "hour"],
        algorithm="hist_gradient_boosting",
        params={"max_iter": 5},
    ).save(tmp_path / "hgb")
    project.register(tmp_path / "hgb")
    project.registry.promote("flights", 1)
    with TestClient(project.app("flights")) as client:
        response = client.post("/v1/models/flights:explain", json={"rows": ROWS})
    assert response.status_code == 422
    assert response.json()["type"] == "CannotExplain", response.json()
    assert response.json()["error"] == response.json()["detail"]  # the SDK reads "error"
    assert "HistGradientBoostingClassifier" in response.json()["detail"]


def test_the_openapi_document_describes_the_explain_bodies(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/models/{name}:explain", "/v2/models/{name}/explain"):
        schema = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert schema["type"] == "object" and schema["properties"]


def test_explain_requests_are_logged_but_never_counted_as_traffic(three_versions,
                                                                  tmp_path) -> None:
    """An audit trail of explanations (protocol, version, inputs, prediction) that drift and
    decay monitors skip: they read served rows only."""
    from ctloop.requestlog.log import open_prediction_log

    log = open_prediction_log(tmp_path / "log")
    app = three_versions.app("flights", prediction_log=log)
    with TestClient(app) as client:
        assert client.post("/v1/models/flights:explain", json={"rows": ROWS}).status_code == 200
        tensors = {"inputs": [
            {"name": "origin", "shape": [1], "datatype": "BYTES", "data": ["JFK"]},
            {"name": "hour", "shape": [1], "datatype": "INT64", "data": [7]},
            {"name": "distance", "shape": [1], "datatype": "FP64", "data": [1000]},
        ]}
        assert client.post("/v2/models/flights/versions/1/explain",
                           json=tensors).status_code == 200
        bad = client.post("/v1/models/flights:explain", json={"rows": [{"origin": "JFK"}]})
        assert bad.status_code == 422
        served = _predictions(client)
        app.state.serving.logger.flush()
    log.publish()
    every = log.read(model_name="flights", include_unserved=True, include_rejected=True)
    explained = every[every["protocol"].isin(["v1-explain", "v2-explain"])]
    v1 = explained[(explained["protocol"] == "v1-explain") & (explained["status"] == 200)]
    assert len(v1) == 3 and not v1["served"].any()
    assert v1["model_version"].tolist() == [1, 1, 1]
    assert v1["prediction"].to_numpy() == pytest.approx(served, abs=1e-9)
    assert v1["f_distance"].tolist() == [1000, 300, 700]
    v2 = explained[explained["protocol"] == "v2-explain"]
    assert v2["model_version"].tolist() == [1] and v2["f_origin"].tolist() == ["JFK"]
    rejected = explained[explained["status"] == 422]
    assert len(rejected) == 1 and "hour" in rejected["error"].iloc[0]
    assert set(log.read(model_name="flights")["protocol"]) == {"v1"}  # what monitors see
    log.close()
