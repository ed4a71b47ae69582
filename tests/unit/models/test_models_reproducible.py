"""LightGBM fits are reproducible: the same trees on any thread count, the layout fixed."""

from __future__ import annotations

import pytest

from ctloop.examples.flights.data import flights
from ctloop.models import fit_model

FEATURES = ["origin", "carrier", "hour", "distance", "dep_delay"]


@pytest.fixture(scope="module")
def rows():
    return flights([1]).head(20_000)


def _fit(rows, **params):  # type: ignore[no-untyped-def]
    return fit_model(rows, label="delayed", features=FEATURES, algorithm="lightgbm",
                     params={"n_estimators": 40, **params})


def _trees(trained) -> str:  # type: ignore[no-untyped-def]
    text = trained.model.booster_.model_to_string()
    return str(text[: text.find("parameters:")])  # the trees, not the thread count


def test_the_same_trees_on_one_or_two_threads_and_the_layout_is_recorded(rows) -> None:
    one, two, again = _fit(rows), _fit(rows, n_jobs=2), _fit(rows)
    assert _trees(one) == _trees(again) == _trees(two)
    assert one.params["deterministic"] is True and one.params["force_row_wise"] is True
    assert "force_col_wise" not in one.params


def test_a_layout_the_caller_chose_is_kept(rows) -> None:
    """Both layouts at once is an error in LightGBM: the caller's choice replaces ours."""
    col = _fit(rows, force_col_wise=True)
    assert col.params["force_col_wise"] is True and "force_row_wise" not in col.params
    assert _trees(col) == _trees(_fit(rows))  # here the layouts even agree on every tree
