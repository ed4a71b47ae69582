"""Open Inference Protocol (KServe v2) over REST: typed tensors in, typed tensors out.

A request for a tabular model carries one tensor per input column (shape ``[n]``
or ``[n, 1]``) or one 2-D tensor ``[n, k]`` holding the columns in signature
order; a tensor model (its signature lists ``tensors``) takes its named N-d
tensors, checked against each ``TensorSpec``. Data arrive as JSON lists or, with
the binary tensor extension the official clients use by default
(``Inference-Header-Content-Length``), as raw little-endian bytes after the JSON
header.

Answers (see :func:`output_tensors`): regression ``prediction`` FP64 ``[n]``;
classification ``label`` (INT64 for integer classes, else BYTES) ``[n]`` and
``probabilities`` FP64 ``[n, k]`` in class order, binary also ``prediction``
(P(positive)) and ``decision`` (0/1 at the model's threshold) ``[n]``; a tensor
model its output tensors. Each :class:`Tensor`'s shape is its data's shape, so
no answer can say one shape and carry another.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ctloop.models.flavors import LoadedModel
from ctloop.models.signature import ColumnSpec, TensorSpec, input_layout
from ctloop.serving.errors import BadRequest, InvalidRequest
from ctloop.serving.inputs import Inputs, request_ids
from ctloop.serving.scoring.answer import Answer, classes_of, is_tensor_model, kind_of

__all__ = [
    "DATATYPES", "Infer", "Tensor", "datatype_of", "encode_outputs", "output_metadata",
    "output_names", "output_tensors", "parse_infer", "split_binary", "tensor_specs",
]

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(bool),
    "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
# JSON has no NaN: a missing float or text is ``null`` (NaN / None here), which the
# signature then accepts for a nullable column and refuses (422) for any other, exactly as
# a NaN in a binary tensor or a null in a v1 row. Integers and booleans have no missing value.
_PYTHON: dict[str, frozenset[type]] = {
    "BOOL": frozenset({bool}), "BYTES": frozenset({str, type(None)}),
    **{k: frozenset({int}) for k in DATATYPES if k.startswith(("INT", "UINT"))},
    **{k: frozenset({int, float, type(None)}) for k in ("FP16", "FP32", "FP64")},
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


def parse_infer(
    body: Any,
    tail: bytes,
    specs: Sequence[ColumnSpec],
    *,
    outputs: Sequence[str] = ("prediction", "decision"),
    tensor_specs: Sequence[TensorSpec] = (),
) -> Infer:
    """A v2 infer body (already JSON-decoded) as columns for the model with ``specs``.

    ``outputs`` are the names the model answers; with ``tensor_specs`` (a tensor model) the
    inputs are N-d tensors checked against those specs instead of columns.
    """
    if not isinstance(body, dict):
        raise BadRequest('The infer request must be a JSON object with "inputs": [tensors].')
    tensors = body.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise BadRequest('"inputs" must be a non-empty list of tensors {name, shape, datatype, '
                         "data}.")
    params = _params(body.get("parameters"), "the request")
    arrays, shapes = _read_tensors(tensors, tail, tensor_specs)
    matrix = None
    if tensor_specs:
        columns, n, lenient = _tensor_inputs(arrays, shapes, tensor_specs)
    else:
        columns, n, lenient, matrix = _columns(arrays, shapes, specs)
    block_columns = () if matrix is None else tuple(columns)
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest('"id" must be a string.')
    ids, now, row_ids = _row_params(params, n)
    wanted, binary = _outputs(body.get("outputs"), bool(params.get("binary_data_output")),
                              outputs)
    inputs = Inputs(columns, n, ids, row_ids, now, "v2", coerce=lenient, matrix=matrix,
                    matrix_columns=block_columns)
    return Infer(inputs, request_id, wanted, binary, lenient)


def _read_tensors(
    tensors: list[Any], tail: bytes, tensor_specs: Sequence[TensorSpec]
) -> tuple[dict[str, np.ndarray], dict[str, list[int]]]:
    """Each input tensor's flat values and shape by name; binary parts claim ``tail`` in
    order, and every byte of it must be claimed."""
    offset = 0
    arrays: dict[str, np.ndarray] = {}
    shapes: dict[str, list[int]] = {}
    for tensor in tensors:
        name, shape, dtype, array, used = _tensor(tensor, tail, offset,
                                                  0 if tensor_specs else 2)
        offset += used
        if name in arrays:
            raise BadRequest(f"Input tensor {name!r} is given twice.")
        arrays[name], shapes[name] = array, shape
        if tensor_specs:
            _check_spec(name, dtype, shape, tensor_specs)
    if offset != len(tail):
        raise BadRequest(f"The body has {len(tail) - offset} binary bytes no input claims.")
    return arrays, shapes


def _row_params(
    params: dict[str, Any], n: int
) -> tuple[list[str], str | None, list[str | None] | None]:
    """The request's per-row parameters: request ids, ``now`` and ``row_ids``, checked."""
    ids = request_ids(params.get("request_ids"), n)
    now = params.get("now")
    if now is not None and not isinstance(now, str):
        raise BadRequest('parameters.now must be an ISO timestamp string.')
    row_ids = params.get("row_ids")
    if row_ids is None:
        return ids, now, None
    if not isinstance(row_ids, list) or len(row_ids) != n:
        raise BadRequest(f"parameters.row_ids must list one id per row ({n}).")
    return ids, now, [None if r is None else str(r) for r in row_ids]


