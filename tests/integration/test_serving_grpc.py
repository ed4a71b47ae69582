"""The Open Inference Protocol over gRPC against a real running service, HTTP beside it.

Driven by NVIDIA's official ``tritonclient.grpc`` (raw tensor contents, as it
always sends) and, for what it never sends (typed contents, malformed
messages), by a stub generated from ctloop's own .proto. Every answer is
compared with the HTTP v2 answer for the same rows, from the same process.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.grpc.aio as tgrpc_aio
import tritonclient.http as thttp
from tritonclient.utils import InferenceServerException

import ctloop
from ctloop.artifacts import open_artifact_store
from ctloop.core.errors import ConfigError
from ctloop.core.net import free_port
from ctloop.examples.flights.data import flights
from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
from ctloop.models import fit_model
from ctloop.registry import ModelRegistry
from ctloop.requestlog.log import open_prediction_log
from ctloop.serving import ServingConfig, create_app
from ctloop.serving.auth import hash_key
from ctloop.serving.background import background_server
from ctloop.serving.proto import grpc_predict_v2_pb2 as pb
from ctloop.serving.proto import grpc_predict_v2_pb2_grpc as pb_grpc
from ctloop.serving.scoring.routing import bucket
from ctloop.testing.services import patience

FEATURES = ["origin", "hour", "dep_delay"]  # BYTES, INT64, FP32 on the wire
PREDICT_KEY = "ctl_predict_key_for_grpc_tests_0001"
READ_KEY = "ctl_read_key_for_grpc_tests_000002"


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three small LightGBM models that predict differently (5, 10 and 20 trees)."""
    data = flights([1]).head(3000)
    root = tmp_path_factory.mktemp("grpc-models")
    out = []
    for trees in (5, 10, 20):
        folder = root / f"m{trees}"
        fit_model(data, label="delayed", features=FEATURES, algorithm="lightgbm",
                  params={"n_estimators": trees, "n_jobs": 1}).save(folder)
        out.append(folder)
    return out


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return flights([2]).head(120)[FEATURES].reset_index(drop=True)


@dataclass
class Service:
    http: str  # host:port
    grpc: str
    app: Any
    log: Any
    models: dict[int, Any]  # version -> loaded model, for expected predictions

    def logged(self) -> pd.DataFrame:
        self.app.state.serving.logger.flush()
        return self.log.read(model_name=None, include_rejected=True, include_unserved=True)


@pytest.fixture
def project(ctloop_home: Path, model_dirs: list[Path]) -> Iterator[tuple[Any, Any, ModelRegistry]]:
    """flights versions 1, 2, 3 registered; champion = 1, challenger = 2."""
    store = open_metadata_store(f"sqlite:///{ctloop_home / 'meta.db'}")
    artifacts = open_artifact_store((ctloop_home / "artifacts").as_uri())
    registry = ModelRegistry(store, actor="test")
    for folder in model_dirs:
        stored = artifacts.put(folder)
        record = store.add_artifact(ArtifactRecord(id=new_id(), type="Model", uri=stored.uri,
                                                   sha256=stored.sha256, size=stored.size))
        registry.register("flights", record.id)
    registry.promote("flights", 1)
    registry.promote("flights", 2, alias="challenger")
    yield store, artifacts, registry
    store.close()


@contextmanager
def serving(project: tuple[Any, Any, ModelRegistry], tmp_path: Path,
            **table: Any) -> Iterator[Service]:
    store, artifacts, registry = project
    log = open_prediction_log(tmp_path / "log")
    config = ServingConfig.from_table({"grpc_port": 0, **table})
    app = create_app("flights", config=config, metadata=store, artifacts=artifacts,
                     feature_store=False, prediction_log=log)
    models = {v: registry.load(f"flights:{v}", artifacts) for v in (1, 2, 3)}
    with background_server(app) as url:
        yield Service(url.removeprefix("http://"), f"127.0.0.1:{app.state.grpc_port}", app, log,
                      models)


def _grpc_inputs(frame: pd.DataFrame) -> list[tgrpc.InferInput]:
    return [_tensor(tgrpc, frame, c) for c in FEATURES]


