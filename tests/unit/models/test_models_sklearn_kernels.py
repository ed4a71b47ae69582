"""``models.sklearn_kernels``: scikit-learn's arithmetic without its checks, the same bits.

Each chain is built from an estimator fitted on real flights columns and compared with
scikit-learn's own ``predict_proba``/``predict`` on 1, 2 and 100 rows, row-major and
column-major, with equality. Steps it does not know, subclasses and matrices it must not
take (NaN, integers, the wrong width, no rows) get scikit-learn's own answer or error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from ctloop.models import Signature
from ctloop.models.flavors import lean_call, numpy_estimator
from ctloop.models.sklearn_kernels import kernel_chain

NUMERIC = ["month", "hour", "distance", "dep_delay"]
ROWS = (1, 2, 100)


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    from ctloop.examples.flights.data import flights

    frame = flights([1]).head(3000).dropna(subset=NUMERIC).reset_index(drop=True)
    frame["arrival"] = np.asarray(["early", "on time", "late"], dtype=object)[
        np.digitize(frame["arr_delay"].to_numpy(dtype=float), [0.0, 30.0])]
    return frame


def _fits() -> dict[str, tuple[Callable[[pd.DataFrame, pd.Series, pd.Series], Any], str]]:

    return {
        "scaled logistic, 3 classes": (lambda x, y, d: make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y), "predict_proba"),
        "scaled logistic, binary": (lambda x, y, d: make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=500)).fit(x, d), "predict_proba"),
        "logistic, 3 classes": (lambda x, y, d: LogisticRegression(max_iter=500).fit(x, y),
                                "predict_proba"),
        "centred only, logistic": (lambda x, y, d: Pipeline([
            ("centre", StandardScaler(with_std=False)), ("skip", "passthrough"),
            ("model", LogisticRegression(max_iter=500))]).fit(x, y), "predict_proba"),
        "scaled only, logistic": (lambda x, y, d: make_pipeline(
            StandardScaler(with_mean=False), LogisticRegression(max_iter=500)).fit(x, d),
            "predict_proba"),
    }


def _split(model: Any) -> tuple[list[Any], Any]:
    if isinstance(model, Pipeline):
        steps = [s for _, s in model.steps[:-1] if s != "passthrough"]
        return steps, model.steps[-1][1]
    return [], model


@pytest.mark.parametrize("kind", list(_fits()))
def test_a_kernel_chain_answers_scikit_learns_bits(data: pd.DataFrame, kind: str) -> None:
    x = data[NUMERIC].astype("float64")
    fit, method = _fits()[kind]
    model = fit(x, data["arrival"].astype("category"), data["delayed"])
    estimator = numpy_estimator(model, Signature.from_frame(x, NUMERIC))
    assert estimator is not None
    steps, last = _split(estimator)
    assert kernel_chain(steps, last, method) is not None, kind
    lean = lean_call(estimator, method)
    for n in ROWS:
        block = x.head(n).to_numpy()
        for matrix in (np.ascontiguousarray(block), np.asfortranarray(block)):
            expected = getattr(estimator, method)(matrix)
            np.testing.assert_array_equal(lean(matrix), expected, err_msg=f"{kind} {n}")
        np.testing.assert_array_equal(lean(np.asfortranarray(block)),
                                      getattr(model, method)(x.head(n)))


def test_steps_it_does_not_know_keep_scikit_learns_call(data: pd.DataFrame) -> None:
    x = data[NUMERIC].to_numpy(dtype="float64")
    y = data["arrival"].to_numpy()

    class MyScaler(StandardScaler):
        pass

    for model in (make_pipeline(MinMaxScaler(), LogisticRegression(max_iter=500)),
                  make_pipeline(MyScaler(), LogisticRegression(max_iter=500))):
        model.fit(x, y)
        steps, last = _split(model)
        assert kernel_chain(steps, last, "predict_proba") is None
        np.testing.assert_array_equal(lean_call(model, "predict_proba")(x[:5]),
                                      model.predict_proba(x[:5]))
    for regressor in (make_pipeline(StandardScaler(), Ridge()), LinearRegression()):
        regressor.fit(x, data["arr_delay"])
        steps, last = _split(regressor)
        assert kernel_chain(steps, last, "predict") is None
        np.testing.assert_array_equal(lean_call(regressor, "predict")(x[:5]),
                                      regressor.predict(x[:5]))
    logistic = LogisticRegression(max_iter=500).fit(x, y)
    assert kernel_chain([], logistic, "predict") is None  # labels: scikit-learn's own
    np.testing.assert_array_equal(lean_call(logistic, "predict")(x[:5]), logistic.predict(x[:5]))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_matrices_a_chain_must_not_take_get_scikit_learns_answer_or_error(
        data: pd.DataFrame) -> None:
    x = data[NUMERIC].to_numpy(dtype="float64")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
        x, data["arrival"].to_numpy())
    lean = lean_call(model, "predict_proba")
    integers = x[:3].astype(np.int64)
    np.testing.assert_array_equal(lean(integers), model.predict_proba(integers))
    for bad in (x[:2, :3], x[:0]):  # the wrong width, no rows
        with pytest.raises(ValueError) as plain:
            model.predict_proba(bad)
        with pytest.raises(ValueError) as ours:
            lean(bad)
        assert str(ours.value) == str(plain.value)
    gaps = x[:3].copy()
    gaps[1, 2] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        lean(gaps)
    # finite rows the scaler takes to infinity (scale_ < 1): scikit-learn's own refusal
    small = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
        x / 1e4, data["arrival"].to_numpy())
    huge = np.full((2, len(NUMERIC)), 1e308)
    with pytest.raises(ValueError, match="infinity") as plain:
        small.predict_proba(huge)
    with pytest.raises(ValueError, match="infinity") as ours:
        lean_call(small, "predict_proba")(huge)
    assert str(ours.value) == str(plain.value)