def _params(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"The parameters of {what} must be an object.")
    return value


def _tensor(
    tensor: Any, tail: bytes, offset: int, max_rank: int
) -> tuple[str, list[int], str, np.ndarray, int]:
    """One input tensor's name, shape, datatype and flat values; ``max_rank`` 0: any."""
    name, shape, dtype = _header(tensor, max_rank)
    count = math.prod(shape)
    if count == 0:
        raise InvalidRequest(f"Input {name!r} has no values; send at least one row.")
    params = _params(tensor.get("parameters"), f"input {name!r}")
    size = params.get("binary_data_size")
    if size is not None:
        if (not isinstance(size, int) or isinstance(size, bool) or size < 0
                or offset + size > len(tail)):
            raise BadRequest(f"Input {name!r}: binary_data_size {size!r} exceeds the body.")
        if dtype == "BYTES" and 4 * count > size:  # before anything is allocated for them
            raise BadRequest(
                f"Input {name!r}: shape {shape} holds {count} BYTES values, at least "
                f"{4 * count} bytes, but its binary data has {size}."
            )
        array = _from_binary(name, dtype, tail[offset:offset + size], count)
        return name, shape, dtype, array, size
    return name, shape, dtype, _from_json(name, shape, dtype, count, tensor.get("data")), 0


def _header(tensor: Any, max_rank: int) -> tuple[str, list[int], str]:
    """A tensor's name, shape and datatype, checked."""
    if not isinstance(tensor, dict):
        raise BadRequest("Every input must be an object {name, shape, datatype, data}.")
    name, shape, dtype = tensor.get("name"), tensor.get("shape"), tensor.get("datatype")
    if not isinstance(name, str) or not name:
        raise BadRequest("Every input tensor needs a string 'name'.")
    if (not isinstance(shape, list) or not shape or (max_rank and len(shape) > max_rank)
            or not _sizes(shape)):
        sizes = f"1 or {max_rank}" if max_rank else "1 or more"
        raise BadRequest(f"Input {name!r}: 'shape' must be a list of {sizes} non-negative sizes.")
    if dtype not in DATATYPES:
        raise BadRequest(
            f"Input {name!r}: datatype {dtype!r} is not one of {', '.join(DATATYPES)}."
        )
    return name, shape, dtype