def _http_inputs(frame: pd.DataFrame) -> list[thttp.InferInput]:
    return [_tensor(thttp, frame, c) for c in FEATURES]


def _tensor(module: Any, frame: pd.DataFrame, column: str) -> Any:
    values = {"origin": lambda s: s.to_numpy(dtype=object),
              "hour": lambda s: s.to_numpy(dtype=np.int64),
              "dep_delay": lambda s: s.to_numpy(dtype=np.float32)}[column](frame[column])
    datatype = {"origin": "BYTES", "hour": "INT64", "dep_delay": "FP32"}[column]
    tensor = module.InferInput(column, [len(frame)], datatype)
    tensor.set_data_from_numpy(values)
    return tensor


def _stub(service: Service) -> tuple[grpc.Channel, pb_grpc.GRPCInferenceServiceStub]:
    channel = grpc.insecure_channel(service.grpc)
    return channel, pb_grpc.GRPCInferenceServiceStub(channel)


def _typed_request(frame: pd.DataFrame, **fields: Any) -> pb.ModelInferRequest:
    """An infer request with typed contents (no raw bytes), as tritonclient never sends."""
    request = pb.ModelInferRequest(model_name="flights", **fields)
    origin = request.inputs.add(name="origin", datatype="BYTES", shape=[len(frame)])
    origin.contents.bytes_contents.extend(v.encode() for v in frame["origin"])
    hour = request.inputs.add(name="hour", datatype="INT64", shape=[len(frame)])
    hour.contents.int64_contents.extend(frame["hour"].astype(int).tolist())
    delay = request.inputs.add(name="dep_delay", datatype="FP32", shape=[len(frame)])
    delay.contents.fp32_contents.extend(frame["dep_delay"].astype(float).tolist())
    return request


def _expected(service: Service, frame: pd.DataFrame, version: int = 1) -> np.ndarray:
    typed = frame.assign(dep_delay=frame["dep_delay"].astype(np.float32).astype(np.float64))
    return np.asarray(service.models[version].predict(typed))


def test_health_metadata_and_infer_equal_the_http_answers(project, tmp_path, rows) -> None:
    with serving(project, tmp_path) as service:
        client = tgrpc.InferenceServerClient(service.grpc)
        http = thttp.InferenceServerClient(service.http)
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("flights") and client.is_model_ready("flights", "1")
        assert not client.is_model_ready("flights", "9") and not client.is_model_ready("nope")
        server = client.get_server_metadata()
        assert (server.name, server.version) == ("ctloop", ctloop.__version__)
        meta, http_meta = client.get_model_metadata("flights"), http.get_model_metadata("flights")
        assert (meta.name, list(meta.versions), meta.platform) == (
            http_meta["name"], http_meta["versions"], http_meta["platform"])
        for got, want in ((meta.inputs, http_meta["inputs"]), (meta.outputs,
                                                               http_meta["outputs"])):
            assert [(t.name, t.datatype, list(t.shape)) for t in got] == [
                (t["name"], t["datatype"], t["shape"]) for t in want]

        expected = _expected(service, rows)
        result = client.infer("flights", _grpc_inputs(rows), request_id="g-1")
        over_http = http.infer("flights", _http_inputs(rows), request_id="h-1")
        np.testing.assert_allclose(result.as_numpy("prediction"), expected, rtol=0, atol=1e-12)
        assert np.array_equal(result.as_numpy("prediction"), over_http.as_numpy("prediction"))
        assert np.array_equal(result.as_numpy("decision"), over_http.as_numpy("decision"))
        answer = result.get_response()
        assert (answer.model_version, answer.id) == ("1", "g-1")
        assert len(json.loads(answer.parameters["request_ids"].string_param)) == len(rows)

        # One [n, 3] BYTES tensor holding the columns in signature order, as over HTTP.
        matrix = tgrpc.InferInput("x", [len(rows), 3], "BYTES")
        matrix.set_data_from_numpy(rows[FEATURES].astype(str).to_numpy(dtype=object))
        np.testing.assert_allclose(client.infer("flights", [matrix]).as_numpy("prediction"),
                                   expected, rtol=0, atol=1e-12)
        # Only the asked-for output, from the named version.
        wanted = [tgrpc.InferRequestedOutput("prediction")]
        pinned = client.infer("flights", _grpc_inputs(rows), model_version="1", outputs=wanted)
        assert [o.name for o in pinned.get_response().outputs] == ["prediction"]
        np.testing.assert_allclose(pinned.as_numpy("prediction"), expected, rtol=0, atol=1e-12)
        # Typed contents instead of raw bytes: the same answer.
        channel, stub = _stub(service)
        typed = stub.ModelInfer(_typed_request(rows))
        got = np.frombuffer(typed.raw_output_contents[0], dtype="<f8")
        assert np.array_equal(got, result.as_numpy("prediction"))
        channel.close()
        client.close()
        logged = service.logged()
    by_protocol = logged.groupby("protocol")["request_id"].count().to_dict()
    assert by_protocol == {"v2-grpc": 4 * len(rows), "v2": len(rows)}
    grpc_rows = logged[logged["protocol"] == "v2-grpc"]
    assert grpc_rows["served"].all() and (grpc_rows["status"] == 200).all()
    assert grpc_rows["model_version"].unique().tolist() == [1]


