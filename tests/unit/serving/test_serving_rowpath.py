"""The row path without pandas (``serving.scoring.fastpath``) for scikit-learn and ONNX.

Each model is fitted on generated data, saved and loaded as the server loads it; the
scorer the server builds must answer exactly (bit for bit) what ``LoadedModel.predict``
answers on the frame, for 1, 2 and 100 rows, and take the NumPy path only where it
is safe: estimators selecting columns by name, frame outputs, string columns and
plain Python predictors keep the frame path, and so do values only the frame path
converts (nulls in a text column, NaN for an integer input).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ctloop.core.errors import UserInputError
from ctloop.models import Signature, load_model, save_model
from ctloop.models.flavors import LoadedModel
from ctloop.serving.scoring.fastpath import predictor_for

NUMERIC = ["x1", "x2", "x3"]
ROWS = (1, 2, 100)


def _data(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.integers(0, 10, size=n),
                          "x3": rng.normal(size=n)})
    frame["shop"] = rng.choice(["north", "south", "east"], size=n).astype(object)
    score = frame["x1"] + 0.2 * frame["x2"] - frame["x3"]
    frame["label"] = np.asarray(["ash", "birch", "cedar", "dogwood"], dtype=object)[
        pd.qcut(score, 4, labels=False)]
    frame["value"] = score * 3.0
    return frame


TRAIN = _data(400, seed=0)
TEST = _data(100, seed=1)


def _columns(frame: pd.DataFrame, names: list[str]) -> dict[str, np.ndarray]:
    """The typed columns the server's signature check hands the scorer."""
    return {c: frame[c].to_numpy(dtype=object if c == "shop" else None) for c in names}


def _saved(model: Any, tmp_path: Path, features: list[str], **kwargs: Any) -> LoadedModel:
    signature = Signature.from_frame(TRAIN, features)
    save_model(model, tmp_path / "m", signature=signature, **kwargs)
    return load_model(tmp_path / "m")


def _assert_same_answers(loaded: LoadedModel, features: list[str], fast: bool) -> None:
    predictor = predictor_for(loaded)
    assert predictor.fast is fast
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "X does not have valid feature names"
        for n in ROWS:
            got = predictor.predict(_columns(TEST.head(n), features))
            np.testing.assert_array_equal(got, loaded.predict(TEST.head(n)), err_msg=str(n))


ESTIMATORS: dict[str, Callable[[], Any]] = {
    "logistic": lambda: LogisticRegression(max_iter=500),
    "pipeline": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
    "forest": lambda: RandomForestClassifier(n_estimators=5, random_state=0),
    "calibrated": lambda: CalibratedClassifierCV(make_pipeline(StandardScaler(),
                                                               LogisticRegression()), cv=2),
}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_numpy_estimators_score_arrays_exactly_as_frames(tmp_path: Path, name: str) -> None:
    model = ESTIMATORS[name]().fit(TRAIN[NUMERIC], TRAIN["label"])
    _assert_same_answers(_saved(model, tmp_path, NUMERIC), NUMERIC, fast=True)
    # the served copy drops the names; the user's fitted object keeps them
    named = model.steps[0][1] if hasattr(model, "steps") else model
    if name != "calibrated":
        assert list(named.feature_names_in_) == NUMERIC


def test_a_regressor_scores_arrays_exactly_as_frames(tmp_path: Path) -> None:
    model = Ridge().fit(TRAIN[NUMERIC], TRAIN["value"])
    _assert_same_answers(_saved(model, tmp_path, NUMERIC, task="regression"), NUMERIC,
                         fast=True)


