"""Every route bounded and checked the same way (issue 22): explain answers bad rows
exactly as predict does, within the same body and depth limits, and tensors whose
element count or byte size exceeds the body are refused before anything is allocated.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ctloop.serving import ServingConfig
from ctloop.serving.errors import BadRequest
from ctloop.serving.proto import grpc_predict_v2_pb2 as pb
from ctloop.serving.protocols.grpc import parse_grpc_infer

ROW = {"origin": "JFK", "hour": 7, "distance": 1000}
BIG = "9" * 100_000  # an integer far past 64 bits, as JSON text


@pytest.fixture
def client(three_versions):
    config = ServingConfig.from_table({"max_body_bytes": 50_000, "max_json_depth": 16})
    with TestClient(three_versions.app("flights", config=config)) as c:
        yield c


def _v1(client: TestClient, route: str, body: bytes) -> Any:
    return client.post(f"/v1/models/flights:{route}", content=body,
                       headers={"content-type": "application/json"})


def _v2(client: TestClient, route: str, body: bytes, headers: dict[str, str] | None = None
        ) -> Any:
    return client.post(f"/v2/models/flights/{route}", content=body,
                       headers={"content-type": "application/json", **(headers or {})})


def _rows(value: str) -> bytes:
    """One v1 row whose ``hour`` is ``value`` (raw JSON text)."""
    return ('{"instances": [{"origin": "JFK", "hour": ' + value + ', "distance": 1000}]}'
            ).encode()


def _tensors(value: str) -> bytes:
    return ('{"inputs": [{"name": "origin", "shape": [1], "datatype": "BYTES", "data": ["JFK"]},'
            ' {"name": "hour", "shape": [1], "datatype": "INT64", "data": [' + value + ']},'
            ' {"name": "distance", "shape": [1], "datatype": "FP64", "data": [1000]}]}').encode()


BAD_VALUES = {
    "past 64 bits": BIG,
    "2**64": str(2**64),
    "2**63": str(2**63),
    "-2**64": str(-(2**64)),
    "1e19": "1e19",
    "NaN": "NaN",
    "infinity": "1e400",
    "a string": '"seven"',
    "an object": '{"h": 7}',
    "true": "true",
}
# Accepted by predict (a nested v2 list is read row-major; the signature says nullable):
# explain must answer them with the same status.
ODD_VALUES = {"a list": "[7]", "null": "null", "7.0": "7.0"}


@pytest.mark.parametrize("what", sorted(BAD_VALUES))
def test_explain_refuses_a_bad_row_exactly_as_predict(client, what: str) -> None:
    value = BAD_VALUES[what]
    predicted = _v1(client, "predict", _rows(value))
    explained = _v1(client, "explain", _rows(value))
    assert 400 <= predicted.status_code < 500, (what, predicted.text)
    assert (explained.status_code, explained.json()) == (predicted.status_code,
                                                         predicted.json()), what
    inferred = _v2(client, "infer", _tensors(value))
    explained = _v2(client, "explain", _tensors(value))
    assert 400 <= inferred.status_code < 500, (what, inferred.text)
    assert (explained.status_code, explained.json()) == (inferred.status_code,
                                                         inferred.json()), what


@pytest.mark.parametrize("what", sorted(ODD_VALUES))
def test_explain_answers_what_predict_answers(client, what: str) -> None:
    value = ODD_VALUES[what]
    for route, body, call in (("predict", _rows(value), _v1), ("infer", _tensors(value), _v2)):
        predicted = call(client, route, body)
        explained = call(client, "explain", body)
        assert explained.status_code == predicted.status_code, (what, route, explained.text)
        if predicted.status_code != 200:
            assert explained.json() == predicted.json(), (what, route)


def test_unsigned_tensors_past_int64_are_refused(client) -> None:
    hour = np.array([2**64 - 1], dtype="<u8").tobytes()
    header = json.dumps({"inputs": [
        {"name": "origin", "shape": [1], "datatype": "BYTES", "data": ["JFK"]},
        {"name": "hour", "shape": [1], "datatype": "UINT64",
         "parameters": {"binary_data_size": len(hour)}},
        {"name": "distance", "shape": [1], "datatype": "FP64", "data": [1000.0]},
    ]}).encode()
    body, headers = header + hour, {"inference-header-content-length": str(len(header))}
    for route in ("infer", "explain"):
        answer = _v2(client, route, body, headers)
        assert answer.status_code == 422 and "int64 range" in answer.json()["error"], answer.text


def test_explain_has_predicts_body_and_depth_limits(client) -> None:
    huge = json.dumps({"instances": [ROW] * 2000}).encode()  # > 50,000 bytes
    deep = b'{"instances": [{"origin": ' + b"[" * 40 + b"]" * 40 + b"}]}"
    for body in (huge, deep):
        predicted = _v1(client, "predict", body)
        explained = _v1(client, "explain", body)
        assert predicted.status_code in (400, 413), predicted.text
        assert (explained.status_code, explained.json()["error"]) == (
            predicted.status_code, predicted.json()["error"])
        inferred = _v2(client, "infer", body)
        explained = _v2(client, "explain", body)
        assert (explained.status_code, explained.json()) == (inferred.status_code,
                                                             inferred.json())


@pytest.mark.parametrize("top", ["9" * 1000, str(2**64), "0", "-1", "1.5", '"3"', str(10**6)])
def test_top_is_bounded(client, top: str) -> None:
    v1 = _v1(client, "explain", b'{"instances": [' + json.dumps(ROW).encode() + b'], "top": '
             + top.encode() + b"}")
    assert v1.status_code == 422, v1.text
    v2 = _v2(client, "explain", _tensors("7")[:-1] + b', "parameters": {"top": '
             + top.encode() + b"}}")
    assert v2.status_code == 422, v2.text
    ok = _v1(client, "explain", b'{"instances": [' + json.dumps(ROW).encode() + b'], "top": 2}')
    assert ok.status_code == 200, ok.text


def _binary(shape: list[int], datatype: str, blob: bytes) -> tuple[bytes, dict[str, str]]:
    header = json.dumps({"inputs": [{"name": "hour", "shape": shape, "datatype": datatype,
                                     "parameters": {"binary_data_size": len(blob)}}]}).encode()
    return header + blob, {"inference-header-content-length": str(len(header))}


@pytest.mark.parametrize("shape", [[10**12], [3037000500, 3037000500], [2**62, 4]])
@pytest.mark.parametrize("datatype", ["BYTES", "INT64", "FP32"])
@pytest.mark.parametrize("route", ["infer", "explain"])
def test_a_tensor_larger_than_its_body_is_refused_before_allocation(
    client, shape: list[int], datatype: str, route: str
) -> None:
    blob = struct.pack("<I", 1) + b"7"  # one BYTES value (or 5 stray bytes)
    body, headers = _binary(shape, datatype, blob)
    answer = _v2(client, route, body, headers)
    assert answer.status_code == 400, answer.text
    assert "binary data has 5" in answer.json()["error"] or "5 binary bytes" in answer.json()[
        "error"], answer.text
    # the same over gRPC's raw contents (one parser)
    request = pb.ModelInferRequest(model_name="flights", inputs=[
        pb.ModelInferRequest.InferInputTensor(name="hour", datatype=datatype, shape=shape)],
        raw_input_contents=[blob])
    model = client.app.state.serving.deployment("flights").routes[0].model
    with pytest.raises(BadRequest, match=r"binary data has 5|5 binary bytes"):
        parse_grpc_infer(request, model)


def test_binary_tensors_that_fit_still_answer(client) -> None:
    origin = b"".join(struct.pack("<I", 3) + b"JFK" for _ in range(2))
    hour = np.array([7, 18], dtype="<i8").tobytes()
    distance = np.array([1000.0, 300.0], dtype="<f8").tobytes()
    header = json.dumps({"inputs": [
        {"name": "origin", "shape": [2], "datatype": "BYTES",
         "parameters": {"binary_data_size": len(origin)}},
        {"name": "hour", "shape": [2], "datatype": "INT64",
         "parameters": {"binary_data_size": len(hour)}},
        {"name": "distance", "shape": [2], "datatype": "FP64",
         "parameters": {"binary_data_size": len(distance)}},
    ]}).encode()
    headers = {"inference-header-content-length": str(len(header))}
    for route in ("infer", "explain"):
        answer = _v2(client, route, header + origin + hour + distance, headers)
        assert answer.status_code == 200, (route, answer.text)