def test_canary_split_and_shadow_route_grpc_rows_as_http_ones(project, tmp_path, rows) -> None:
    ids = [f"req-{i}" for i in range(len(rows))]
    with serving(project, tmp_path, canary="challenger=50%", shadow="3") as service:
        client = tgrpc.InferenceServerClient(service.grpc)
        result = client.infer("flights", _grpc_inputs(rows),
                              parameters={"request_ids": json.dumps(ids)})
        http = thttp.InferenceServerClient(service.http)
        over_http = http.infer("flights", _http_inputs(rows), parameters={"request_ids": ids})
        pinned = client.infer("flights", _grpc_inputs(rows), model_version="2")  # no split
        client.close()
        logged = service.logged()
    challenger = bucket(ids, 0) < 0.5
    assert 30 < challenger.sum() < 90  # the split is real on 120 rows
    expected = np.where(challenger, _expected(service, rows, 2), _expected(service, rows, 1))
    np.testing.assert_allclose(result.as_numpy("prediction"), expected, rtol=0, atol=1e-12)
    assert np.array_equal(result.as_numpy("prediction"), over_http.as_numpy("prediction"))
    assert result.get_response().model_version == "1,2"
    np.testing.assert_allclose(pinned.as_numpy("prediction"), _expected(service, rows, 2),
                               rtol=0, atol=1e-12)
    grpc_rows = logged[logged["protocol"] == "v2-grpc"]
    grpc_rows = grpc_rows[grpc_rows["request_id"].isin(ids)].set_index(["route", "request_id"])
    assert grpc_rows.groupby(level="route").size().to_dict() == {
        "champion": int((~challenger).sum()), "challenger": int(challenger.sum()),
        "shadow": len(rows)}
    routed = grpc_rows.drop(index="shadow", level="route").reset_index()
    want = dict(zip(ids, np.where(challenger, "challenger", "champion"), strict=True))
    assert all(want[r] == route for r, route in zip(routed["request_id"], routed["route"],
                                                    strict=True))
    shadow = grpc_rows.loc["shadow"].loc[ids, "prediction"].to_numpy()
    np.testing.assert_allclose(shadow, _expected(service, rows, 3), rtol=0, atol=1e-12)


