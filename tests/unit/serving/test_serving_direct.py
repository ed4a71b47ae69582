"""The predict routes are answered straight from ASGI, yet declared, guarded and erroring alike."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from ctloop.serving.direct import PREDICT_PATHS

ROWS = [{"origin": "JFK", "hour": 8, "distance": 1000}]


def test_predict_bypasses_fastapi_routing_and_stays_in_openapi(
    three_versions, monkeypatch: pytest.MonkeyPatch
) -> None:
    handled: list[str] = []
    original = APIRoute.handle

    async def counting(self, scope, receive, send):  # type: ignore[no-untyped-def]
        handled.append(self.path)
        await original(self, scope, receive, send)

    monkeypatch.setattr(APIRoute, "handle", counting)
    with TestClient(three_versions.app("flights")) as client:
        v1 = client.post("/v1/models/flights:predict", json={"rows": ROWS})
        v2 = client.post("/v2/models/flights/infer", json={"inputs": [
            {"name": "origin", "shape": [1], "datatype": "BYTES", "data": ["JFK"]},
            {"name": "hour", "shape": [1], "datatype": "INT64", "data": [8]},
            {"name": "distance", "shape": [1], "datatype": "INT64", "data": [1000]}]})
        pinned = client.post("/v2/models/flights/versions/1/infer", json={"inputs": [
            {"name": "input-0", "shape": [1, 3], "datatype": "BYTES",
             "data": ["JFK", "8", "1000"]}]})
        assert (v1.status_code, v2.status_code, pinned.status_code) == (200, 200, 200), (
            v1.text, v2.text, pinned.text)
        assert v2.json()["outputs"][0]["data"] == pytest.approx(v1.json()["predictions"])
        assert handled == []  # none of them went through FastAPI's routing
        unknown = client.post("/v1/models/nope:predict", json={"rows": ROWS})
        assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
        bad = client.post("/v2/models/flights/infer", content=b"{not json")
        assert bad.status_code == 422 and bad.json()["error"]
        assert client.get("/v1/models").status_code == 200
        assert handled == ["/v1/models"]  # every other route still does
        paths = client.get("/openapi.json").json()["paths"]
    for path in PREDICT_PATHS:
        assert "post" in paths[path], path
