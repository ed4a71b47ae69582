"""Per-feature contributions on real flights models: they add up to the raw score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop.core.errors import UserInputError
from ctloop.models import fit_model
from ctloop.models.explain import CannotExplain, explain
from ctloop.models.flavors import load_model, save_model
from ctloop.models.signature import Signature

FEATURES = ["origin", "carrier", "hour", "distance", "dep_delay"]


@pytest.fixture(scope="module")
def models(jan_feb: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("explain")
    out = {}
    for algorithm, params in (
        ("lightgbm", {"n_estimators": 20, "n_jobs": 1}),
        ("xgboost", {"n_estimators": 20, "n_jobs": 1}),
        ("logistic", {}),
        ("hist_gradient_boosting", {"max_iter": 10}),
    ):
        fit_model(
            jan_feb.head(5000),
            label="delayed",
            features=FEATURES,
            algorithm=algorithm,
            params=params,
        ).save(root / algorithm)
        out[algorithm] = root / algorithm
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("algorithm", ["lightgbm", "xgboost", "logistic"])
def test_contributions_plus_base_value_are_the_raw_score(
    models: dict[str, Path], april: pd.DataFrame, algorithm: str
) -> None:
    model = load_model(models[algorithm])
    rows = april.head(300)
    result = explain(model, rows)
    assert result.features == tuple(FEATURES)  # one-hot columns summed back into their input
    assert result.contributions.shape == (300, len(FEATURES))
    total = result.base_values + result.contributions.sum(axis=1)
    np.testing.assert_allclose(total, result.raw_scores, rtol=1e-5, atol=1e-5)
    # ...and the raw score is the model's own: its probability is what predict() answers.
    np.testing.assert_allclose(_sigmoid(result.raw_scores), model.predict(rows), atol=1e-5)
    np.testing.assert_allclose(result.predictions(), model.predict(rows), atol=1e-5)
    if algorithm == "logistic":  # the raw score is the library's decision function
        prepared = model.signature.prepare(rows)
        np.testing.assert_allclose(
            result.raw_scores, model.model.decision_function(prepared), atol=1e-9
        )
    # Departure delay drives arrival delay: it is the largest contribution on average.
    mean_size = np.abs(result.contributions).mean(axis=0)
    assert FEATURES[int(np.argmax(mean_size))] == "dep_delay"


def test_linear_contributions_are_coefficients_times_centred_values(
    models: dict[str, Path], april: pd.DataFrame, jan_feb: pd.DataFrame
) -> None:
    model = load_model(models["logistic"])
    rows = april.head(50)
    result = explain(model, rows)
    scaler = model.model[0].named_transformers_["numbers"][-1]
    coef = model.model[-1].coef_.ravel()
    index = list(model.model[0].get_feature_names_out()).index("distance")
    numeric = model.model[0].transformers_[1][2].index("distance")  # ["hour", "distance", ...]
    mean, scale = scaler.mean_[numeric], scaler.scale_[numeric]
    want = coef[index] * (rows["distance"].to_numpy() - mean) / scale
    np.testing.assert_allclose(result.contributions[:, FEATURES.index("distance")], want)
    # Centred on a background sample instead: the contributions average to ~0 there.
    centred = explain(model, jan_feb.head(2000), background=jan_feb.head(2000))
    assert np.abs(centred.contributions.mean(axis=0)).max() < 1e-9
    np.testing.assert_allclose(
        centred.base_values + centred.contributions.sum(axis=1), centred.raw_scores, atol=1e-9
    )


def test_top_orders_by_magnitude(models: dict[str, Path], april: pd.DataFrame) -> None:
    result = explain(load_model(models["lightgbm"]), april.head(5))
    for ranked, row in zip(result.top(2), result.contributions, strict=True):
        assert len(ranked) == 2
        assert abs(ranked[0][1]) == pytest.approx(np.abs(row).max())
        assert abs(ranked[0][1]) >= abs(ranked[1][1])
    [first] = result.to_rows(top=3)[:1]
    assert len(first["contributions"]) == 3 and set(first) >= {"base_value", "prediction"}


def test_models_without_contributions_say_what_can(
    models: dict[str, Path], april: pd.DataFrame, tmp_path: Path
) -> None:
    with pytest.raises(CannotExplain, match=r"HistGradientBoostingClassifier.*linear models"):
        explain(load_model(models["hist_gradient_boosting"]), april.head(5))
    save_model(
        _Constant(),
        tmp_path / "python",
        signature=Signature.from_frame(april, ["hour"], {}),
        flavor="python",
    )
    with pytest.raises(CannotExplain, match="'python' model cannot be explained"):
        explain(load_model(tmp_path / "python"), april.head(5))


def test_missing_inputs_are_a_clear_error(models: dict[str, Path], april: pd.DataFrame) -> None:
    with pytest.raises(UserInputError, match="dep_delay"):
        explain(load_model(models["lightgbm"]), april[["origin", "hour"]].head(5))


class _Constant:
    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), 0.5)