def test_grpc_and_http_requests_share_micro_batches(project, tmp_path, rows) -> None:
    frames = [rows.iloc[[i]] for i in range(40)]

    async def fire(service: Service) -> tuple[list[np.ndarray], list[np.ndarray]]:
        grpc_client = tgrpc_aio.InferenceServerClient(service.grpc)
        await grpc_client.infer("flights", _grpc_inputs(frames[0]))  # channel is up
        async with httpx.AsyncClient(base_url=f"http://{service.http}", timeout=30) as http:
            await http.get("/v2/health/ready")

            async def over_http(frame: pd.DataFrame) -> np.ndarray:
                body = {"inputs": [{"name": c, "shape": [1], "datatype": d,
                                    "data": frame[c].tolist()}
                                   for c, d in zip(FEATURES, ("BYTES", "INT64", "FP32"),
                                                   strict=True)]}
                answer = await http.post("/v2/models/flights/infer", json=body)
                return np.array(answer.json()["outputs"][0]["data"])

            async def over_grpc(frame: pd.DataFrame) -> np.ndarray:
                result = await grpc_client.infer("flights", _grpc_inputs(frame))
                return result.as_numpy("prediction")

            got = await asyncio.gather(*(over_grpc(f) for f in frames[:20]),
                                       *(over_http(f) for f in frames[20:]))
        await grpc_client.close()
        return list(got[:20]), list(got[20:])

    with serving(project, tmp_path, batch_wait_ms=100) as service:
        scorer = service.app.state.serving.scorer
        from_grpc, from_http = asyncio.run(fire(service))
        [stats] = scorer.batch_stats().values()
        logged = service.logged()
    expected = _expected(service, rows.head(40))
    np.testing.assert_allclose(np.concatenate(from_grpc + from_http), expected, rtol=0,
                               atol=1e-12)
    assert stats.requests == 41 and stats.rows == 41
    assert stats.calls < 21  # the warm-up, then 40 one-row requests of both protocols coalesced
    assert stats.largest > 1
    assert logged.groupby("protocol").size().to_dict() == {"v2-grpc": 21, "v2": 20}


def _fails(call: Any, code: grpc.StatusCode, text: str) -> str:
    with pytest.raises(InferenceServerException) as raised:
        call()
    assert raised.value.status() == str(code), raised.value
    assert text in raised.value.message(), raised.value.message()
    return str(raised.value.message())


def _stub_fails(call: Any, code: grpc.StatusCode, text: str) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    error: Any = raised.value
    assert error.code() == code, error.details()
    assert text in error.details(), error.details()


