"""Answers by task, and their encodings: no shape that does not match its data.

A property test drives :func:`answer_of` (and tensor answers) over tasks, row
counts, class sets and every array layout and dtype a library may return, then
encodes each answer as v2 JSON, v2 binary tensors and gRPC and the v1 JSON, and
reads every tensor back by its declared shape.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctloop.models.flavors import LoadedModel
from ctloop.models.signature import ColumnSpec, Signature, TensorSpec
from ctloop.serving.inputs import Inputs
from ctloop.serving.protocols.v1 import encode as encode_v1
from ctloop.serving.protocols.v2 import (
    DATATYPES,
    Infer,
    Tensor,
    encode_outputs,
    output_metadata,
    output_tensors,
)
from ctloop.serving.scoring.answer import Answer, answer_of, tensor_answer


def _model(task: str, classes: list[Any] | None, tensors: bool = False) -> LoadedModel:
    signature = Signature(
        inputs=() if tensors else (ColumnSpec("x", "float"),), task=task,
        classes=None if classes is None else tuple(classes),
        tensors=(TensorSpec("image", "FP32", (-1, 2, 2)),) if tensors else (),
        tensor_outputs=(TensorSpec("logits", "FP32", (-1, 3)),) if tensors else (),
    )
    return LoadedModel(flavor="python", task=task,  # type: ignore[arg-type]  # bad ones too
                       signature=signature,
                       manifest={"sha256": "0" * 64, "metadata": {}}, model=None)


def _layouts(array: np.ndarray, layout: str) -> np.ndarray:
    """The same values as a library might hand them over."""
    if layout == "strided":  # predict_proba(...)[:, 1] style: a view with a stride
        wide = np.repeat(array[..., None], 2, axis=-1)
        return wide[..., 1]
    if layout == "fortran":
        return np.asfortranarray(array)
    if layout == "float32":
        return array.astype(np.float32)
    if layout == "reversed":
        return array[::-1][::-1]
    return array


def _read_v2(body: bytes, header_length: int | None) -> dict[str, np.ndarray]:
    """Every output read back by its own shape, as a client does (raises on a mismatch)."""
    header = body if header_length is None else body[:header_length]
    tail = b"" if header_length is None else body[header_length:]
    out, offset = {}, 0
    for tensor in json.loads(header)["outputs"]:
        shape, datatype = tensor["shape"], tensor["datatype"]
        count = int(np.prod(shape))
        if "data" in tensor:
            data = tensor["data"]
            assert len(data) == count, tensor["name"]
            array = np.asarray(data, dtype=object if datatype == "BYTES" else DATATYPES[datatype])
        else:
            size = tensor["parameters"]["binary_data_size"]
            raw = tail[offset:offset + size]
            offset += size
            if datatype == "BYTES":
                values, pos = [], 0
                while pos < len(raw):
                    length = int.from_bytes(raw[pos:pos + 4], "little")
                    values.append(raw[pos + 4:pos + 4 + length].decode())
                    pos += 4 + length
                assert len(values) == count, tensor["name"]
                array = np.asarray(values, dtype=object)
            else:
                assert size == count * DATATYPES[datatype].itemsize, tensor["name"]
                array = np.frombuffer(raw, dtype=DATATYPES[datatype])
        out[tensor["name"]] = array.reshape(shape)
    assert offset == len(tail)
    return out


classes_st = st.one_of(
    st.lists(st.integers(-5, 50), min_size=2, max_size=6, unique=True),
    st.lists(st.text(min_size=1, max_size=6), min_size=2, max_size=6, unique=True),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    task=st.sampled_from(["binary", "multiclass", "regression", "classification"]),
    n=st.integers(1, 40),
    classes=st.one_of(st.none(), classes_st),
    layout=st.sampled_from(["plain", "strided", "fortran", "float32", "reversed"]),
    binary=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_an_answer_whose_shape_does_not_match_its_data_cannot_be_produced(
    task: str, n: int, classes: list[Any] | None, layout: str, binary: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    if task == "multiclass":
        k = len(classes) if classes else 3
        raw = rng.dirichlet(np.ones(k), size=n)
    else:
        raw = rng.random(n)
        if task != "regression" and classes is not None:
            classes = classes[:2]
    model = _model(task, classes)
    answer = answer_of(model, _layouts(raw, layout))
    tensors = output_tensors(answer)
    meta = {m["name"]: m for m in output_metadata(model)}
    assert [t.name for t in tensors] == list(meta)
    for tensor in tensors:
        assert tensor.shape == list(tensor.data.shape)
        assert tensor.shape[0] == n
        assert len(tensor.shape) == len(meta[tensor.name]["shape"])
        assert all(m in (-1, s) for m, s in zip(meta[tensor.name]["shape"], tensor.shape,
                                                 strict=True))
        assert tensor.datatype == meta[tensor.name]["datatype"]
    names = frozenset(t.name for t in tensors) if binary else frozenset()
    body, header_length = encode_outputs(Infer(_inputs(n), None, None, names, False), tensors,
                                         {"model_name": "m"})
    read = _read_v2(body, header_length)
    for tensor in tensors:
        if tensor.datatype == "BYTES":
            assert read[tensor.name].tolist() == tensor.data.tolist()
        else:
            np.testing.assert_array_equal(read[tensor.name], tensor.data)
    if task == "regression":
        np.testing.assert_allclose(read["prediction"], raw)
    else:
        probabilities = read["probabilities"]
        assert probabilities.shape == (n, len(answer.classes or ()))
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
        assert read["label"].shape == (n,)
    # v1: one value (or one list of k) per row, whatever the layout came in
    v1 = orjson.loads(orjson.dumps(encode_v1("m", _inputs(n), _scored(answer, n)),
                                   option=orjson.OPT_SERIALIZE_NUMPY))
    assert len(v1["predictions"]) == n
    if "probabilities" in v1:
        assert [len(p) for p in v1["probabilities"]] == [len(answer.classes or ())] * n


def _inputs(n: int) -> Inputs:
    return Inputs({"x": np.zeros(n)}, n, [str(i) for i in range(n)])


class _Scored:
    """What the v1 encoder reads of a scored request."""

    def __init__(self, answer: Answer, n: int) -> None:
        self.answer = answer
        self.n = n

    def versions(self) -> list[int]:
        return [1] * self.n

    def routes(self) -> list[str]:
        return ["primary"] * self.n

    def missing_by_row(self) -> None:
        return None


def _scored(answer: Answer, n: int) -> Any:
    return _Scored(answer, n)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int64, np.int32,
                                   np.uint8, np.bool_])
@pytest.mark.parametrize("layout", ["plain", "strided", "fortran"])
def test_scores_of_any_layout_and_dtype_encode(dtype: Any, layout: str) -> None:
    """The scikit-learn path answered 500 for 2+ rows (a strided [:, 1] slice); any layout
    and any numeric dtype a predictor returns now encodes, in v1 and v2."""
    values = (np.arange(12).reshape(6, 2) % 2).astype(dtype)
    given = values[:, 1] if layout == "strided" else values.T.copy(order="F")[1]
    assert given.shape == (6,)
    for task in ("binary", "regression"):
        answer = answer_of(_model(task, None), given)
        assert answer.scores.flags.c_contiguous and answer.scores.dtype == np.float64
        body = orjson.dumps(encode_v1("m", _inputs(6), _scored(answer, 6)),
                            option=orjson.OPT_SERIALIZE_NUMPY)
        assert orjson.loads(body)["predictions"] == given.astype(float).tolist()
        out, _ = encode_outputs(Infer(_inputs(6), None, None, frozenset(), False),
                                output_tensors(answer), {})
        read = _read_v2(out, None)
        assert read["prediction"].tolist() == given.astype(float).tolist()


def test_tensor_answers_keep_their_dtype_and_shape() -> None:
    logits = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(4, 3))
    answer = tensor_answer({"logits": logits}, 4)
    [tensor] = output_tensors(answer)
    assert (tensor.name, tensor.datatype, tensor.shape) == ("logits", "FP32", [4, 3])
    for binary in (False, True):
        names = frozenset({"logits"}) if binary else frozenset()
        body, length = encode_outputs(Infer(_inputs(4), None, None, names, False), [tensor], {})
        np.testing.assert_array_equal(_read_v2(body, length)["logits"], logits)
    with pytest.raises(ValueError, match="not 5 rows first"):
        tensor_answer({"logits": logits}, 5)
    assert output_metadata(_model("regression", None, tensors=True)) == [
        {"name": "logits", "datatype": "FP32", "shape": [-1, 3]}]


def test_a_tensor_takes_its_shape_from_its_data() -> None:
    tensor = Tensor("label", "BYTES", np.array(["a", "b", "c"], dtype=object))
    assert tensor.shape == [3] and tensor.raw() == b"".join(
        len(v).to_bytes(4, "little") + v for v in (b"a", b"b", b"c"))
    with pytest.raises(ValueError, match="unknown datatype"):
        Tensor("x", "FP128", np.zeros(2))
