"""Open Inference Protocol (KServe v2) over REST: typed tensors in, typed tensors out.

A request carries one tensor per input column (shape ``[n]`` or ``[n, 1]``)
or one 2-D tensor ``[n, k]`` holding the columns in signature order. Data
arrive as JSON lists or, with the binary tensor extension the official
clients use by default (``Inference-Header-Content-Length``), as raw
little-endian bytes after the JSON header. Answers carry ``prediction``
(FP64: the positive-class probability or the value) and, for classifiers,
``decision`` (INT64, at the model's decision threshold), as JSON or binary as
the request asks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ctloop.models.signature import ColumnSpec
from ctloop.serving.errors import BadRequest, InvalidRequest
from ctloop.serving.inputs import Inputs, request_ids

__all__ = ["DATATYPES", "Infer", "datatype_of", "encode_outputs", "parse_infer", "split_binary"]

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(bool),
    "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
_PYTHON: dict[str, frozenset[type]] = {
    "BOOL": frozenset({bool}), "BYTES": frozenset({str}),
    **{k: frozenset({int}) for k in DATATYPES if k.startswith(("INT", "UINT"))},
    **{k: frozenset({int, float}) for k in ("FP16", "FP32", "FP64")},
}
_TYPE_OF = {"integer": "INT64", "float": "FP64", "boolean": "BOOL", "string": "BYTES",
            "datetime": "BYTES"}


def datatype_of(spec: ColumnSpec) -> str:
    """The v2 datatype a signature column is declared with in model metadata."""
    return _TYPE_OF.get(spec.type, "BYTES")


@dataclass(frozen=True)
class Infer:
    """A parsed infer request: the inputs plus what the answer should hold."""

    inputs: Inputs
    id: str | None
    outputs: tuple[str, ...] | None  # None: every output
    binary: frozenset[str]  # outputs wanted as binary data
    lenient: bool  # a 2-D BYTES tensor: numbers arrive as text


def split_binary(raw: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """(JSON header, binary tail) of a body using the binary tensor extension."""
    if header_length is None:
        return raw, b""
    try:
        size = int(header_length)
    except ValueError:
        raise BadRequest(
            f"Inference-Header-Content-Length must be an integer; got {header_length!r}."
        ) from None
    if not 0 <= size <= len(raw):
        raise BadRequest(
            f"Inference-Header-Content-Length {size} is outside the {len(raw)}-byte body."
        )
    return raw[:size], raw[size:]


def parse_infer(body: Any, tail: bytes, specs: Sequence[ColumnSpec]) -> Infer:
    """A v2 infer body (already JSON-decoded) as columns for the model with ``specs``."""
    if not isinstance(body, dict):
        raise BadRequest('The infer request must be a JSON object with "inputs": [tensors].')
    tensors = body.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise BadRequest('"inputs" must be a non-empty list of tensors {name, shape, datatype, '
                         "data}.")
    params = _params(body.get("parameters"), "the request")
    offset = 0
    arrays: dict[str, np.ndarray] = {}
    shapes: dict[str, list[int]] = {}
    for tensor in tensors:
        name, shape, _, array, used = _tensor(tensor, tail, offset)
        offset += used
        if name in arrays:
            raise BadRequest(f"Input tensor {name!r} is given twice.")
        arrays[name], shapes[name] = array, shape
    if offset != len(tail):
        raise BadRequest(f"The body has {len(tail) - offset} binary bytes no input claims.")
    columns, n, lenient = _columns(arrays, shapes, specs)
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest('"id" must be a string.')
    ids = request_ids(params.get("request_ids"), n)
    now = params.get("now")
    if now is not None and not isinstance(now, str):
        raise BadRequest('parameters.now must be an ISO timestamp string.')
    row_ids = params.get("row_ids")
    if row_ids is not None and (not isinstance(row_ids, list) or len(row_ids) != n):
        raise BadRequest(f"parameters.row_ids must list one id per row ({n}).")
    wanted, binary = _outputs(body.get("outputs"), bool(params.get("binary_data_output")))
    inputs = Inputs(columns, n, ids,
                    None if row_ids is None else [None if r is None else str(r) for r in row_ids],
                    now, "v2", coerce=lenient)
    return Infer(inputs, request_id, wanted, binary, lenient)


def _params(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"The parameters of {what} must be an object.")
    return value


def _tensor(
    tensor: Any, tail: bytes, offset: int
) -> tuple[str, list[int], str, np.ndarray, int]:
    if not isinstance(tensor, dict):
        raise BadRequest("Every input must be an object {name, shape, datatype, data}.")
    name, shape, dtype = tensor.get("name"), tensor.get("shape"), tensor.get("datatype")
    if not isinstance(name, str) or not name:
        raise BadRequest("Every input tensor needs a string 'name'.")
    if (not isinstance(shape, list) or not shape or len(shape) > 2
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise BadRequest(f"Input {name!r}: 'shape' must be a list of 1 or 2 non-negative sizes.")
    if dtype not in DATATYPES:
        raise BadRequest(
            f"Input {name!r}: datatype {dtype!r} is not one of {', '.join(DATATYPES)}."
        )
    count = math.prod(shape)
    if count == 0:
        raise InvalidRequest(f"Input {name!r} has no values; send at least one row.")
    params = _params(tensor.get("parameters"), f"input {name!r}")
    size = params.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(tail):
            raise BadRequest(f"Input {name!r}: binary_data_size {size!r} exceeds the body.")
        array = _from_binary(name, dtype, tail[offset:offset + size], count)
        return name, shape, dtype, array, size
    data = tensor.get("data")
    if not isinstance(data, list):
        raise BadRequest(f"Input {name!r}: 'data' must be a list of values (or binary data).")
    flat = data if not data or not isinstance(data[0], list) else _flatten(name, data)
    if len(flat) != count:
        raise BadRequest(
            f"Input {name!r}: shape {shape} holds {count} values but 'data' has {len(flat)}."
        )
    kinds = set(map(type, flat))
    allowed = _PYTHON[dtype]
    if not kinds <= allowed and not (dtype.startswith("FP") and kinds <= {int, float}):
        bad = next(v for v in flat if type(v) not in allowed)
        raise BadRequest(
            f"Input {name!r} is declared {dtype} but holds {type(bad).__name__} values such as "
            f"{bad!r}."
        )
    if dtype == "BYTES":
        array = np.empty(count, dtype=object)
        array[:] = flat
    else:
        try:
            array = np.array(flat, dtype=DATATYPES[dtype])
        except OverflowError:
            raise BadRequest(f"Input {name!r}: a value is out of the {dtype} range.") from None
    return name, shape, dtype, array, 0


def _flatten(name: str, data: list[Any]) -> list[Any]:
    if not all(isinstance(row, list) for row in data):
        raise BadRequest(f"Input {name!r}: nested 'data' must be a list of equally long lists.")
    return [v for row in data for v in row]


def _from_binary(name: str, dtype: str, raw: bytes, count: int) -> np.ndarray:
    if dtype != "BYTES":
        width = DATATYPES[dtype].itemsize
        if len(raw) != width * count:
            raise BadRequest(
                f"Input {name!r}: {len(raw)} binary bytes for {count} {dtype} values "
                f"(expected {width * count})."
            )
        return np.frombuffer(raw, dtype=DATATYPES[dtype]).copy()
    out = np.empty(count, dtype=object)
    view, pos = memoryview(raw), 0
    for i in range(count):  # length-prefixed strings: inherently sequential
        if pos + 4 > len(raw):
            raise BadRequest(f"Input {name!r}: binary BYTES data end after {i} of {count} values.")
        size = int.from_bytes(view[pos:pos + 4], "little")
        pos += 4
        out[i] = bytes(view[pos:pos + size]).decode("utf-8", "replace")
        pos += size
    if pos != len(raw):
        raise BadRequest(f"Input {name!r}: binary BYTES data hold more than {count} values.")
    return out


def _columns(
    arrays: dict[str, np.ndarray], shapes: dict[str, list[int]], specs: Sequence[ColumnSpec]
) -> tuple[dict[str, Sequence[Any] | np.ndarray], int, bool]:
    names = [s.name for s in specs]
    if len(arrays) == 1:
        [(name, array)] = arrays.items()
        shape = shapes[name]
        if len(shape) == 2 and shape[1] == len(names) and (shape[1] != 1 or name not in names):
            matrix = array.reshape(shape)
            lenient = array.dtype == object and any(s.type != "string" for s in specs)
            columns: dict[str, Sequence[Any] | np.ndarray] = {
                n: (matrix[:, j].tolist() if lenient else matrix[:, j])
                for j, n in enumerate(names)
            }
            return columns, shape[0], lenient
    rows = {}
    for name, shape in shapes.items():
        if len(shape) == 2 and shape[1] != 1:
            raise BadRequest(
                f"Input {name!r} has shape {shape}: give one tensor per column with shape [n] "
                f"or [n, 1], or one [n, {len(names)}] tensor with the columns {names} in order."
            )
        rows[name] = shape[0]
    if len(set(rows.values())) != 1:
        raise BadRequest(f"The input tensors must hold the same number of rows; got {rows}.")
    return dict(arrays), next(iter(rows.values())), False


def _outputs(value: Any, binary_default: bool) -> tuple[tuple[str, ...] | None, frozenset[str]]:
    if value is None:
        return None, frozenset({"prediction", "decision"} if binary_default else ())
    if not isinstance(value, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in value
    ):
        raise BadRequest('"outputs" must be a list of objects {"name": ...}.')
    names = tuple(o["name"] for o in value)
    unknown = sorted(set(names) - {"prediction", "decision"})
    if unknown:
        raise BadRequest(f"Unknown output(s) {unknown}; this model answers prediction, decision.")
    binary = {
        o["name"] for o in value
        if _params(o.get("parameters"), f"output {o['name']!r}").get("binary_data", binary_default)
    }
    return names, frozenset(binary)


def encode_outputs(
    infer: Infer, outputs: dict[str, np.ndarray], head: dict[str, Any]
) -> tuple[bytes, int | None]:
    """The answer body and, when binary outputs were asked for, the JSON header's length."""
    tensors, blobs = [], []
    for name, values in outputs.items():
        if infer.outputs is not None and name not in infer.outputs:
            continue
        datatype = "FP64" if values.dtype.kind == "f" else "INT64"
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": [len(values)]}
        if name in infer.binary:
            blob = values.astype(DATATYPES[datatype], copy=False).tobytes()
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = values
        tensors.append(tensor)
    header = orjson.dumps({**head, "outputs": tensors}, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)