def test_bad_input_answers_the_right_code_with_one_clear_line(project, tmp_path, rows) -> None:
    frame = rows.head(3)
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    with serving(project, tmp_path, max_body_bytes=1000) as service:
        client = tgrpc.InferenceServerClient(service.grpc)
        _fails(lambda: client.infer("nope", _grpc_inputs(frame)), grpc.StatusCode.NOT_FOUND,
               "No model 'nope' is served here; served models: flights.")
        _fails(lambda: client.get_model_metadata("nope"), grpc.StatusCode.NOT_FOUND,
               "served models: flights")
        _fails(lambda: client.infer("flights", _grpc_inputs(frame), model_version="7"),
               grpc.StatusCode.NOT_FOUND, "Version '7' of model 'flights' is not served here")
        short = _grpc_inputs(frame)
        short[1].set_shape([5])  # says 5 rows, carries 3
        _fails(lambda: client.infer("flights", short), invalid,
               "Input 'hour': 24 binary bytes for 5 INT64 values (expected 40).")
        words = _grpc_inputs(frame)
        words[1] = tgrpc.InferInput("hour", [3], "BYTES")
        words[1].set_data_from_numpy(frame["hour"].astype(str).to_numpy(dtype=object))
        message = _fails(lambda: client.infer("flights", words), invalid, "hour")
        assert "integer" in message and "\n" not in message
        _fails(lambda: client.infer("flights", _grpc_inputs(frame)[:2]), invalid, "dep_delay")
        _fails(lambda: client.infer("flights", _grpc_inputs(frame),
                                    parameters={"request_ids": "a,b,c"}),
               invalid, "must be a string holding a JSON array")
        _fails(lambda: client.infer("flights", _grpc_inputs(rows)),  # ~2 kB over 1000 bytes
               grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than max")
        _fails(client.get_model_repository_index, grpc.StatusCode.UNIMPLEMENTED, "")
        client.close()

        channel, stub = _stub(service)
        wrong_field = _typed_request(frame)
        hour = wrong_field.inputs[1]
        hour.contents.ClearField("int64_contents")
        hour.contents.fp32_contents.extend([5.0, 6.0, 7.0])
        _stub_fails(lambda: stub.ModelInfer(wrong_field), invalid,
                    "Input 'hour' is declared INT64 but its values are in contents.fp32_contents;"
                    " put them in contents.int64_contents.")
        odd = _typed_request(frame)
        odd.inputs[1].datatype = "INT3"
        _stub_fails(lambda: stub.ModelInfer(odd), invalid, "datatype 'INT3' is not one of")
        mixed = _typed_request(frame, raw_input_contents=[b"\0" * 8])
        _stub_fails(lambda: stub.ModelInfer(mixed), invalid,
                    "raw_input_contents has 1 entries for 3 inputs")
        channel.close()
        logged = service.logged()
    rejected = logged[~logged["served"]]
    assert (rejected["protocol"] == "v2-grpc").all()
    # every refused infer call is logged once, with its HTTP-equivalent status (metadata
    # calls are not predictions)
    assert rejected["status"].tolist() == [404, 404, 400, 422, 422, 400, 400, 400, 400]
    assert logged["served"].sum() == 0


def test_api_keys_guard_grpc_calls_like_http_ones(project, tmp_path, rows) -> None:
    keys = {"ops": {"hash": hash_key(PREDICT_KEY), "roles": ["predict"]},
            "viewer": {"hash": hash_key(READ_KEY), "roles": ["read"]}}
    frame = rows.head(4)
    unauthenticated = grpc.StatusCode.UNAUTHENTICATED
    with serving(project, tmp_path, keys=keys) as service:
        client = tgrpc.InferenceServerClient(service.grpc)
        assert client.is_server_live()  # health needs no key (public = ["health"])
        _fails(lambda: client.get_model_metadata("flights"), unauthenticated,
               "This call needs an API key")
        _fails(lambda: client.infer("flights", _grpc_inputs(frame)), unauthenticated,
               "send metadata 'authorization: Bearer KEY' or 'x-api-key: KEY'")
        _fails(lambda: client.infer("flights", _grpc_inputs(frame),
                                    headers={"authorization": "Bearer not-a-key"}),
               unauthenticated, "The API key is not valid.")
        viewer = {"x-api-key": READ_KEY}
        assert client.get_model_metadata("flights", headers=viewer).name == "flights"
        _fails(lambda: client.infer("flights", _grpc_inputs(frame), headers=viewer),
               grpc.StatusCode.PERMISSION_DENIED, "it needs the 'predict' role")
        expected = _expected(service, frame)
        for headers in ({"authorization": f"Bearer {PREDICT_KEY}"}, {"x-api-key": PREDICT_KEY}):
            result = client.infer("flights", _grpc_inputs(frame), headers=headers)
            np.testing.assert_allclose(result.as_numpy("prediction"), expected, atol=1e-12)
        client.close()
        http = thttp.InferenceServerClient(service.http)
        with pytest.raises(InferenceServerException):
            http.infer("flights", _http_inputs(frame))
        over_http = http.infer("flights", _http_inputs(frame),
                               headers={"Authorization": f"Bearer {PREDICT_KEY}"})
        np.testing.assert_allclose(over_http.as_numpy("prediction"), expected, atol=1e-12)
        logged = service.logged()
    denied = logged[(logged["protocol"] == "v2-grpc") & ~logged["served"]]
    assert sorted(denied["status"].tolist()) == [401, 401, 403]
    assert denied["error"].str.startswith(("unauthorized: ", "forbidden: ")).all()
    assert PREDICT_KEY not in " ".join(logged["error"])
    assert (logged[logged["served"]].groupby("protocol").size().to_dict()
            == {"v2-grpc": 8, "v2": 4})


def test_grpc_settings_are_checked_with_one_line_naming_the_key() -> None:
    for value, text in ((70000, "must be a port number (0 to 65535); got 70000"),
                        (-1, "got -1"), ("eight", "must be a number. Got 'eight'")):
        with pytest.raises(ConfigError, match="grpc_port") as raised:
            ServingConfig.from_table({"grpc_port": value})
        assert text in str(raised.value) and "\n" not in str(raised.value)
    config = ServingConfig.from_table({"grpc_port": 8081, "grpc_host": "0.0.0.0"})
    assert (config.grpc_port, config.grpc_host) == (8081, "0.0.0.0")
    assert ServingConfig.from_table({}).grpc_port is None


def _ctloop_serve(home: Path, *args: str) -> subprocess.Popen[str]:
    exe = Path(sys.executable).parent / "ctloop"
    return subprocess.Popen([str(exe), "serve", "flights", "--log-level", "warning", *args],
                            cwd=home, env={**os.environ, "CTLOOP_ACTOR": "test"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_ctloop_serve_grpc_port_answers_beside_http(ctloop_home: Path, model_dirs, rows) -> None:
    home = ctloop_home / ".ctloop"
    home.mkdir()
    store = open_metadata_store(f"sqlite:///{home / 'metadata.db'}")
    artifacts = open_artifact_store((home / "artifacts").as_uri())
    stored = artifacts.put(model_dirs[0])
    record = store.add_artifact(ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256,
                                               stored.size))
    registry = ModelRegistry(store, actor="test")
    registry.register("flights", record.id)
    registry.promote("flights", 1)
    model = registry.load("flights:1", artifacts)
    store.close()

    port, grpc_port = free_port(), free_port()
    proc = _ctloop_serve(ctloop_home, "--port", str(port), "--grpc-port", str(grpc_port))
    try:
        client = tgrpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        deadline = time.monotonic() + patience(60)
        while True:
            try:
                if client.is_server_ready():
                    break
            except InferenceServerException:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (
                proc.stderr and proc.stderr.read())
            time.sleep(0.2)
        frame = rows.head(10)
        typed = frame.assign(dep_delay=frame["dep_delay"].astype(np.float32).astype(float))
        result = client.infer("flights", _grpc_inputs(frame))
        np.testing.assert_allclose(result.as_numpy("prediction"), model.predict(typed),
                                   atol=1e-12)
        assert httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").json() == {"ready": True}
        client.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    with socket.socket() as taken:  # a gRPC port already in use: one line, non-zero exit
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = str(taken.getsockname()[1])
        failed = _ctloop_serve(ctloop_home, "--port", str(free_port()), "--grpc-port", busy)
        _, err = failed.communicate(timeout=60)
    assert failed.returncode != 0
    assert f"127.0.0.1:{busy}" in err and "--grpc-port" in err and "Traceback" not in err
    bad = _ctloop_serve(ctloop_home, "--grpc-port", "70000")
    _, err = bad.communicate(timeout=60)
    # refused as a usage error before anything starts, naming the option and its range
    assert bad.returncode == 2 and "--grpc-port" in err and "65535" in err
    assert "Traceback" not in err


def test_proto_is_wire_compatible_with_the_official_client() -> None:
    """Every message, field number and type, and every call, as tritonclient.grpc has them;
    MLServer's two metadata ``parameters`` maps are the only additions, on numbers Triton
    leaves free (so its client skips them as unknown fields)."""
    from tritonclient.grpc import service_pb2 as official

    extensions = {"inference.ModelMetadataResponse.parameters": 6,
                  "inference.ModelMetadataResponse.TensorMetadata.parameters": 4}

    def same(ours: Any, theirs: Any) -> None:
        for field in ours.fields:
            if field.full_name in extensions:
                assert field.number == extensions[field.full_name], field.full_name
                assert field.name not in theirs.fields_by_name, field.full_name
                assert field.number not in theirs.fields_by_number, field.full_name
                continue
            other = theirs.fields_by_name[field.name]
            assert (field.number, field.type, field.is_repeated) == (
                other.number, other.type, other.is_repeated), f"{ours.full_name}.{field.name}"
        for nested in ours.nested_types:
            if nested.GetOptions().map_entry and nested.name not in theirs.nested_types_by_name:
                assert f"{ours.full_name}.parameters" in extensions, nested.full_name
                continue  # the entry type of an extension's map
            same(nested, theirs.nested_types_by_name[nested.name])

    for name, message in pb.DESCRIPTOR.message_types_by_name.items():
        same(message, official.DESCRIPTOR.message_types_by_name[name])
    ours = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    theirs = official.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert ours.full_name == theirs.full_name == "inference.GRPCInferenceService"
    for method in ours.methods:
        other = theirs.methods_by_name[method.name]
        assert (method.input_type.full_name, method.output_type.full_name) == (
            other.input_type.full_name, other.output_type.full_name)
    assert {m.name for m in ours.methods} == {"ServerLive", "ServerReady", "ModelReady",
                                              "ServerMetadata", "ModelMetadata", "ModelInfer"}
