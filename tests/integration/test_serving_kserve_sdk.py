"""The KServe v1 and Open Inference Protocol v2 services driven by the real kserve SDK.

kserve 0.21 pins pandas<3, so it cannot be a test dependency of ctloop: it is
installed in a venv of its own (``ctloop.testing.peers``, built once per
machine and reused) and runs ``kserve_sdk_client.py`` there as a subprocess
against a real service (HTTP and gRPC). Its answers are compared with
``LoadedModel.predict`` and with ctloop's own v2 HTTP answer for the same rows.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from ctloop.artifacts import open_artifact_store
from ctloop.examples.flights.data import flights
from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
from ctloop.models import fit_model
from ctloop.registry import ModelRegistry
from ctloop.requestlog.log import open_prediction_log
from ctloop.serving import ServingConfig, create_app
from ctloop.serving.background import background_server
from ctloop.testing.peers import KSERVE, require_peer

# A cold machine builds the SDK's venv first (pip install kserve: 30 s to a minute or two).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

FEATURES = ["origin", "hour", "dep_delay"]  # BYTES, INT64, FP64 on the wire
CLIENT = Path(__file__).with_name("kserve_sdk_client.py")


@dataclass
class Answers:
    sdk: dict[str, Any]  # call name -> {"ok": ...} or {"error", "message", "code"}
    http_v2: dict[str, Any]  # ctloop's own v2 HTTP answer for the same rows
    http_meta: dict[str, Any]  # ctloop's GET /v2/models/flights
    v1_unknown: dict[str, Any]  # ctloop's v1 body for an unknown model, as sent
    expected: np.ndarray  # LoadedModel.predict on the rows
    logged: pd.DataFrame


@pytest.fixture(scope="module")
def kserve_python() -> Path:
    """The kserve venv's python (built on first use: about a minute, then about a second)."""
    return require_peer(KSERVE)


