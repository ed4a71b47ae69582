"""The ONNX flavor on graphs built in the test: an image model (onnx.helper) and skl2onnx models.

Answers are compared with a NumPy reference of the same graph (the image model) and
with scikit-learn's own predictions (the converted models); 1, 2 and 100 rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ctloop.core.errors import UserInputError
from ctloop.models import Signature, load_model, save_model
from ctloop.models.signature import ColumnSpec, TensorSpec

ROWS = (1, 2, 100)
NUMERIC = ["x1", "x2", "x3"]


# --- an image model: [N,3,32,32] -> conv 3x3 -> relu -> global average -> dense -> [N,10] ---


def image_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "conv_w": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
        "conv_b": rng.normal(size=4).astype(np.float32),
        "dense_w": rng.normal(size=(10, 4)).astype(np.float32),
        "dense_b": rng.normal(size=10).astype(np.float32),
    }


def image_model(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "dense_w", "dense_b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=[numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def image_reference(images: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    """The same network in NumPy (float64)."""
    padded = np.pad(images.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))
    conv = np.einsum("ncijkl,fckl->nfij", windows, w["conv_w"]) + w["conv_b"][:, None, None]
    pooled = np.maximum(conv, 0).mean(axis=(2, 3))
    return np.asarray(pooled @ w["dense_w"].T.astype(np.float64) + w["dense_b"])


def test_image_model_reads_its_specs_and_answers_tensors(tmp_path: Path) -> None:
    weights = image_weights()
    manifest = save_model(image_model(weights), tmp_path / "m", signature=Signature(inputs=()))
    assert manifest["flavor"] == "onnx" and manifest["task"] == "regression"
    assert manifest["signature"]["tensors"] == [
        {"name": "image", "datatype": "FP32", "shape": [-1, 3, 32, 32]}
    ]
    assert manifest["signature"]["tensor_outputs"] == [
        {"name": "logits", "datatype": "FP32", "shape": [-1, 10]}
    ]
    assert manifest["requirements"]["onnxruntime"].startswith("onnxruntime==")
    onnx.save(image_model(weights), tmp_path / "cnn.onnx")  # as torch.onnx.export writes it
    again = save_model(tmp_path / "cnn.onnx", tmp_path / "m2", signature=Signature(inputs=()),
                       flavor="onnx", task="multiclass", classes=list("abcdefghij"))
    assert again["sha256"] == manifest["sha256"]
    assert again["task"] == "multiclass" and again["signature"]["classes"] == list("abcdefghij")
    loaded = load_model(tmp_path / "m")
    assert loaded.signature.tensors == (TensorSpec("image", "FP32", (-1, 3, 32, 32)),)
    assert loaded.signature.columns == []
    rng = np.random.default_rng(1)
    for n in ROWS:
        images = rng.normal(size=(n, 3, 32, 32)).astype(np.float32)
        out = loaded.predict_tensors({"image": images})
        assert list(out) == ["logits"] and out["logits"].shape == (n, 10)
        assert out["logits"].dtype == np.float32
        np.testing.assert_allclose(out["logits"], image_reference(images, weights),
                                   rtol=1e-4, atol=1e-4)


def test_image_model_refuses_wrong_tensors_naming_the_spec(tmp_path: Path) -> None:
    save_model(image_model(image_weights()), tmp_path / "m", signature=Signature(inputs=()))
    loaded = load_model(tmp_path / "m")
    good = np.zeros((2, 3, 32, 32), dtype=np.float32)
    spec = r"image FP32 \[-1, 3, 32, 32\]"
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "rank": ({"image": np.zeros((2, 3, 32), np.float32)}, spec + r".*got shape \[2, 3, 32\]"),
        "size": ({"image": np.zeros((2, 3, 31, 32), np.float32)}, spec + ".*got shape"),
        "type": ({"image": good.astype(np.float64)}, spec + "; got datatype FP64"),
        "missing": ({}, r"missing \['image'\]; the model takes \['image FP32"),
        "unknown": ({"image": good, "extra": good}, r"unknown input\(s\) \['extra'\]"),
    }
    for name, (inputs, message) in cases.items():
        with pytest.raises(UserInputError, match=message):
            loaded.predict_tensors(inputs)
        assert name
    with pytest.raises(UserInputError, match="takes tensors"):
        loaded.predict(pd.DataFrame({"x": [1.0]}))


# --- tabular graphs converted by skl2onnx -----------------------------------------------------


def tabular(classes: list[Any], n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=NUMERIC)
    frame["shop"] = rng.choice(["north", "south", "east"], size=n)
    score = frame["x1"] - frame["x2"] + 0.5 * frame["x3"] + (frame["shop"] == "east")
    frame["label"] = np.asarray(classes, dtype=object)[pd.qcut(score, len(classes), labels=False)]
    frame["value"] = 2.0 * score
    return frame


@pytest.mark.parametrize("zipmap", [False, True])
@pytest.mark.parametrize("classes", [["no", "yes"], ["cat", "dog", "eel"], [4, 8, 15, 16]])
def test_converted_classifier_answers_its_probabilities(
    classes: list[Any], zipmap: bool, tmp_path: Path
) -> None:
    data = tabular(classes)
    y = data["label"].astype(np.int64) if isinstance(classes[0], int) else data["label"]
    clf = LogisticRegression(max_iter=500).fit(data[NUMERIC].to_numpy(np.float32), y)
    graph = to_onnx(clf, data[NUMERIC].to_numpy(np.float32)[:1], target_opset=17,
                    options={"zipmap": zipmap})
    manifest = save_model(graph, tmp_path / "m", signature=Signature.from_frame(data, NUMERIC))
    task = "binary" if len(classes) == 2 else "multiclass"
    assert manifest["task"] == task
    assert manifest["signature"]["classes"] == [c.item() if hasattr(c, "item") else c
                                                for c in clf.classes_]
    loaded = load_model(tmp_path / "m")
    assert loaded.signature.columns == NUMERIC
    assert loaded.signature.tensors == (TensorSpec("X", "FP32", (-1, 3)),)
    expected = clf.predict_proba(data[NUMERIC].to_numpy(np.float32))
    if task == "binary":
        expected = expected[:, 1]
    for n in ROWS:
        p = loaded.predict(data.iloc[:n])
        assert p.shape == expected[:n].shape and p.dtype == np.float64
        np.testing.assert_allclose(p, expected[:n], rtol=1e-4, atol=1e-5)
    agree = loaded.predict_labels(data) == clf.predict(data[NUMERIC].to_numpy(np.float32))
    assert float(np.mean(agree)) > 0.99
    out = loaded.predict_tensors({"X": data[NUMERIC].to_numpy(np.float32)[:2]})
    label = "output_label" if zipmap else "label"  # skl2onnx's names
    assert label in out and out[label].shape == (2,)


def test_converted_regressor_without_a_sample_gets_columns(tmp_path: Path) -> None:
    data = tabular([0, 1])
    model = LinearRegression().fit(data[NUMERIC], data["value"])
    graph = to_onnx(model, data[NUMERIC].to_numpy(np.float32)[:1], target_opset=17)
    manifest = save_model(graph, tmp_path / "m", signature=Signature(inputs=()))
    assert manifest["task"] == "regression"
    loaded = load_model(tmp_path / "m")
    assert loaded.signature.columns == ["x0", "x1", "x2"]
    renamed = data[NUMERIC].set_axis(["x0", "x1", "x2"], axis=1)
    for n in ROWS:
        np.testing.assert_allclose(loaded.predict(renamed.iloc[:n]),
                                   model.predict(data[NUMERIC].iloc[:n]), rtol=1e-4, atol=1e-4)


def test_one_input_per_column_takes_strings(tmp_path: Path) -> None:
    """A pipeline converted with one named input per column: the columns are the inputs."""
    data = tabular(["a", "b", "c"])
    pipe = make_pipeline(
        ColumnTransformer([
            ("shop", OneHotEncoder(handle_unknown="ignore"), ["shop"]),
            ("numbers", StandardScaler(), NUMERIC),
        ]),
        LogisticRegression(max_iter=500),
    ).fit(data[[*NUMERIC, "shop"]], data["label"])
    inputs = [(c, FloatTensorType([None, 1])) for c in NUMERIC]
    inputs.append(("shop", StringTensorType([None, 1])))
    graph = to_onnx(pipe, initial_types=inputs, target_opset=17, options={"zipmap": False})
    save_model(graph, tmp_path / "m", signature=Signature(inputs=()))
    loaded = load_model(tmp_path / "m")
    assert loaded.signature.inputs == (
        *(ColumnSpec(c, "float") for c in NUMERIC), ColumnSpec("shop", "string", False),
    )
    assert loaded.task == "multiclass" and loaded.signature.classes == ("a", "b", "c")
    frame = data[[*NUMERIC, "shop"]].astype({c: np.float32 for c in NUMERIC})
    for n in ROWS:
        np.testing.assert_allclose(
            loaded.predict(frame.iloc[:n]), pipe.predict_proba(frame.iloc[:n]),
            rtol=1e-4, atol=1e-5,
        )


def test_bad_onnx_input_is_one_clear_line(tmp_path: Path) -> None:
    data = tabular([0, 1])
    graph = to_onnx(LinearRegression().fit(data[NUMERIC], data["value"]),
                    data[NUMERIC].to_numpy(np.float32)[:1], target_opset=17)
    with pytest.raises(UserInputError, match=r"takes 3 features; the sample has 2 columns"):
        save_model(graph, tmp_path / "a", signature=Signature.from_frame(data, ["x1", "x2"]))
    with pytest.raises(UserInputError, match=r"takes numbers; the sample's column\(s\) \['shop'\]"):
        save_model(graph, tmp_path / "b",
                   signature=Signature.from_frame(data, ["x1", "x2", "shop"]))
    with pytest.raises(UserInputError, match="No ONNX file at"):
        save_model(tmp_path / "nope.onnx", tmp_path / "c", signature=Signature(inputs=()),
                   flavor="onnx")
    save_model(graph, tmp_path / "d", signature=Signature(inputs=()))
    out = load_model(tmp_path / "d").predict_tensors({"X": np.zeros((1, 3), np.float32)})
    assert out["variable"].shape == (1, 1)  # a tabular graph answers tensors too
    linear = LinearRegression().fit(data[NUMERIC], data["value"])
    save_model(linear, tmp_path / "e", signature=Signature.from_frame(data, NUMERIC))
    with pytest.raises(UserInputError, match="takes table columns"):
        load_model(tmp_path / "e").predict_tensors({"X": np.zeros((1, 3), np.float32)})


def test_a_missing_value_for_an_integer_or_boolean_input_is_refused(tmp_path: Path) -> None:
    """NumPy casts NaN to INT64_MIN (INT32_MIN) and None to False: such rows are refused with
    one line naming the input and what to do, on the frame path and the serving row path;
    NaN in the float input reaches the graph, and the NaN it answers is refused too."""
    from ctloop.serving.scoring.fastpath import predictor_for

    nodes = [helper.make_node("Cast", ["count"], ["count_f"], to=TensorProto.DOUBLE),
             helper.make_node("Cast", ["flag"], ["flag_f"], to=TensorProto.DOUBLE),
             helper.make_node("Sum", ["count_f", "flag_f", "x"], ["value"])]
    graph = helper.make_graph(nodes, "sum", [
        helper.make_tensor_value_info("count", TensorProto.INT32, ["N", 1]),
        helper.make_tensor_value_info("flag", TensorProto.BOOL, ["N", 1]),
        helper.make_tensor_value_info("x", TensorProto.DOUBLE, ["N", 1]),
    ], [helper.make_tensor_value_info("value", TensorProto.DOUBLE, ["N", 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    nullable = Signature(inputs=(ColumnSpec("count", "integer"), ColumnSpec("flag", "boolean"),
                                 ColumnSpec("x", "float")))
    save_model(model, tmp_path / "m", signature=nullable, flavor="onnx")
    loaded = load_model(tmp_path / "m")
    assert loaded.task == "regression" and loaded.signature.inputs == nullable.inputs
    fast = predictor_for(loaded)
    assert fast.fast
    good = {"count": np.array([1, 2]), "flag": np.array([True, False]),
            "x": np.array([0.5, 0.25])}
    for score in (fast.predict, lambda c: loaded.predict(pd.DataFrame(c))):
        np.testing.assert_array_equal(score(good), [2.5, 2.25])
        with pytest.raises(UserInputError, match=r"answered NaN for rows with a missing value "
                           r"\(null or NaN\) in column\(s\) \['x'\] \(in 1 of 2 row"):
            score({**good, "x": np.array([0.5, np.nan])})  # NaN through the graph
    gaps = {"count": ({**good, "count": np.array([1.0, np.nan])}, "INT32 [-1, 1]: an integer"),
            "flag": ({**good, "flag": np.array([True, None], dtype=object)},
                     "BOOL [-1, 1]: a boolean")}
    for name, (columns, words) in gaps.items():
        for score in (fast.predict, lambda c: loaded.predict(pd.DataFrame(c))):
            with pytest.raises(UserInputError) as refused:
                score(columns)
            message = str(refused.value)
            assert f"Column {name!r} has a missing value (null or NaN) in 1 of 2 row(s)" in (
                message) and words in message and "float input" in message, message
