"""fit_model pinned on real flights across the three tasks and every trainer (the built-in
algorithms, LightGBM, XGBoost, CatBoost and a scikit-learn class by its dotted name): the
flavor, the full parameters used, the classes kept and the first answers, so splitting the
function by trainer keeps what it fits to the digit. Small models keep the test quick."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from ctloop.examples.flights.data import flights
from ctloop.models.flavors import as_categories
from ctloop.models.training import fit_model

FEATURES = ["distance", "hour", "origin", "carrier", "dep_delay"]
LABELS = {"binary": "delayed", "multiclass": "band", "regression": "arr_delay"}
SMALL: dict[str, dict[str, Any]] = {
    "logistic": {"C": 0.5}, "hist_gradient_boosting": {"max_iter": 10},
    "lightgbm": {"n_estimators": 10}, "xgboost": {"n_estimators": 10},
    "catboost": {"iterations": 10}, "forest": {"n_estimators": 5}}
LGB = {"random_state": 3, "deterministic": True, "verbose": -1, "force_row_wise": True}
LGB_REST = {"n_estimators": 10, "learning_rate": 0.1, "num_leaves": 31, "n_jobs": 1}
XGB = {"random_state": 3, "tree_method": "hist", "enable_categorical": True}
XGB_REST = {"n_estimators": 10, "learning_rate": 0.1, "max_depth": 6, "n_jobs": 1}
CAT = {"random_seed": 3, "verbose": False, "thread_count": 1, "allow_writing_files": False,
       "iterations": 10, "learning_rate": 0.1, "depth": 6}
HGB = {"max_iter": 10, "learning_rate": 0.1, "max_leaf_nodes": 31, "random_state": 3}
FOREST = {"n_estimators": 5, "random_state": 3}
BANDS = ("early", "late", "very")
PINNED = [
    ("binary", "logistic", "sklearn", {"C": 0.5, "max_iter": 500, "random_state": 3}, (0, 1),
     [0.18572338753732523, 0.014443221525743977, 0.06679548876712744]),
    ("binary", "hist_gradient_boosting", "sklearn", HGB, (0, 1),
     [0.2362173370024617, 0.08110370737222468, 0.08741708629505059]),
    ("binary", "lightgbm", "lightgbm", {**LGB, **LGB_REST}, (0, 1),
     [0.22997940157460958, 0.08110370737222468, 0.0822744071426477]),
    ("binary", "xgboost", "xgboost", {**XGB, **XGB_REST}, (0, 1),
     [0.24786821007728577, 0.09757177531719208, 0.10616099089384079]),
    ("binary", "catboost", "catboost", CAT, (0, 1),
     [0.248102430642432, 0.2291436509949933, 0.23694643214591318]),
    ("binary", "forest", "sklearn", FOREST, (0, 1), [0.0, 0.0, 0.0]),
    ("multiclass", "logistic", "sklearn", {"C": 0.5, "max_iter": 500, "random_state": 3},
     BANDS, [0.006621052730743435, 1.615978886464923e-05, 0.0005111206105705757]),
    ("multiclass", "hist_gradient_boosting", "sklearn", HGB, BANDS,
     [0.02375912028110154, 0.01711646193318219, 0.01711646193318219]),
    ("multiclass", "lightgbm", "lightgbm",
     {**LGB, "objective": "multiclass", "num_class": 3, **LGB_REST}, BANDS,
     [0.04579980665628625, 0.03317016549035647, 0.03317016549035647]),
    ("multiclass", "xgboost", "xgboost",
     {**XGB, "objective": "multi:softprob", "num_class": 3, **XGB_REST}, BANDS,
     [0.06294488906860352, 0.045976411551237106, 0.045976411551237106]),
    ("multiclass", "catboost", "catboost", CAT, BANDS,
     [0.1330969241714641, 0.12663621589240592, 0.11953687280957445]),
    ("multiclass", "forest", "sklearn", FOREST, BANDS, [0.0, 0.0, 0.0]),
    ("regression", "logistic", "sklearn", {"C": 0.5, "max_iter": 500}, None,
     [3.2951015042039544, -22.387530983906117, -8.102483570210387]),
    ("regression", "hist_gradient_boosting", "sklearn", HGB, None,
     [3.960601056361881, -12.94117974524271, -6.274860120385924]),
    ("regression", "lightgbm", "lightgbm", {**LGB, **LGB_REST}, None,
     [2.2807708163443454, -12.94117974524271, -6.174178500103652]),
    ("regression", "xgboost", "xgboost", {**XGB, **XGB_REST}, None,
     [3.3528218269348145, -8.854581832885742, -4.427089691162109]),
    ("regression", "catboost", "catboost", CAT, None,
     [-0.7579399893551653, -5.330194615128763, -3.3579493915686927]),
    ("regression", "forest", "sklearn", FOREST, None, [12.4, -12.6, -21.2]),
]


@pytest.fixture(scope="module")
def january() -> pd.DataFrame:
    data = flights([1]).sample(1500, random_state=0).reset_index(drop=True)
    data["band"] = np.where(data["dep_delay"] <= 0, "early",
                            np.where(data["dep_delay"] <= 30, "late", "very"))
    return data


@pytest.mark.parametrize(("task", "algorithm", "flavor", "params", "classes", "answers"),
                         PINNED, ids=[f"{p[0]}-{p[1]}" for p in PINNED])
def test_what_each_trainer_fits_is_pinned(
    january: pd.DataFrame, task: str, algorithm: str, flavor: str, params: dict[str, Any],
    classes: tuple[object, ...] | None, answers: list[float],
) -> None:
    label = LABELS[task]
    name = algorithm
    if algorithm == "forest":
        name = ("sklearn.ensemble.RandomForestRegressor" if task == "regression"
                else "sklearn.ensemble.RandomForestClassifier")
    model = fit_model(january, label=label, features=[f for f in FEATURES if f != label],
                      algorithm=name, task=task, seed=3, params=SMALL[algorithm])
    used = model.params if algorithm != "forest" else {k: model.params[k] for k in FOREST}
    assert (model.flavor, model.algorithm, model.task, used, model.signature.classes,
            model.n_rows) == (flavor, name, task, params, classes, 1500)
    assert list(model.params) == list(params) or algorithm == "forest"  # the order is kept
    rows = model.signature.prepare(january.head(3), what="The rows")
    rows = rows if flavor in ("sklearn", "catboost") else as_categories(rows)
    got = (model.model.predict(rows) if task == "regression"
           else model.model.predict_proba(rows)[:, -1])
    assert [float(v) for v in got] == pytest.approx(answers, rel=1e-6, abs=1e-12)
