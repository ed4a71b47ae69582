"""The prediction contract of every flavor on real fitted models.

Binary answers (n,) P(classes[1]), regression (n,) values, multiclass (n, k)
probabilities in ``signature.classes`` order; labels come from those classes.
Shapes users bring: 1, 2 and 100 rows; 2, 3 and 4 classes; string and integer labels.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.svm import SVC

from ctloop.core.errors import IntegrityError, UserInputError
from ctloop.models import Signature, load_model, save_model
from ctloop.models.flavors import MANIFEST

ROWS = (1, 2, 100)
FEATURES = ["x1", "x2", "x3", "shop"]
NUMERIC = ["x1", "x2", "x3"]


def make_data(classes: list[Any], n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Features whose sum decides the class (by quantile), plus a string feature."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=NUMERIC)
    frame["shop"] = rng.choice(["north", "south", "east"], size=n)
    score = frame["x1"] + 0.5 * frame["x2"] - frame["x3"] + (frame["shop"] == "east") * 0.5
    bins = pd.qcut(score, len(classes), labels=False).to_numpy()
    frame["label"] = np.asarray(classes, dtype=object)[bins]
    if all(isinstance(c, int) for c in classes):
        frame["label"] = frame["label"].astype(np.int64)
    frame["value"] = 3.0 * score + rng.normal(scale=0.1, size=n)
    return frame


def signature_of(frame: pd.DataFrame, columns: list[str] = FEATURES) -> Signature:
    return Signature.from_frame(frame, columns, {"name": "label"})


def sklearn_pipeline(learner: Any) -> Any:
    encode = ColumnTransformer(
        [("shop", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["shop"])],
        remainder="passthrough",
    )
    return make_pipeline(encode, learner)


def lightgbm_fit(frame: pd.DataFrame, y: Any, *, regression: bool = False) -> Any:
    from ctloop.models.flavors import as_categories

    cls = lgb.LGBMRegressor if regression else lgb.LGBMClassifier
    params: dict[str, Any] = {"n_estimators": 20, "verbose": -1, "n_jobs": 1,
                              "min_child_samples": 5}
    return cls(**params).fit(as_categories(frame[FEATURES]), y)


def xgboost_fit(frame: pd.DataFrame, y: Any, *, regression: bool = False) -> Any:
    from ctloop.models.flavors import as_categories

    cls = xgb.XGBRegressor if regression else xgb.XGBClassifier
    params = {"n_estimators": 20, "n_jobs": 1, "tree_method": "hist", "enable_categorical": True}
    return cls(**params).fit(as_categories(frame[FEATURES]), y)


class ProbaPredictor:
    """A plain Python classifier with predict_proba: softmax of fixed per-class weights."""

    def __init__(self, classes: list[Any], weights: np.ndarray) -> None:
        self.classes_ = np.asarray(classes, dtype=object)
        self.weights = weights

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(frame), axis=1)]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        logits = frame[NUMERIC].to_numpy(dtype=float) @ self.weights
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return np.asarray(e / e.sum(axis=1, keepdims=True))


def _fitted(kind: str, classes: list[Any]) -> tuple[Any, pd.DataFrame, list[Any] | None]:
    """(model, data, classes to pass to save_model or None) for one flavor."""
    data = make_data(classes)
    y = data["label"]
    if kind == "sklearn":
        return sklearn_pipeline(LogisticRegression(max_iter=500)).fit(data[FEATURES], y), data, None
    if kind == "sklearn_hgb":
        model = sklearn_pipeline(HistGradientBoostingClassifier(max_iter=20, random_state=0))
        return model.fit(data[FEATURES], y), data, None
    if kind == "lightgbm":
        return lightgbm_fit(data, y), data, None
    if kind == "lightgbm_booster":  # a raw booster on class indices: classes given by name
        index = {c: i for i, c in enumerate(classes)}
        return lightgbm_fit(data, y.map(index)).booster_, data, classes
    if kind == "xgboost":  # XGBoost wants 0..k-1: the names are given
        index = {c: i for i, c in enumerate(classes)}
        return xgboost_fit(data, y.map(index).astype(int)), data, classes
    weights = np.random.default_rng(1).normal(size=(3, len(classes)))
    return ProbaPredictor(classes, weights), data, None


KINDS = ["sklearn", "sklearn_hgb", "lightgbm", "lightgbm_booster", "xgboost", "python"]
CLASS_SETS = {
    "3 strings": ["cat", "dog", "eel"],
    "4 strings": ["wd", "ac", "zz", "bb"],  # not sorted: the model's own order is kept
    "4 integers": [3, 7, 11, 20],
}


@pytest.mark.parametrize("classes", list(CLASS_SETS.values()), ids=list(CLASS_SETS))
@pytest.mark.parametrize("kind", KINDS)
def test_multiclass_answers_one_probability_column_per_class(
    kind: str, classes: list[Any], tmp_path: Path
) -> None:
    model, data, given = _fitted(kind, classes)
    manifest = save_model(
        model, tmp_path / "m", signature=signature_of(data), task="multiclass", classes=given
    )
    loaded = load_model(tmp_path / "m")
    recorded = list(loaded.signature.classes or ())
    own = getattr(model, "classes_", None)
    expected_order = given or [c.item() if hasattr(c, "item") else c
                               for c in (() if own is None else own)]
    assert recorded == expected_order and sorted(map(str, recorded)) == sorted(map(str, classes))
    assert manifest["task"] == "multiclass" and manifest["signature"]["classes"] == recorded
    assert loaded.task == "multiclass" and loaded.signature.task == "multiclass"
    for n in ROWS:
        rows = data.iloc[:n]
        p = loaded.predict(rows)
        assert p.shape == (n, len(classes)) and p.flags["C_CONTIGUOUS"]
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
        labels = loaded.predict_labels(rows)
        assert labels.shape == (n,)
        assert list(labels) == [recorded[i] for i in np.argmax(p, axis=1)]
    # The probabilities are the library's own, in the recorded class order.
    rows = data.iloc[:100]
    if hasattr(model, "predict_proba") and kind != "xgboost":
        frame = rows[FEATURES] if kind.startswith("sklearn") or kind == "python" else None
        if frame is None:
            from ctloop.models.flavors import as_categories

            frame = as_categories(rows[FEATURES])
        np.testing.assert_allclose(loaded.predict(rows), model.predict_proba(frame), rtol=1e-6)
    if kind == "python":  # its own labels are its own argmax
        assert list(loaded.predict_labels(rows)) == list(model.predict(rows))
    else:  # the labels are right most of the time (the classes are learnable)
        accuracy = float(np.mean(loaded.predict_labels(data) == data["label"].to_numpy()))
        assert accuracy > 0.6
    if isinstance(classes[0], int):
        assert loaded.predict_labels(rows).dtype == np.int64


@pytest.mark.parametrize("kind", KINDS)
def test_binary_answers_the_positive_class_probability(kind: str, tmp_path: Path) -> None:
    model, data, given = _fitted(kind, ["no", "yes"])
    save_model(model, tmp_path / "m", signature=signature_of(data), classes=given)
    loaded = load_model(tmp_path / "m")
    assert loaded.task == "binary"
    assert list(loaded.signature.classes or ()) == ["no", "yes"]
    for n in ROWS:
        p = loaded.predict(data.iloc[:n])
        assert p.shape == (n,) and p.flags["C_CONTIGUOUS"] and ((p >= 0) & (p <= 1)).all()
    p = loaded.predict(data)
    labels = loaded.predict_labels(data)
    assert list(labels) == ["yes" if v >= 0.5 else "no" for v in p]
    if kind != "python":  # its weights are random
        assert float(np.mean(labels == data["label"].to_numpy())) > 0.8


def test_binary_labels_follow_the_decision_threshold(tmp_path: Path) -> None:
    model, data, _ = _fitted("sklearn", [0, 1])
    save_model(
        model, tmp_path / "m", signature=signature_of(data),
        metadata={"decision_threshold": 0.9},
    )
    loaded = load_model(tmp_path / "m")
    p = loaded.predict(data)
    np.testing.assert_array_equal(loaded.predict_labels(data), (p >= 0.9).astype(np.int64))
    assert loaded.predict_labels(data).dtype == np.int64


@pytest.mark.parametrize("kind", ["sklearn", "sklearn_forest", "lightgbm", "xgboost"])
def test_regression_answers_one_value_per_row(kind: str, tmp_path: Path) -> None:
    data = make_data([0, 1])
    y = data["value"]
    if kind == "sklearn":
        model = sklearn_pipeline(LinearRegression()).fit(data[FEATURES], y)
    elif kind == "sklearn_forest":
        model = sklearn_pipeline(RandomForestRegressor(n_estimators=10, random_state=0))
        model.fit(data[FEATURES], y)
    elif kind == "lightgbm":
        model = lightgbm_fit(data, y, regression=True)
    else:
        model = xgboost_fit(data, y, regression=True)
    manifest = save_model(model, tmp_path / "m", signature=signature_of(data))  # task inferred
    assert manifest["task"] == "regression" and "classes" not in manifest["signature"]
    loaded = load_model(tmp_path / "m")
    assert loaded.task == "regression" and loaded.classes is None
    for n in ROWS:
        out = loaded.predict(data.iloc[:n])
        assert out.shape == (n,) and out.dtype == np.float64
    assert float(np.corrcoef(loaded.predict(data), y)[0, 1]) > 0.9
    with pytest.raises(UserInputError, match="regression model answers values"):
        loaded.predict_labels(data.iloc[:2])


def test_boosters_say_their_task_without_being_told(tmp_path: Path) -> None:
    data = make_data(["a", "b", "c"])
    index = data["label"].map({"a": 0, "b": 1, "c": 2})
    cases = {
        "lgb multiclass": (lightgbm_fit(data, index).booster_, "multiclass", [0, 1, 2]),
        "lgb binary": (lightgbm_fit(data, (index == 2).astype(int)).booster_, "binary", [0, 1]),
        "lgb regression": (lightgbm_fit(data, data["value"], regression=True).booster_,
                           "regression", None),
        "xgb multiclass": (xgboost_fit(data, index).get_booster(), "multiclass", [0, 1, 2]),
        "xgb regression": (xgboost_fit(data, data["value"], regression=True).get_booster(),
                           "regression", None),
    }
    for name, (model, task, classes) in cases.items():
        manifest = save_model(model, tmp_path / name, signature=signature_of(data))
        assert manifest["task"] == task, name
        assert manifest["signature"].get("classes") == classes, name


def test_legacy_classification_reads_as_binary(tmp_path: Path) -> None:
    model, data, _ = _fitted("lightgbm", [0, 1])
    save_model(model, tmp_path / "m", signature=signature_of(data), task="classification")
    path = tmp_path / "m" / MANIFEST
    manifest = json.loads(path.read_text())
    assert manifest["task"] == "binary"
    # A manifest written before tasks had three names (no classes in the signature).
    manifest["task"] = "classification"
    manifest["signature"].pop("classes")
    manifest["signature"].pop("task")
    path.write_text(json.dumps(manifest))
    loaded = load_model(tmp_path / "m")
    assert loaded.task == "binary" and loaded.signature.task == "binary"
    assert loaded.classes == (0, 1)
    assert loaded.predict(data.iloc[:2]).shape == (2,)
    assert set(loaded.predict_labels(data)) <= {0, 1}


def test_bad_task_and_classes_are_one_clear_line(tmp_path: Path) -> None:
    model, data, _ = _fitted("sklearn", ["a", "b", "c"])
    sig = signature_of(data)
    with pytest.raises(UserInputError, match="task must be one of binary, multiclass, regression"):
        save_model(model, tmp_path / "a", signature=sig, task="ranking")
    with pytest.raises(UserInputError, match="binary model has exactly two classes; got 3"):
        save_model(model, tmp_path / "b", signature=sig, task="binary")
    with pytest.raises(UserInputError, match="do not match the model's own"):
        save_model(model, tmp_path / "c", signature=sig, task="multiclass", classes=["x", "y", "z"])
    with pytest.raises(UserInputError, match="regression model has no classes"):
        save_model(model, tmp_path / "d", signature=sig, task="regression", classes=["a", "b"])
    with pytest.raises(UserInputError, match="no predict_proba"):
        save_model(SVC().fit(data[NUMERIC], data["label"]), tmp_path / "e",
                   signature=signature_of(data, NUMERIC))
    booster = lightgbm_fit(data, data["label"].map({"a": 0, "b": 1, "c": 2})).booster_
    with pytest.raises(UserInputError, match="do not match the model's own"):
        save_model(booster, tmp_path / "f", signature=sig, classes=["a", "b"])


def test_a_model_answering_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    """A predictor saved as multiclass that answers one column is named, not served."""
    data = make_data(["a", "b", "c"])
    weights = np.random.default_rng(1).normal(size=(3, 4))
    model = ProbaPredictor(["a", "b", "c", "d"], weights)
    save_model(model, tmp_path / "m", signature=signature_of(data), task="multiclass",
               classes=None)
    loaded = load_model(tmp_path / "m")
    assert loaded.predict(data.iloc[:2]).shape == (2, 4)
    bad = ProbaPredictor(["a", "b", "c"], weights)  # 4 probability columns, 3 classes
    save_model(bad, tmp_path / "bad", signature=signature_of(data), task="multiclass")
    with pytest.raises(IntegrityError, match=r"answered shape \[2, 4\] for 2 row\(s\)"):
        load_model(tmp_path / "bad").predict(data.iloc[:2])


def test_a_loaded_model_saves_again_as_itself(tmp_path: Path) -> None:
    """A model read back (LightGBM's lazily built booster included) re-saves with its flavor,
    task and classes, and answers the same."""
    for kind in ("lightgbm_booster", "xgboost", "sklearn"):
        model, data, given = _fitted(kind, ["cat", "dog", "eel"])
        save_model(model, tmp_path / kind, signature=signature_of(data), classes=given)
        first = load_model(tmp_path / kind)
        manifest = save_model(first.model, tmp_path / f"{kind}-again", signature=first.signature)
        assert manifest["flavor"] == first.flavor and manifest["task"] == "multiclass"
        assert manifest["signature"]["classes"] == ["cat", "dog", "eel"]
        np.testing.assert_allclose(load_model(tmp_path / f"{kind}-again").predict(data),
                                   first.predict(data))
