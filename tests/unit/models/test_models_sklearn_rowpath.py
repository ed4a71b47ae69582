"""scikit-learn on the serving row path: ``flavors.lean_call`` answers the same bits.

The row path calls a Pipeline's steps itself and skips scikit-learn's NaN/infinity
scan (``assume_finite``) after checking the matrix and every step's output here. Each
estimator below is compared with its own ``predict_proba``/``predict`` on 1, 2 and 100
rows of real flights columns, with equality, not a tolerance; rows holding NaN, and a
step that overflows to infinity, get scikit-learn's own answer or error.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures, StandardScaler

from ctloop.core.errors import UserInputError
from ctloop.models import Signature
from ctloop.models.flavors import SklearnFlavor, lean_call, numpy_estimator

NUMERIC = ["month", "hour", "distance", "dep_delay"]
ROWS = (1, 2, 100)


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    from ctloop.examples.flights.data import flights

    frame = flights([1]).head(3000).reset_index(drop=True)
    frame["arrival"] = np.asarray(["early", "on time", "late"], dtype=object)[
        np.digitize(frame["arr_delay"].to_numpy(dtype=float), [0.0, 30.0])]
    return frame


def _fits() -> dict[str, Callable[[pd.DataFrame, pd.Series], Any]]:
    return {
        "scaled logistic": lambda x, y: make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y),
        "sparse one-hot, passthrough": lambda x, y: Pipeline([
            ("hours", OneHotEncoder(handle_unknown="ignore")), ("skip", "passthrough"),
            ("scale", StandardScaler(with_mean=False)),
            ("model", LogisticRegression(max_iter=500))]).fit(x, y),
        "polynomial ridge": lambda x, y: make_pipeline(
            PolynomialFeatures(2), StandardScaler(), Ridge()).fit(x, y.cat.codes),
        "random forest": lambda x, y: RandomForestRegressor(
            n_estimators=5, random_state=0, n_jobs=1).fit(x, y.cat.codes),
        "logistic": lambda x, y: LogisticRegression(max_iter=500).fit(x, y),
    }


def _method(model: Any) -> str:
    return "predict_proba" if hasattr(model, "predict_proba") else "predict"


@pytest.mark.parametrize("kind", list(_fits()))
def test_lean_call_answers_the_same_bits(data: pd.DataFrame, kind: str) -> None:
    x = data[NUMERIC].astype("float64")
    model = _fits()[kind](x, data["arrival"].astype("category"))
    estimator = numpy_estimator(model, Signature.from_frame(x, NUMERIC))
    assert estimator is not None, kind
    method = _method(estimator)
    lean = lean_call(estimator, method)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning per call (feature names, finiteness)
        for n in ROWS:
            matrix = np.stack([x[c].to_numpy()[:n] for c in NUMERIC]).T
            np.testing.assert_array_equal(lean(matrix), getattr(estimator, method)(matrix))
            np.testing.assert_array_equal(lean(matrix), getattr(model, method)(x.head(n)))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_nan_and_infinity_get_scikit_learns_own_answer_or_error(data: pd.DataFrame) -> None:
    x = data[NUMERIC].to_numpy(dtype="float64")  # fitted without feature names
    y = data["arrival"].to_numpy()
    gaps = x[:3].copy()
    gaps[1, 2] = np.nan
    hist = HistGradientBoostingClassifier(max_iter=5).fit(x, y)  # takes NaN natively
    np.testing.assert_array_equal(lean_call(hist, "predict_proba")(gaps),
                                  hist.predict_proba(gaps))
    logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        lean_call(logistic, "predict_proba")(gaps)
    # finite rows whose squares overflow: the polynomial step's output holds infinity
    poly = make_pipeline(PolynomialFeatures(2), LogisticRegression(max_iter=50)).fit(
        x[:200] / 1000, y[:200])
    huge = np.full((2, len(NUMERIC)), 1e200)
    with pytest.raises(ValueError, match="infinity") as plain:
        poly.predict_proba(huge)
    with pytest.raises(ValueError, match="infinity") as lean:
        lean_call(poly, "predict_proba")(huge)
    assert str(lean.value) == str(plain.value)


def test_a_refused_nan_is_one_line_naming_the_column(data: pd.DataFrame) -> None:
    x = data[NUMERIC].astype("float64")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
        x, data["arrival"])
    signature = Signature.from_frame(x, NUMERIC, nullable=["distance"])
    scorer = SklearnFlavor().columns_predictor(model, signature, "multiclass")
    assert scorer is not None
    columns = {c: x[c].to_numpy()[:2].copy() for c in NUMERIC}
    columns["distance"][0] = np.nan
    for score in (scorer, lambda c: SklearnFlavor().predict(model, pd.DataFrame(c),
                                                            "multiclass")):
        with pytest.raises(UserInputError) as refused:
            score(columns)
        message = str(refused.value)
        assert "column(s) ['distance'] hold null or NaN (in 1 of 2 row(s))" in message
        assert "\n" not in message and "imputer" in message
