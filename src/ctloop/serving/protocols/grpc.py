"""Open Inference Protocol messages over gRPC to and from what the HTTP v2 path reads.

A ``ModelInferRequest`` becomes the JSON-shaped body and binary tail that
``serving.protocols.v2.parse_infer`` reads for HTTP (raw input contents are exactly the
binary tensor extension's bytes; typed contents become ``data`` lists), so a
tensor is checked by one parser with one set of messages whichever protocol
carried it. Answers go back as raw output contents (the tensors of
``protocols.v2.output_tensors``: the same names, datatypes and shapes as over
HTTP), as Triton answers and as ``tritonclient.grpc`` reads fastest. Model
metadata carries the task and class names in ``parameters`` (``classes`` as a JSON
array string), the fields Seldon MLServer adds to the protocol's message; HTTP's
metadata lists them in ``parameters`` too. Request parameters
that HTTP takes as lists (``request_ids``, ``row_ids``) arrive as JSON-array
strings, since a gRPC parameter is a scalar.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ctloop.models.flavors import LoadedModel
from ctloop.requestlog.records import RequestProtocol
from ctloop.serving.errors import BadRequest
from ctloop.serving.proto import grpc_predict_v2_pb2 as pb
from ctloop.serving.protocols.v2 import (
    Infer,
    output_names,
    output_tensors,
    parse_infer,
    tensor_specs,
)
from ctloop.serving.scoring.predict import Scored

__all__ = ["PROTOCOL", "infer_response", "metadata_response", "parse_grpc_infer"]

PROTOCOL: RequestProtocol = "v2-grpc"  # the request log's and the metrics' protocol label

# Which typed-contents field holds each datatype's values.
_CONTENTS = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}
_FIELDS = sorted(set(_CONTENTS.values()))
_LIST_PARAMETERS = ("request_ids", "row_ids")


def parse_grpc_infer(request: pb.ModelInferRequest, model: LoadedModel) -> Infer:
    """``request`` as a parsed infer for ``model``."""
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise BadRequest(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; "
            "give one per input, in the order of 'inputs'."
        )
    tensors = [_tensor(t, None if not raw else raw[i]) for i, t in enumerate(request.inputs)]
    body: dict[str, Any] = {"inputs": tensors, "parameters": _request_parameters(request)}
    if request.id:
        body["id"] = request.id
    if request.outputs:
        body["outputs"] = [{"name": o.name} for o in request.outputs]
    infer = parse_infer(body, b"".join(raw), model.signature.inputs,
                        outputs=output_names(model), tensor_specs=tensor_specs(model))
    return replace(infer, inputs=replace(infer.inputs, protocol=PROTOCOL))


def _tensor(tensor: pb.ModelInferRequest.InferInputTensor, raw: bytes | None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tensor.name, "shape": list(tensor.shape),
                           "datatype": tensor.datatype}
    if raw is not None:
        if tensor.HasField("contents"):
            raise BadRequest(
                f"Input {tensor.name!r} has typed contents while the request uses "
                "raw_input_contents; use one or the other for every input."
            )
        out["parameters"] = {"binary_data_size": len(raw)}
        return out
    field = _CONTENTS.get(tensor.datatype)
    filled = [f for f in _FIELDS if len(getattr(tensor.contents, f))]
    if field is not None and filled and field not in filled:
        raise BadRequest(
            f"Input {tensor.name!r} is declared {tensor.datatype} but its values are in "
            f"contents.{filled[0]}; put them in contents.{field}."
        )
    if field is None and tensor.datatype == "FP16":
        raise BadRequest(f"Input {tensor.name!r}: FP16 values can only be sent as "
                         "raw_input_contents (protobuf has no 16-bit float).")
    values = [] if field is None else list(getattr(tensor.contents, field))
    if field == "bytes_contents":
        values = [v.decode("utf-8", "replace") for v in values]
    out["data"] = values
    return out


def _request_parameters(request: pb.ModelInferRequest) -> dict[str, Any]:
    params = {name: _value(p) for name, p in request.parameters.items()}
    for name in _LIST_PARAMETERS:
        if name in params:
            params[name] = _json_list(name, params[name])
    return params


def _value(parameter: pb.InferParameter) -> Any:
    which = parameter.WhichOneof("parameter_choice")
    return None if which is None else getattr(parameter, which)


def _json_list(name: str, value: Any) -> list[Any]:
    try:
        parsed = json.loads(value) if isinstance(value, str) else None
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, list):
        raise BadRequest(
            f"The {name!r} parameter must be a string holding a JSON array (one id per row), "
            f'e.g. \'["a", "b"]\'; got {value!r}.'
        )
    return parsed


def infer_response(name: str, infer: Infer, scored: Scored) -> pb.ModelInferResponse:
    """The answer to ``infer``: the asked-for outputs as raw little-endian tensors."""
    versions = sorted({p.served.version for p in scored.parts})
    response = pb.ModelInferResponse(model_name=name,
                                     model_version=",".join(map(str, versions)),
                                     id=infer.id or "")
    response.parameters["request_ids"].string_param = json.dumps(infer.inputs.request_ids)
    missing = scored.missing_by_row()
    if missing is not None:
        response.parameters["missing"].string_param = json.dumps(missing)
    for output in output_tensors(scored.answer):
        if infer.outputs is not None and output.name not in infer.outputs:
            continue
        response.outputs.add(name=output.name, datatype=output.datatype, shape=output.shape)
        response.raw_output_contents.append(output.raw())
    return response


def metadata_response(meta: Mapping[str, Any]) -> pb.ModelMetadataResponse:
    """``serving.routes.v2.metadata``'s answer as its message, ``parameters`` included.

    The task and a classifier's ``classes`` go in the response's ``parameters`` and, for
    the outputs that carry classes (``label``, ``probabilities``), in theirs: Seldon
    MLServer's extension of the message (fields 6 and 4), which KServe and Triton
    clients skip as unknown fields. ``classes`` is a JSON-array string, as a gRPC
    parameter is a scalar; every other parameter keeps its scalar type.
    """
    tensor = pb.ModelMetadataResponse.TensorMetadata
    parameters = dict(meta.get("parameters", {}))
    classes = parameters.get("classes")
    response = pb.ModelMetadataResponse(
        name=meta["name"], versions=meta["versions"], platform=meta["platform"],
        inputs=[tensor(name=t["name"], datatype=t["datatype"], shape=t["shape"])
                for t in meta["inputs"]],
    )
    _set_parameters(response.parameters, parameters)
    for t in meta["outputs"]:
        out = response.outputs.add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
        if classes is not None and t["name"] in _CLASS_OUTPUTS:
            _set_parameters(out.parameters, {"classes": classes})
    return response


_CLASS_OUTPUTS = ("label", "probabilities")  # the outputs whose values are, or follow, classes


def _set_parameters(target: Any, values: Mapping[str, Any]) -> None:
    """``values`` into a ``map<string, InferParameter>``: lists as JSON strings."""
    for name, value in values.items():
        parameter = target[name]
        if isinstance(value, bool):
            parameter.bool_param = value
        elif isinstance(value, int):
            parameter.int64_param = value
        elif isinstance(value, float):
            parameter.double_param = value
        elif isinstance(value, str):
            parameter.string_param = value
        else:
            parameter.string_param = json.dumps(value)