def _sizes(shape: list[Any]) -> bool:
    """Whether every size is a non-negative integer (not a bool), in two C-speed passes."""
    kinds = set(map(type, shape))
    if kinds <= {int}:
        return bool(min(shape) >= 0)
    return all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)


def _from_json(name: str, shape: list[int], dtype: str, count: int, data: Any) -> np.ndarray:
    """The flat values of a tensor's JSON ``data`` (nested or flat), checked against its
    shape and datatype."""
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
        missing = (" An integer or boolean tensor cannot hold a missing value: send a value "
                   "in every row (null is a missing value in FP16/FP32/FP64 and BYTES tensors "
                   "only).") if bad is None else ""
        raise BadRequest(
            f"Input {name!r} is declared {dtype} but holds {type(bad).__name__} values such as "
            f"{bad!r}.{missing}"
        )
    if dtype == "BYTES":
        array = np.empty(count, dtype=object)
        array[:] = flat
        return array
    try:
        return np.array(flat, dtype=DATATYPES[dtype])
    except OverflowError:
        raise BadRequest(f"Input {name!r}: a value is out of the {dtype} range.") from None


def _flatten(name: str, data: list[Any]) -> list[Any]:
    """Nested ``data`` (any depth, row-major) as one flat list."""
    while data and isinstance(data[0], list):
        if not all(isinstance(row, list) for row in data):
            raise BadRequest(
                f"Input {name!r}: nested 'data' must be a list of equally long lists."
            )
        data = [v for row in data for v in row]
    return data


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
) -> tuple[dict[str, Sequence[Any] | np.ndarray], int, bool, np.ndarray | None]:
    """The columns, rows, leniency and, for one FP64 ``[n, k]`` tensor, the block itself."""
    names = input_layout(specs).names
    if len(arrays) == 1:
        [(name, array)] = arrays.items()
        shape = shapes[name]
        if len(shape) == 2 and shape[1] == len(names) and (shape[1] != 1 or name not in names):
            matrix = array.reshape(shape)
            lenient = array.dtype == object and any(s.type != "string" for s in specs)
            columns: dict[str, Sequence[Any] | np.ndarray]
            if lenient:
                columns = {n: matrix[:, j].tolist() for j, n in enumerate(names)}
            else:  # the rows of the transpose are the column views
                columns = dict(zip(names, matrix.T, strict=True))
            whole = matrix if matrix.dtype == np.float64 else None
            return columns, shape[0], lenient, whole
    rows = {}
    for name, shape in shapes.items():
        if len(shape) == 2 and shape[1] != 1:
            raise BadRequest(
                f"Input {name!r} has shape {shape}: give one tensor per column with shape [n] "
                f"or [n, 1], or one [n, {len(names)}] tensor with the columns {list(names)} "
                "in order."
            )
        rows[name] = shape[0]
    if len(set(rows.values())) != 1:
        raise BadRequest(f"The input tensors must hold the same number of rows; got {rows}.")
    return dict(arrays), next(iter(rows.values())), False, None




def _check_spec(name: str, dtype: str, shape: list[int], specs: Sequence[TensorSpec]) -> None:
    """A tensor model's input against its spec: known name, same datatype, same rank and
    fixed sizes (-1 is any size); 4xx naming the input and the expected spec."""
    spec = next((t for t in specs if t.name == name), None)
    if spec is None:
        raise InvalidRequest(
            f"Input {name!r} is not an input of this model; it takes "
            f"{', '.join(_spec_text(t) for t in specs)}."
        )
    fits = len(shape) == len(spec.shape) and all(
        want in (-1, got) for want, got in zip(spec.shape, shape, strict=True))
    if dtype != spec.datatype or not fits:
        raise InvalidRequest(
            f"Input {name!r} is {dtype} {shape}; the model expects {_spec_text(spec)} "
            "(-1: any size)."
        )


