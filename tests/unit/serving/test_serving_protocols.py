"""KServe v1 and the Open Inference Protocol v2 against a real started server.

The v2 side is driven by NVIDIA's official ``tritonclient[http]`` client (its
default binary tensors and plain JSON). The ``kserve`` SDK is not used: it
pins pandas < 3 and cannot be installed beside ctloop's dependencies.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from ctloop.requestlog.log import open_prediction_log
from ctloop.serving.background import background_server

FEATURES = ["origin", "hour", "distance"]


@pytest.fixture
def served(three_versions, tmp_path) -> Iterator[tuple[str, object, object]]:
    log = open_prediction_log(tmp_path / "log")
    app = three_versions.app("flights", prediction_log=log)
    with background_server(app) as url:
        yield url, app, log


def _inputs(frame: pd.DataFrame, binary: bool) -> list[triton.InferInput]:
    origin = triton.InferInput("origin", [len(frame)], "BYTES")
    origin.set_data_from_numpy(frame["origin"].to_numpy(dtype=object), binary_data=binary)
    out = [origin]
    for column in ("hour", "distance"):
        tensor = triton.InferInput(column, [len(frame)], "INT64")
        tensor.set_data_from_numpy(frame[column].to_numpy(dtype=np.int64), binary_data=binary)
        out.append(tensor)
    return out


def test_tritonclient_health_metadata_and_infer(served, three_versions, sample) -> None:
    url, _, log = served
    frame = sample.head(40)
    expected = three_versions.registry.load("flights:1", three_versions.artifacts).predict(frame)
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("flights") and client.is_model_ready("flights", "1")
    assert not client.is_model_ready("nope")
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    meta = client.get_model_metadata("flights")
    assert meta["versions"] == ["1"] and meta["platform"] == "ctloop_lightgbm"
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("origin", "BYTES"), ("hour", "INT64"), ("distance", "INT64")
    ]
    # binary: today's prediction/decision first, then the class label and probabilities
    assert [o["name"] for o in meta["outputs"]] == ["prediction", "decision", "label",
                                                   "probabilities"]
    for binary in (True, False):  # the client's binary tensor extension, then plain JSON
        result = client.infer("flights", _inputs(frame, binary), request_id=f"b{binary}")
        np.testing.assert_allclose(result.as_numpy("prediction"), expected, rtol=0, atol=1e-12)
        assert result.as_numpy("decision").tolist() == (expected >= 0.5).astype(int).tolist()
        assert result.get_response()["model_version"] == "1"
        assert result.get_response()["id"] == f"b{binary}"
    wanted = [triton.InferRequestedOutput("prediction", binary_data=False)]
    result = client.infer("flights", _inputs(frame, True), model_version="1", outputs=wanted)
    assert [o["name"] for o in result.get_response()["outputs"]] == ["prediction"]
    np.testing.assert_allclose(result.as_numpy("prediction"), expected, rtol=0, atol=1e-12)
    with pytest.raises(InferenceServerException, match="not served here"):
        client.infer("flights", _inputs(frame, True), model_version="7")
    with pytest.raises(InferenceServerException, match="must be integer"):
        bad = _inputs(frame, False)
        bad[1] = triton.InferInput("hour", [len(frame)], "BYTES")
        bad[1].set_data_from_numpy(frame["hour"].astype(str).to_numpy(dtype=object))
        client.infer("flights", bad)
    client.close()
    app_log = served[1].state.serving.logger
    app_log.flush()
    logged = log.read(model_name="flights", include_rejected=True, include_unserved=True)
    assert (logged["served"]).sum() == 3 * len(frame)  # three answered infer calls
    assert (~logged["served"]).sum() == 2  # the unknown version and the string hours


def test_v2_json_tensors_2d_and_errors(served, three_versions, sample) -> None:
    url, _, _ = served
    frame = sample.head(5)
    expected = three_versions.registry.load("flights:1", three_versions.artifacts).predict(frame)
    matrix = frame[FEATURES].astype(str).to_numpy().tolist()
    with httpx.Client(base_url=url) as client:
        assert client.get("/v2/health/live").json() == {"live": True}
        body = {"inputs": [{"name": "x", "shape": [5, 3], "datatype": "BYTES", "data": matrix}]}
        answer = client.post("/v2/models/flights/infer", json=body)
        assert answer.status_code == 200, answer.text
        [prediction, decision, _, _] = answer.json()["outputs"]
        assert prediction["datatype"] == "FP64" and decision["datatype"] == "INT64"
        np.testing.assert_allclose(prediction["data"], expected, rtol=0, atol=1e-12)
        cases = {
            "not an object": ([1], 400),
            "no inputs": ({"inputs": []}, 400),
            "bad datatype": ({"inputs": [{"name": "hour", "shape": [1], "datatype": "INT3",
                                          "data": [1]}]}, 400),
            "shape mismatch": ({"inputs": [{"name": "hour", "shape": [2], "datatype": "INT64",
                                            "data": [1]}]}, 400),
            "data not of the datatype": ({"inputs": [{"name": "hour", "shape": [1],
                                                      "datatype": "INT64", "data": ["1"]}]}, 400),
            "missing columns": ({"inputs": [{"name": "hour", "shape": [1], "datatype": "INT64",
                                             "data": [1]}]}, 422),
        }
        for what, (payload, status) in cases.items():
            answer = client.post("/v2/models/flights/infer", json=payload)
            assert answer.status_code == status, (what, answer.text)
            assert set(answer.json()) == {"error"} and answer.json()["error"], what
        unknown = client.get("/v2/models/nope")
        assert unknown.status_code == 404 and "flights" in unknown.json()["error"]


def test_kserve_v1_instances_and_model_ready(served, three_versions, sample) -> None:
    url, _, _ = served
    frame = sample.head(8)
    expected = three_versions.registry.load("flights:1", three_versions.artifacts).predict(frame)
    rows = frame[FEATURES].to_dict("records")
    lists = frame[FEATURES].to_numpy().tolist()
    with httpx.Client(base_url=url) as client:
        assert client.get("/v1/models/flights").json()["ready"] is True
        for instances in (rows, lists):
            answer = client.post("/v1/models/flights:predict", json={"instances": instances})
            assert answer.status_code == 200, answer.text
            np.testing.assert_allclose(answer.json()["predictions"], expected, atol=1e-12)
        short = client.post("/v1/models/flights:predict", json={"instances": [["JFK", 5]]})
        assert short.status_code == 422 and "3 values" in short.json()["detail"]
