"""The CatBoost flavor: native .cbm, categorical strings, every task, its own TreeSHAP."""

from __future__ import annotations

from pathlib import Path

import catboost as cb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ctloop.models import Signature, fit_model, load_model, save_model
from ctloop.models.explain import explain
from ctloop.models.flavor_catboost import catboost_frame

FEATURES = ["origin", "carrier", "hour", "distance", "month", "dest"]
ROWS = (1, 2, 100)
SMALL = {"iterations": 30, "depth": 4}


def test_fit_model_trains_catboost_reproducibly(
    jan_feb: pd.DataFrame, april: pd.DataFrame, tmp_path: Path
) -> None:
    fits = [fit_model(jan_feb, label="delayed", features=FEATURES, algorithm="catboost",
                      params=SMALL, seed=4) for _ in range(2)]
    manifests = [f.save(tmp_path / f"m{i}") for i, f in enumerate(fits)]
    assert manifests[0]["sha256"] == manifests[1]["sha256"]
    assert manifests[0]["flavor"] == "catboost" and manifests[0]["model_file"] == "model.cbm"
    assert manifests[0]["task"] == "binary" and manifests[0]["signature"]["classes"] == [0, 1]
    assert fits[0].params["random_seed"] == 4 and fits[0].params["thread_count"] == 1
    loaded = load_model(tmp_path / "m0")
    p = loaded.predict(april)
    assert p.shape == (len(april),) and roc_auc_score(april["delayed"], p) > 0.6
    np.testing.assert_allclose(
        p, fits[0].model.predict_proba(catboost_frame(april[FEATURES],
                                                      ["origin", "carrier", "dest"]))[:, 1]
    )
    for n in ROWS:
        assert loaded.predict(april.iloc[:n]).shape == (n,)
    # Nulls: numbers natively, categories as their own "nan" category.
    holes = april.iloc[:3].copy()
    holes.loc[holes.index[0], "distance"] = np.nan
    holes.loc[holes.index[1], "carrier"] = None
    assert np.isfinite(loaded.predict(holes)).all()


def test_catboost_explains_with_its_own_tree_shap(
    jan_feb: pd.DataFrame, april: pd.DataFrame, tmp_path: Path
) -> None:
    fit_model(jan_feb, label="delayed", features=FEATURES, algorithm="catboost",
              params=SMALL).save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    rows = april.iloc[:50]
    got = explain(loaded, rows)
    assert got.method == "tree_shap" and got.space == "log_odds"
    assert got.features == tuple(FEATURES) and got.contributions.shape == (50, len(FEATURES))
    np.testing.assert_allclose(got.predictions(), loaded.predict(rows), rtol=1e-6)


def _frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                          "shop": rng.choice(["north", "south", "east"], size=n)})
    score = frame["a"] - frame["b"] + (frame["shop"] == "east") * 1.0
    frame["label"] = np.array(["wd", "ac", "zz", "bb"], dtype=object)[
        pd.qcut(score, 4, labels=False)]
    frame["count"] = rng.poisson(np.exp(0.5 * score.clip(-2, 2)))
    frame["value"] = 3 * score
    return frame


@pytest.mark.parametrize("labels", [["wd", "ac", "zz", "bb"], [3, 7, 11]])
def test_catboost_multiclass_keeps_its_classes(labels: list[object], tmp_path: Path) -> None:
    data = _frame()
    codes = pd.Series(pd.factorize(data["label"])[0] % len(labels))
    y = np.asarray(labels, dtype=object)[codes]
    if isinstance(labels[0], int):
        y = y.astype(np.int64)
    model = cb.CatBoostClassifier(iterations=30, verbose=False, thread_count=1,
                                  cat_features=["shop"], allow_writing_files=False)
    model.fit(data[["a", "b", "shop"]], y)
    manifest = save_model(model, tmp_path / "m",
                          signature=Signature.from_frame(data, ["a", "b", "shop"]))
    assert manifest["task"] == "multiclass"
    loaded = load_model(tmp_path / "m")
    assert list(loaded.signature.classes or ()) == [
        c.item() if hasattr(c, "item") else c for c in model.classes_]
    for n in ROWS:
        rows = data.iloc[:n]
        p = loaded.predict(rows)
        assert p.shape == (n, len(labels))
        np.testing.assert_allclose(p, model.predict_proba(rows[["a", "b", "shop"]]))
        assert list(loaded.predict_labels(rows)) == list(
            model.predict(rows[["a", "b", "shop"]]).ravel())


@pytest.mark.parametrize("loss", ["RMSE", "Poisson"])
def test_catboost_regression(loss: str, tmp_path: Path) -> None:
    data = _frame()
    target = data["count"] if loss == "Poisson" else data["value"]
    model = cb.CatBoostRegressor(iterations=30, verbose=False, thread_count=1, loss_function=loss,
                                 cat_features=["shop"], allow_writing_files=False)
    model.fit(data[["a", "b", "shop"]], target)
    manifest = save_model(model, tmp_path / "m",
                          signature=Signature.from_frame(data, ["a", "b", "shop"]))
    assert manifest["task"] == "regression"
    loaded = load_model(tmp_path / "m")
    for n in ROWS:
        rows = data.iloc[:n]
        np.testing.assert_allclose(loaded.predict(rows), model.predict(rows[["a", "b", "shop"]]))