def _spec_text(spec: TensorSpec) -> str:
    return f"{spec.name!r} {spec.datatype} {list(spec.shape)}"


def _tensor_inputs(
    arrays: dict[str, np.ndarray], shapes: dict[str, list[int]], specs: Sequence[TensorSpec]
) -> tuple[dict[str, Sequence[Any] | np.ndarray], int, bool]:
    missing = [t for t in specs if t.name not in arrays]
    if missing:
        raise InvalidRequest(
            f"The request lacks input(s) {', '.join(_spec_text(t) for t in missing)}."
        )
    rows = {name: shape[0] for name, shape in shapes.items()}
    if len(set(rows.values())) != 1:
        raise BadRequest(f"The input tensors must hold the same batch size; got {rows}.")
    columns: dict[str, Sequence[Any] | np.ndarray] = {
        name: array.reshape(shapes[name]) for name, array in arrays.items()
    }
    return columns, next(iter(rows.values())), False


def _outputs(
    value: Any, binary_default: bool, known: Sequence[str]
) -> tuple[tuple[str, ...] | None, frozenset[str]]:
    if value is None:
        return None, frozenset(known if binary_default else ())
    if not isinstance(value, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in value
    ):
        raise BadRequest('"outputs" must be a list of objects {"name": ...}.')
    names = tuple(o["name"] for o in value)
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise BadRequest(f"Unknown output(s) {unknown}; this model answers {', '.join(known)}.")
    binary = {
        o["name"] for o in value
        if _params(o.get("parameters"), f"output {o['name']!r}").get("binary_data", binary_default)
    }
    return names, frozenset(binary)


@dataclass(frozen=True, init=False)
class Tensor:
    """One output tensor; its shape is read off its data, never given separately."""

    name: str
    datatype: str
    data: np.ndarray  # C-contiguous, of the datatype's NumPy type

    def __init__(self, name: str, datatype: str, data: Any) -> None:
        dtype = DATATYPES.get(datatype)
        if dtype is None:
            raise ValueError(f"unknown datatype {datatype!r}")
        if datatype == "BYTES":
            values = np.asarray(data, dtype=object)
        else:
            values = np.ascontiguousarray(data, dtype=dtype)
        # frozen: set once, in one call (every answer builds two to four of these)
        self.__dict__.update(name=name, datatype=datatype, data=values)

    @property
    def shape(self) -> list[int]:
        return list(self.data.shape)

    def json_data(self) -> Any:
        """The values flattened in row-major order, as the protocol's JSON ``data``."""
        if self.datatype == "BYTES":
            return _texts(self.data.reshape(-1).tolist())
        return self.data.reshape(-1)

    def raw(self) -> bytes:
        """The binary tensor extension's bytes (BYTES: 4-byte little-endian length + UTF-8)."""
        if self.datatype != "BYTES":
            return self.data.tobytes()
        encoded = [v.encode("utf-8") for v in _texts(self.data.reshape(-1).tolist())]
        sizes = np.fromiter(map(len, encoded), dtype="<u4", count=len(encoded)).tobytes()
        return b"".join(sizes[4 * i:4 * i + 4] + e for i, e in enumerate(encoded))


def _texts(values: list[Any]) -> list[str]:
    """BYTES values as text (labels already are: one C-speed type check, no copy)."""
    if set(map(type, values)) <= {str}:
        return values
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]


_DATATYPE_OF_KIND = {"b": "BOOL", "O": "BYTES", "U": "BYTES", "S": "BYTES"}


def _datatype_of_array(array: np.ndarray) -> str:
    for name, dtype in DATATYPES.items():
        if name != "BYTES" and array.dtype == dtype:
            return name
    return _DATATYPE_OF_KIND.get(array.dtype.kind, "FP64")


def _label_datatype(classes: Sequence[str | int]) -> str:
    return "INT64" if all(
        isinstance(c, int | np.integer) and not isinstance(c, bool) for c in classes
    ) else "BYTES"