@pytest.fixture(scope="module")
def answers(kserve_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Answers]:
    """One service (HTTP and gRPC), one run of the SDK script against it."""
    root = tmp_path_factory.mktemp("kserve-sdk")
    data = flights([1]).head(3000)
    model_dir = root / "model"
    fit_model(data, label="delayed", features=FEATURES, algorithm="lightgbm",
              params={"n_estimators": 10, "n_jobs": 1}).save(model_dir)
    store = open_metadata_store(f"sqlite:///{root / 'meta.db'}")
    artifacts = open_artifact_store((root / "artifacts").as_uri())
    registry = ModelRegistry(store, actor="test")
    stored = artifacts.put(model_dir)
    record = store.add_artifact(ArtifactRecord(id=new_id(), type="Model", uri=stored.uri,
                                               sha256=stored.sha256, size=stored.size))
    registry.register("flights", record.id)
    registry.promote("flights", 1)
    rows = flights([2]).head(25)[FEATURES].reset_index(drop=True)
    expected = np.asarray(registry.load("flights:1", artifacts).predict(rows))

    log = open_prediction_log(root / "log")
    app = create_app("flights", config=ServingConfig.from_table({"grpc_port": 0}),
                     metadata=store, artifacts=artifacts, feature_store=False,
                     prediction_log=log)
    columns = {c: rows[c].tolist() for c in FEATURES}
    with background_server(app) as url:
        spec = {"http": url, "grpc": f"127.0.0.1:{app.state.grpc_port}", "columns": columns}
        proc = subprocess.run([str(kserve_python), "-I", str(CLIENT)], input=json.dumps(spec),
                              capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stderr[-3000:]
        body = {"id": "ctloop-http", "inputs": [
            {"name": c, "shape": [len(rows)], "datatype": d, "data": columns[c]}
            for c, d in zip(FEATURES, ("BYTES", "INT64", "FP64"), strict=True)]}
        http_v2 = httpx.post(f"{url}/v2/models/flights/infer", json=body, timeout=30)
        assert http_v2.status_code == 200, http_v2.text
        http_meta = httpx.get(f"{url}/v2/models/flights", timeout=30).json()
        v1_unknown = httpx.post(f"{url}/v1/models/nope:predict", timeout=30,
                                json={"instances": [dict.fromkeys(FEATURES, 1)]})
        app.state.serving.logger.flush()
        logged = log.read(model_name=None, include_rejected=True, include_unserved=True)
    store.close()
    yield Answers(json.loads(proc.stdout), http_v2.json(), http_meta, v1_unknown.json(),
                  expected, logged)


def _ok(answers: Answers, call: str) -> Any:
    result = answers.sdk[call]
    assert "ok" in result, f"{call}: {result}"
    return result["ok"]


def _outputs(answer: dict[str, Any]) -> dict[str, np.ndarray]:
    return {name: np.asarray(o["data"]) for name, o in answer["outputs"].items()}


def test_sdk_predictions_equal_ctloops_own_v2_answer(answers: Answers) -> None:
    ours = {o["name"]: np.asarray(o["data"]) for o in answers.http_v2["outputs"]}
    np.testing.assert_allclose(ours["prediction"], answers.expected, rtol=0, atol=1e-12)
    n = len(answers.expected)
    for call in ("v2_infer_binary", "v2_infer_json", "grpc_infer_raw", "grpc_infer_typed"):
        answer = _ok(answers, call)
        assert answer["model_name"] == "flights", call
        assert {k: (o["datatype"], o["shape"]) for k, o in answer["outputs"].items()} == {
            "prediction": ("FP64", [n]), "decision": ("INT64", [n]), "label": ("INT64", [n]),
            "probabilities": ("FP64", [n, 2])}, call
        got = _outputs(answer)
        assert np.array_equal(got["prediction"], ours["prediction"]), call
        assert np.array_equal(got["decision"], ours["decision"]), call
    # The request's id comes back as the answer's id; gRPC also names the version.
    assert [_ok(answers, c)["id"] for c in ("v2_infer_binary", "v2_infer_json",
                                            "grpc_infer_raw", "grpc_infer_typed")] == [
        "k-rest-binary", "k-rest-json", "k-grpc-raw", "k-grpc-typed"]
    assert _ok(answers, "grpc_infer_raw")["model_version"] == "1"
    only = _ok(answers, "v2_infer_one_output")
    assert list(only["outputs"]) == ["prediction"]
    assert np.array_equal(_outputs(only)["prediction"], ours["prediction"])
    # KServe v1: objects, and lists in the signature's column order.
    for call in ("v1_predict", "v1_predict_lists"):
        answer = _ok(answers, call)
        assert np.array_equal(np.asarray(answer["predictions"]), ours["prediction"]), call
        assert answer["decisions"] == ours["decision"].tolist() and set(answer["versions"]) == {1}


def test_sdk_health_and_metadata_calls(answers: Answers) -> None:
    for call in ("v2_live", "v2_ready", "v2_model_ready", "v1_model_ready",
                 "grpc_live", "grpc_ready", "grpc_model_ready"):
        assert _ok(answers, call) is True, call
    assert _ok(answers, "v2_model_ready_unknown") is False  # a probe: 404 reads as not ready
    assert _ok(answers, "grpc_model_ready_unknown") is False
    meta, http = _ok(answers, "grpc_model_metadata"), answers.http_meta
    assert (meta["name"], meta["versions"], meta["platform"]) == (
        http["name"], http["versions"], http["platform"])
    for got, want in ((meta["inputs"], http["inputs"]), (meta["outputs"], http["outputs"])):
        assert got == [[t["name"], t["datatype"], t["shape"]] for t in want]


def test_request_log_has_the_sdk_requests_under_their_protocols(answers: Answers) -> None:
    logged, n = answers.logged, len(answers.expected)
    served = logged[logged["served"]]
    # v1: objects, lists; v2: binary, JSON, one output, plus ctloop's own request; gRPC: 2.
    assert served.groupby("protocol").size().to_dict() == {"v1": 2 * n, "v2": 4 * n,
                                                           "v2-grpc": 2 * n}
    assert (served["status"] == 200).all() and set(served["model_version"]) == {1}
    refused = logged[~logged["served"]].sort_values(["protocol", "status"])
    # one of the v1 404s is the fixture's own request (the body the SDK reads)
    assert list(zip(refused["protocol"], refused["status"], strict=True)) == [
        ("v1", 404), ("v1", 404), ("v1", 422), ("v2", 404), ("v2", 422),
        ("v2-grpc", 404), ("v2-grpc", 422)]
    # Each answer's request ids name its rows in the log, with the predictions it sent back.
    by_id = served.set_index("request_id")["prediction"]
    for call, ids in (
        ("v2_infer_binary", _ok(answers, "v2_infer_binary")["parameters"]["request_ids"]),
        ("grpc_infer_raw",
         json.loads(_ok(answers, "grpc_infer_raw")["parameters"]["request_ids"])),
    ):
        protocol = "v2-grpc" if call.startswith("grpc") else "v2"
        assert set(served.loc[served["request_id"].isin(ids), "protocol"]) == {protocol}
        np.testing.assert_array_equal(by_id.loc[ids].to_numpy(),
                                      _outputs(_ok(answers, call))["prediction"])


def _error(answers: Answers, call: str) -> dict[str, Any]:
    result = answers.sdk[call]
    assert "error" in result, f"{call} should have failed: {result}"
    return dict(result)


def test_bad_input_through_the_sdk_raises_its_error_with_ctloops_message(
        answers: Answers) -> None:
    unknown = "No model 'nope' is served here; served models: flights."
    missing = "The rows are missing column(s) ['hour'] that the model needs"
    for call, kind, code, text in (
        ("v2_unknown_model", "HTTPStatusError", 404, unknown),
        ("v2_wrong_input", "HTTPStatusError", 422, missing),
        ("grpc_unknown_model", "AioRpcError", "NOT_FOUND", unknown),
        ("grpc_wrong_input", "AioRpcError", "INVALID_ARGUMENT", missing),
        # v1: the SDK shows only the body's "error" field, which carries the message.
        ("v1_unknown_model", "HTTPStatusError", 404, unknown),
        ("v1_wrong_column", "HTTPStatusError", 422, "column 'hour' must be integer"),
    ):
        error = _error(answers, call)
        assert (error["error"], error["code"]) == (kind, code), call
        assert text in error["message"] and "\n" not in error["message"], error


def test_v1_errors_carry_ctloops_message_through_the_sdk(answers: Answers) -> None:
    assert answers.v1_unknown["detail"] == "No model 'nope' is served here; served models: " \
        "flights."
    assert answers.v1_unknown["detail"] in _error(answers, "v1_unknown_model")["message"]


def test_v1_server_live_through_the_sdk(answers: Answers) -> None:
    assert _ok(answers, "v1_server_live") is True