def test_models_that_need_the_frame_keep_it(tmp_path: Path) -> None:
    by_name = make_pipeline(
        ColumnTransformer([("scaled", StandardScaler(), ["x1", "x3"])],
                          remainder="passthrough"),
        LogisticRegression(max_iter=500),
    ).fit(TRAIN[NUMERIC], TRAIN["label"])
    _assert_same_answers(_saved(by_name, tmp_path / "a", NUMERIC), NUMERIC, fast=False)

    frames_out = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).set_output(
        transform="pandas").fit(TRAIN[NUMERIC], TRAIN["label"])
    _assert_same_answers(_saved(frames_out, tmp_path / "b", NUMERIC), NUMERIC, fast=False)

    features = [*NUMERIC, "shop"]
    strings = make_pipeline(
        ColumnTransformer([("shop", OneHotEncoder(handle_unknown="ignore"), ["shop"])],
                          remainder="passthrough"),
        LogisticRegression(max_iter=500),
    ).fit(TRAIN[features], TRAIN["label"])
    _assert_same_answers(_saved(strings, tmp_path / "c", features), features, fast=False)

    # fitted on the columns in another order: the frame path's own error, not a silent mix-up
    reordered = LogisticRegression(max_iter=500).fit(TRAIN[["x3", "x1", "x2"]], TRAIN["label"])
    loaded = _saved(reordered, tmp_path / "d", NUMERIC)
    predictor = predictor_for(loaded)
    assert predictor.fast is False
    with pytest.raises(ValueError, match="same order as they were in fit"):
        predictor.predict(_columns(TEST.head(2), NUMERIC))


def _onnx_matrix(tmp_path: Path) -> LoadedModel:
    model = LogisticRegression(max_iter=500).fit(TRAIN[NUMERIC].astype(np.float32),
                                                 TRAIN["label"])
    graph = to_onnx(model, TRAIN[NUMERIC].to_numpy(np.float32)[:1],
                    options={id(model): {"zipmap": False}}, target_opset=17)
    return _saved(graph, tmp_path, NUMERIC, flavor="onnx")


def _onnx_columns(tmp_path: Path) -> LoadedModel:
    features = [*NUMERIC, "shop"]
    pipe = make_pipeline(
        ColumnTransformer([("scaled", StandardScaler(), ["x1", "x3"]),
                           ("shop", OneHotEncoder(handle_unknown="ignore"), ["shop"])],
                          remainder="passthrough"),
        LogisticRegression(max_iter=500),
    ).fit(TRAIN[features], TRAIN["label"])
    inputs = [("x1", FloatTensorType([None, 1])), ("x2", Int64TensorType([None, 1])),
              ("x3", FloatTensorType([None, 1])), ("shop", StringTensorType([None, 1]))]
    graph = to_onnx(pipe, initial_types=inputs, target_opset=17, options={"zipmap": False})
    save_model(graph, tmp_path / "m", signature=Signature(inputs=()), flavor="onnx")
    return load_model(tmp_path / "m")


def test_onnx_graphs_take_arrays_straight_from_the_columns(tmp_path: Path) -> None:
    _assert_same_answers(_onnx_matrix(tmp_path / "matrix"), NUMERIC, fast=True)
    loaded = _onnx_columns(tmp_path / "columns")
    assert loaded.signature.columns == [*NUMERIC, "shop"]
    _assert_same_answers(loaded, loaded.signature.columns, fast=True)


def test_values_only_the_frame_path_converts_go_through_it(tmp_path: Path) -> None:
    loaded = _onnx_columns(tmp_path)
    predictor = predictor_for(loaded)
    columns = _columns(TEST.head(3), loaded.signature.columns)
    columns["shop"] = np.array(["north", None, "east"], dtype=object)
    np.testing.assert_array_equal(predictor.predict(columns),
                                  loaded.predict(pd.DataFrame(columns)))
    columns = _columns(TEST.head(2), loaded.signature.columns)
    columns["x2"] = np.array([1.0, np.nan])  # an integer input with a null (allow_nulls)
    for scorer in (predictor.predict, lambda c: loaded.predict(pd.DataFrame(c))):
        with pytest.raises(UserInputError, match=r"'x2' is INT64 .* cannot hold a missing"):
            scorer(columns)  # refused alike, never scored as INT64_MIN