def output_tensors(answer: Answer) -> list[Tensor]:
    """The answer's output tensors, in the order model metadata lists them."""
    if answer.kind == "tensor":
        assert answer.tensors is not None
        return [Tensor(name, _datatype_of_array(np.asarray(v)), v)
                for name, v in answer.tensors.items()]
    if answer.kind == "regression":
        return [Tensor("prediction", "FP64", answer.scores)]
    assert answer.labels is not None and answer.classes is not None
    out = []
    if answer.kind == "binary":
        out.append(Tensor("prediction", "FP64", answer.scores))
        if answer.decisions is not None:
            out.append(Tensor("decision", "INT64", answer.decisions))
    out.append(Tensor("label", "INT64" if answer.labels.dtype.kind in "iu" else "BYTES",
                      answer.labels))
    out.append(Tensor("probabilities", "FP64", answer.probabilities()))
    return out


def output_metadata(model: LoadedModel) -> list[dict[str, Any]]:
    """The model's outputs as model metadata lists them ({name, datatype, shape})."""
    kind = kind_of(model)
    if kind == "tensor":
        return [t.to_dict() for t in model.signature.tensor_outputs]
    if kind == "regression":
        return [{"name": "prediction", "datatype": "FP64", "shape": [-1]}]
    classes = classes_of(model, kind)
    width = len(classes) if classes else -1
    out = []
    if kind == "binary":
        out += [{"name": "prediction", "datatype": "FP64", "shape": [-1]},
                {"name": "decision", "datatype": "INT64", "shape": [-1]}]
    out += [{"name": "label", "datatype": _label_datatype(classes), "shape": [-1]},
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, width]}]
    return out


def tensor_specs(model: LoadedModel) -> tuple[TensorSpec, ...]:
    """The N-d inputs a request decodes for ``model`` (none for a tabular model)."""
    return model.signature.tensors if is_tensor_model(model) else ()


def output_names(model: LoadedModel) -> tuple[str, ...]:
    """The outputs a request may ask ``model`` for (worked out once per loaded model: every
    infer request asks)."""
    known = _NAMES.get(id(model))
    if known is not None and known[0]() is model:
        return known[1]
    if kind_of(model) == "tensor":
        names = tuple(t.name for t in model.signature.tensor_outputs)
    else:
        names = tuple(o["name"] for o in output_metadata(model))
    if len(_NAMES) >= _KEEP:  # models come and go with hot swaps: keep the latest few
        _NAMES.clear()
    _NAMES[id(model)] = (weakref.ref(model), names)  # never keeps a swapped-out model alive
    return names


_KEEP = 256
_NAMES: dict[int, tuple[weakref.ref[LoadedModel], tuple[str, ...]]] = {}


def encode_outputs(
    infer: Infer, outputs: Sequence[Tensor] | Mapping[str, np.ndarray], head: dict[str, Any]
) -> tuple[bytes, int | None]:
    """The answer body and, when binary outputs were asked for, the JSON header's length."""
    if isinstance(outputs, Mapping):
        outputs = [Tensor(name, "FP64" if v.dtype.kind == "f" else "INT64", v)
                   for name, v in outputs.items()]
    tensors, blobs = [], []
    wanted, binary = infer.outputs, infer.binary
    for output in outputs:
        name = output.name
        if wanted is not None and name not in wanted:
            continue
        data = output.data
        tensor: dict[str, Any] = {"name": name, "datatype": output.datatype,
                                  "shape": list(data.shape)}
        if name in binary:
            blob = output.raw()
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif data.ndim == 1 and output.datatype != "BYTES":  # the common answer: as it is
            tensor["data"] = data
        else:
            tensor["data"] = output.json_data()
        tensors.append(tensor)
    header = orjson.dumps({**head, "outputs": tensors}, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)
