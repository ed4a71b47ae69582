"""Drive a ctloop service with the kserve SDK; runs in the SDK's own venv, never ctloop's.

Started by test_serving_kserve_sdk.py as ``python -I kserve_sdk_client.py`` in
the venv ``ctloop.testing.peers`` builds (kserve 0.21 pins pandas<3, so it
cannot share ctloop's environment). It imports nothing of ctloop. Reads
``{"http": "http://host:port", "grpc": "host:port", "columns": {...}}`` on
stdin and prints one JSON object: per call either ``{"ok": ...}`` or
``{"error": type, "message": str(exc), "code": grpc code or HTTP status}``,
so one unexpected answer does not hide the others.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import httpx
import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from kserve.protocol.infer_type import InferResponse, RequestedOutput, to_http_parameters

DATATYPES = {"origin": "BYTES", "hour": "INT64", "dep_delay": "FP64"}
NUMPY = {"origin": object, "hour": np.int64, "dep_delay": np.float64}


def tensors(columns: dict[str, list[Any]], *, binary: bool,
            rename: dict[str, str] | None = None) -> list[InferInput]:
    """One tensor per column: numpy-set (raw bytes) or plain lists (JSON / typed contents)."""
    out = []
    for name, values in columns.items():
        wire = (rename or {}).get(name, name)
        if binary:
            tensor = InferInput(wire, [len(values)], DATATYPES[name])
            tensor.set_data_from_numpy(np.array(values, dtype=NUMPY[name]))
        else:
            tensor = InferInput(wire, [len(values)], DATATYPES[name], data=list(values))
        out.append(tensor)
    return out


def response(answer: InferResponse) -> dict[str, Any]:
    """The parts of an SDK answer the test compares, as JSON."""
    return {
        "id": answer.id, "model_name": answer.model_name, "model_version": answer.model_version,
        "parameters": to_http_parameters(answer.parameters or {}),
        "outputs": {o.name: {"datatype": o.datatype, "shape": list(o.shape),
                             "data": o.as_numpy().tolist()} for o in answer.outputs},
    }


async def record(results: dict[str, Any], name: str, call: Callable[[], Awaitable[Any]]) -> None:
    try:
        results[name] = {"ok": await call()}
    except grpc.aio.AioRpcError as exc:
        results[name] = {"error": type(exc).__name__, "code": exc.code().name,
                         "message": exc.details()}
    except httpx.HTTPStatusError as exc:
        results[name] = {"error": type(exc).__name__, "code": exc.response.status_code,
                         "message": str(exc)}
    except Exception as exc:  # the test names whatever else the SDK raised
        results[name] = {"error": type(exc).__name__, "message": str(exc)}


async def rest_v1(results: dict[str, Any], base: str, columns: dict[str, list[Any]]) -> None:
    names = list(columns)
    rows = [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    async with InferenceRESTClient(RESTConfig(protocol="v1", retries=0)) as client:
        await record(results, "v1_predict", lambda: client.infer(
            base, {"instances": rows}, model_name="flights"))
        await record(results, "v1_predict_lists", lambda: client.infer(
            base, {"instances": [list(r.values()) for r in rows]}, model_name="flights"))
        await record(results, "v1_model_ready", lambda: client.is_model_ready(base, "flights"))
        await record(results, "v1_server_live", lambda: client.is_server_live(base))
        await record(results, "v1_unknown_model", lambda: client.infer(
            base, {"instances": rows}, model_name="nope"))
        await record(results, "v1_wrong_column", lambda: client.infer(
            base, {"instances": [{**r, "hour": "five"} for r in rows]}, model_name="flights"))


async def rest_v2(results: dict[str, Any], base: str, columns: dict[str, list[Any]]) -> None:
    async with InferenceRESTClient(RESTConfig(protocol="v2", retries=0)) as client:
        await record(results, "v2_live", lambda: client.is_server_live(base))
        await record(results, "v2_ready", lambda: client.is_server_ready(base))
        await record(results, "v2_model_ready", lambda: client.is_model_ready(base, "flights"))
        await record(results, "v2_model_ready_unknown",
                     lambda: client.is_model_ready(base, "nope"))

        async def infer(name: str = "flights", **kw: Any) -> dict[str, Any]:
            request_id = kw.pop("request_id", None)
            outputs = kw.pop("outputs", None)
            request = InferRequest(name, tensors(columns, **kw), request_id=request_id,
                                   request_outputs=outputs)
            return response(await client.infer(base, request, model_name=name))

        await record(results, "v2_infer_binary",
                     lambda: infer(binary=True, request_id="k-rest-binary"))
        await record(results, "v2_infer_json",
                     lambda: infer(binary=False, request_id="k-rest-json"))
        await record(results, "v2_infer_one_output", lambda: infer(
            binary=False, outputs=[RequestedOutput("prediction")]))
        await record(results, "v2_unknown_model", lambda: infer("nope", binary=False))
        await record(results, "v2_wrong_input", lambda: infer(
            binary=False, rename={"hour": "hours"}))


async def over_grpc(results: dict[str, Any], target: str, columns: dict[str, list[Any]]) -> None:
    client = InferenceGRPCClient(target, retries=0)
    try:
        await record(results, "grpc_live", client.is_server_live)
        await record(results, "grpc_ready", client.is_server_ready)
        await record(results, "grpc_model_ready", lambda: client.is_model_ready("flights"))
        await record(results, "grpc_model_ready_unknown", lambda: client.is_model_ready("nope"))

        async def infer(name: str = "flights", **kw: Any) -> dict[str, Any]:
            request_id = kw.pop("request_id", None)
            request = InferRequest(name, tensors(columns, **kw), request_id=request_id)
            return response(await client.infer(request))

        await record(results, "grpc_infer_raw", lambda: infer(binary=True, request_id="k-grpc-raw"))
        await record(results, "grpc_infer_typed",
                     lambda: infer(binary=False, request_id="k-grpc-typed"))
        await record(results, "grpc_unknown_model", lambda: infer("nope", binary=True))
        await record(results, "grpc_wrong_input", lambda: infer(
            binary=True, rename={"hour": "hours"}))
    finally:
        await client.close()
    # The SDK's client has no metadata call; its generated stub (KServe's own proto) does.
    async with grpc.aio.insecure_channel(target) as channel:
        stub = GRPCInferenceServiceStub(channel)

        async def metadata() -> dict[str, Any]:
            meta = await stub.ModelMetadata(pb.ModelMetadataRequest(name="flights"))
            return {"name": meta.name, "versions": list(meta.versions), "platform": meta.platform,
                    "inputs": [[t.name, t.datatype, list(t.shape)] for t in meta.inputs],
                    "outputs": [[t.name, t.datatype, list(t.shape)] for t in meta.outputs]}

        await record(results, "grpc_model_metadata", metadata)


async def main() -> None:
    spec = json.load(sys.stdin)
    results: dict[str, Any] = {}
    await rest_v1(results, spec["http"], spec["columns"])
    await rest_v2(results, spec["http"], spec["columns"])
    await over_grpc(results, spec["grpc"], spec["columns"])
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
