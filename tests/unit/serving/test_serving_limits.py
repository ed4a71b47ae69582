"""Bad input gets a 4xx JSON body saying what was wrong: one test per kind."""

from __future__ import annotations

import json
import socket
import struct
from urllib.parse import urlparse

import pytest
from fastapi.testclient import TestClient

from ctloop.serving import ServingConfig
from ctloop.serving.background import background_server

URL = "/v1/models/flights:predict"
ROW = {"origin": "JFK", "hour": 5, "distance": 1000}


def _error(response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] and "Traceback" not in response.text
    for word in words:
        assert word in str(body), body
    return body


@pytest.fixture
def client(three_versions):
    with TestClient(three_versions.app("flights")) as c:
        yield c


def test_a_string_for_an_integer_column_is_422_unless_coercion_is_on(three_versions) -> None:
    bad = {**ROW, "hour": "5"}
    with TestClient(three_versions.app("flights")) as client:
        _error(client.post(URL, json={"rows": [bad]}), 422, "'hour'", "integer", "'5'")
        _error(client.post(URL, json={"rows": [{**ROW, "origin": 7}]}), 422, "'origin'", "string")
        _error(client.post(URL, json={"rows": [{**ROW, "hour": True}]}), 422, "'hour'")
        _error(client.post(URL, json={"rows": [{**ROW, "hour": 5.5}]}), 422, "whole number")
        assert client.post(URL, json={"rows": [{**ROW, "hour": 5.0}]}).status_code == 200
    coercing = three_versions.app("flights", config=ServingConfig(coerce_types=True))
    with TestClient(coercing) as client:
        answer = client.post(URL, json={"rows": [bad, ROW]})
        assert answer.status_code == 200, answer.text
        first, second = answer.json()["predictions"]
        assert first == second
        _error(client.post(URL, json={"rows": [{**ROW, "hour": "five"}]}), 422, "not a number")


def test_empty_rows_and_nested_values_are_422(client) -> None:
    _error(client.post(URL, json={"rows": [{}]}), 422, "Row 0", "empty")
    _error(client.post(URL, json={"instances": [ROW, {}]}), 422, "Row 1", "empty")
    _error(client.post(URL, json={"rows": [{**ROW, "hour": [5]}]}), 422, "single scalar")


def test_nulls_follow_the_signature(three_versions, project, tmp_path) -> None:
    """A column trained without nulls refuses them, boosted trees included (unless
    ``allow_nulls`` is set); one declared ``nullable`` at training takes them."""
    with TestClient(three_versions.app("flights")) as client:
        _error(client.post(URL, json={"rows": [{**ROW, "hour": None}]}), 422, "never null")
    from ctloop.examples.flights.data import flights
    from ctloop.models import fit_model

    data = flights([1]).head(3000).dropna(subset=["origin", "hour", "distance"])
    for name, nullable in (("linear", ()), ("gaps", ("hour",))):
        fit_model(data, label="delayed", features=["origin", "hour", "distance"],
                  algorithm="logistic", nullable=nullable).save(tmp_path / name)
        project.registry.promote(name, project.register(tmp_path / name, name))
    linear = URL.replace("flights", "linear")
    with TestClient(project.app("linear")) as client:
        _error(client.post(linear, json={"rows": [{**ROW, "hour": None}]}), 422, "never null")
    with TestClient(project.app("gaps")) as client:
        gaps = URL.replace("flights", "gaps")
        assert client.post(gaps, json={"rows": [{**ROW, "hour": None}]}).status_code == 200
    lax = project.app("linear", config=ServingConfig(allow_nulls=True))
    with TestClient(lax) as client:
        assert client.post(linear, json={"rows": [{**ROW, "hour": None}]}).status_code == 200


def test_infinity_in_a_binary_tensor_is_422(client) -> None:
    header = {"inputs": [
        {"name": "origin", "shape": [1], "datatype": "BYTES", "data": ["JFK"]},
        {"name": "hour", "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": 8}},
        {"name": "distance", "shape": [1], "datatype": "INT64", "data": [1000]},
    ]}
    raw = json.dumps(header).encode()
    for value, status in ((float("inf"), 422), (5.0, 200)):
        answer = client.post(
            "/v2/models/flights/infer",
            content=raw + struct.pack("<d", value),
            headers={"Inference-Header-Content-Length": str(len(raw))},
        )
        assert answer.status_code == status, answer.text
    assert "finite" in client.post(
        "/v2/models/flights/infer", content=raw + struct.pack("<d", float("-inf")),
        headers={"Inference-Header-Content-Length": str(len(raw))},
    ).json()["error"]


def test_deep_nesting_is_400_not_500(client) -> None:
    deep = b'{"rows": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    _error(client.post(URL, content=deep), 400, "levels deep", "max_json_depth")
    brackets_in_strings = {"rows": [{**ROW, "origin": "[" * 100 + '\\"' + "{" * 50}]}
    assert client.post(URL, json=brackets_in_strings).status_code == 200  # text, not nesting
    v2 = {"inputs": [{"name": "x", "shape": [1], "datatype": "INT64",
                      "data": json.loads("[" * 50 + "1" + "]" * 50)}]}
    answer = client.post("/v2/models/flights/infer", json=v2)
    assert answer.status_code == 400 and set(answer.json()) == {"error"}


def test_oversized_bodies_are_413_and_cut_off_while_streaming(three_versions) -> None:
    app = three_versions.app("flights", config=ServingConfig(max_body_bytes=100_000))
    with background_server(app) as url:
        where = urlparse(url)
        # declared too large: refused before a byte of body is read
        with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/models/flights:predict HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100000000\r\n\r\n"
            )
            assert b" 413 " in sock.recv(4096).split(b"\r\n")[0]
        # streamed without a length: refused once the limit passes, long before 100 MB
        with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/models/flights:predict HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b"x" * 65_536
            sent = 0
            sock.settimeout(0.05)
            reply = b""
            while sent < 100_000_000 and not reply:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                try:
                    reply = sock.recv(4096)
                except TimeoutError:
                    continue
            assert b" 413 " in reply.split(b"\r\n")[0]
            assert b"max_body_bytes" in reply or b"413" in reply
            assert sent < 5_000_000  # the server answered after a few chunks, not 100 MB


def test_unknown_models_and_wrong_shapes(client) -> None:
    _error(client.post("/v1/models/nope:predict", json={"rows": [ROW]}), 404, "flights")
    _error(client.post(URL, content=b"{not json"), 422, "not valid JSON")
    _error(client.post(URL, json={"rows": [ROW], "instances": [ROW]}), 422, "exactly one")
    _error(client.post(URL, json={"instances": [["JFK", 5, 1000, 3]]}), 422, "3 values")
    _error(client.post(URL, json={"rows": [ROW], "request_ids": [1.5]}), 422, "request_ids")
    _error(client.post(URL, json={"rows": [ROW], "row_ids": ["a", "b"]}), 422, "row_ids")
