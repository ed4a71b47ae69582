"""Fit a model reproducibly from a data frame, a label, features and parameters.

The seed goes into every random choice of the library (and is recorded), so
the same data and parameters give the same model file and hash. String
columns are one-hot encoded for scikit-learn models and read as categoricals
by LightGBM and XGBoost; missing values are left to the learners that handle
them (and imputed for logistic regression). The signature records a column as
nullable only where the training data had gaps, or where ``nullable`` declares it.

The task (binary, multiclass, regression) is declared or read off the label and the
metric (:func:`ctloop.models.tasks.resolve_task`). Classifiers learn class indices
``0..k-1`` of the sorted class labels (strings allowed), which the signature keeps in
order (``signature.classes``), so every flavor's probability columns mean the same
classes; a label that cannot train the task raises ``NotTrainable`` with the reason.
Any scikit-learn classifier or regressor trains behind the same preprocessing: pass
the estimator, or its dotted class name, as ``algorithm``.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ctloop.core.errors import UserInputError
from ctloop.core.plugins import require
from ctloop.models.flavors import as_categories, save_model
from ctloop.models.metrics import encode_labels
from ctloop.models.signature import Signature
from ctloop.models.tasks import ClassLabel, Task, label_classes, resolve_task

__all__ = ["ALGORITHMS", "TrainedModel", "fit_model", "summarize_training_data"]

ALGORITHMS = ("logistic", "hist_gradient_boosting", "lightgbm", "xgboost", "catboost")

_DEFAULTS: dict[str, dict[str, Any]] = {
    "logistic": {"C": 1.0, "max_iter": 500},
    "hist_gradient_boosting": {"max_iter": 100, "learning_rate": 0.1, "max_leaf_nodes": 31},
    "lightgbm": {"n_estimators": 100, "learning_rate": 0.1, "num_leaves": 31, "n_jobs": 1},
    "xgboost": {"n_estimators": 100, "learning_rate": 0.1, "max_depth": 6, "n_jobs": 1},
    "catboost": {"iterations": 100, "learning_rate": 0.1, "depth": 6},
}
"""One thread by default: a loop fits many models beside other steps and services, and
OpenMP threads spin-waiting for busy cores made a 100-tree LightGBM fit 10-25x slower
(``bench/bench_loop.py`` measures it). Pass ``n_jobs`` to use more cores on an idle machine:
``deterministic`` and a fixed histogram layout (never LightGBM's timed choice between the
two) give the same trees whatever the thread count. Row-wise histograms fit a 200-tree
flights model in 0.89 s against 1.17 s column-wise on one thread; column-wise takes over
for wide data (``ROW_WISE_MAX_FEATURES``), where LightGBM's own advice prefers it."""

ROW_WISE_MAX_FEATURES = 100


@dataclass
class TrainedModel:
    """A fitted model with everything needed to save, reproduce and monitor it."""

    model: Any
    flavor: str
    task: Task
    label: str
    algorithm: str
    params: dict[str, Any]
    seed: int
    signature: Signature
    training_seconds: float
    n_rows: int
    data_summary: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> dict[str, Any]:
        """Save into folder ``path`` (see ``save_model``); returns the manifest."""
        return save_model(
            self.model,
            path,
            signature=self.signature,
            task=self.task,
            flavor=self.flavor,
            metadata={
                "label": self.label,
                "algorithm": self.algorithm,
                "params": self.params,
                "seed": self.seed,
                "n_rows": self.n_rows,
            },
        )


def _sklearn_estimator(
    algorithm: str, task: Task, params: dict[str, Any], strings: list[str], numbers: list[str]
) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classify = task != "regression"
    if algorithm == "logistic":
        numeric: Any = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        if classify:
            learner = LogisticRegression(**params)
        else:
            learner = LinearRegression(**{k: v for k, v in params.items() if k == "fit_intercept"})
    else:
        numeric = "passthrough"
        cls = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
        learner = cls(**params)
    return _behind_preprocessing(learner, numeric, strings, numbers)


def _behind_preprocessing(learner: Any, numeric: Any, strings: list[str], numbers: list[str]
                          ) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    encode = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    columns = ColumnTransformer(
        [("strings", encode, strings), ("numbers", numeric, numbers)],
        verbose_feature_names_out=False,
    )
    return make_pipeline(columns, learner)


def _custom_estimator(algorithm: Any, task: Task, params: dict[str, Any], seed: int) -> Any:
    """A scikit-learn estimator given as an object or a dotted class name, checked for ``task``."""
    from sklearn.base import clone, is_classifier, is_regressor

    if isinstance(algorithm, str):
        module, _, name = algorithm.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError):
            raise UserInputError(
                f"The 'algorithm' must be one of {ALGORITHMS} or the dotted name of a "
                f"scikit-learn estimator class (sklearn.ensemble.RandomForestClassifier). "
                f"Got {algorithm!r}."
            ) from None
        try:
            estimator = cls(**params)
        except TypeError as exc:
            raise UserInputError(f"Cannot create {algorithm} with {params}: {exc}.") from None
    else:
        estimator = clone(algorithm).set_params(**params) if params else clone(algorithm)
    if not (hasattr(estimator, "fit") and hasattr(estimator, "get_params")):
        raise UserInputError(
            f"{type(estimator).__name__} is not a scikit-learn estimator (no fit/get_params)."
        )
    wanted = is_regressor if task == "regression" else is_classifier
    if not wanted(estimator):
        kind = "regressor" if task == "regression" else "classifier"
        raise UserInputError(
            f"A {task} task needs a scikit-learn {kind}; {type(estimator).__name__} is not one."
        )
    if "random_state" in estimator.get_params() and estimator.get_params()["random_state"] is None:
        estimator.set_params(random_state=seed)
    return estimator


def _algorithm_name(algorithm: Any) -> str:
    if isinstance(algorithm, str):
        return algorithm
    cls = type(algorithm)
    return f"{cls.__module__}.{cls.__qualname__}"


def fit_model(
    data: pd.DataFrame,
    *,
    label: str,
    features: list[str],
    algorithm: Any = "hist_gradient_boosting",
    params: dict[str, Any] | None = None,
    seed: int = 0,
    task: str | None = None,
    metric: str | None = None,
    classes: list[ClassLabel] | None = None,
    nullable: Collection[str] = (),
) -> TrainedModel:
    """Fit ``algorithm`` on ``data[features]`` to predict ``data[label]``.

    ``algorithm`` is one of :data:`ALGORITHMS`, a scikit-learn estimator, or its dotted
    class name. ``task`` is binary, multiclass or regression (``classification`` reads as
    binary); without it the label and ``metric`` decide. ``classes`` declares the class
    labels (each must have rows). ``nullable`` names features that may be missing at
    serving time although the training data has no gap in them; every feature with
    missing values in ``data`` is nullable anyway, the others refuse nulls (422 at the
    service, an invalid row in ``ctloop predict``). ``params`` override the algorithm's
    defaults; the seed is passed as the library's ``random_state``. Returns the model with
    its signature (task and classes included), the full parameters used, the fit time and
    a summary of the training data. Raises ``NotTrainable`` when the label cannot train the task.
    """
    named = _check_inputs(data, label, features, algorithm)
    prepared = _prepare(data, label, features, task=task, metric=metric, classes=classes,
                        nullable=nullable)
    used = {**_DEFAULTS.get(str(algorithm), {}), **(params or {})} if named else dict(
        params or {})
    trainer = _TRAINERS[str(algorithm)] if named else _fit_custom
    started = time.perf_counter()
    fitted = trainer(algorithm, prepared, used, seed)
    elapsed = time.perf_counter() - started
    return TrainedModel(
        model=fitted.model,
        flavor=fitted.flavor,
        task=prepared.task,
        label=label,
        algorithm=_algorithm_name(algorithm),
        params=fitted.params,
        seed=seed,
        signature=prepared.signature,
        training_seconds=elapsed,
        n_rows=len(prepared.frame),
        data_summary=summarize_training_data(data, features, label),
    )


def _check_inputs(data: pd.DataFrame, label: str, features: list[str], algorithm: Any) -> bool:
    """Refuse an unknown algorithm and an unusable label; True for a built-in algorithm."""
    named = isinstance(algorithm, str) and algorithm in ALGORITHMS
    if isinstance(algorithm, str) and not named and "." not in algorithm:
        raise UserInputError(f"The 'algorithm' must be one of {ALGORITHMS}. Got {algorithm!r}.")
    if label not in data.columns:
        raise UserInputError(
            f"The training data has no label column {label!r}; it has {list(data.columns)}."
        )
    if label in features:
        raise UserInputError(f"The label {label!r} cannot also be a feature.")
    if data[label].isna().any():
        raise UserInputError(f"The label column {label!r} has missing values; drop them first.")
    return named


@dataclass(frozen=True)
class _Prepared:
    """The training data as every trainer takes it: the signature's frame and the target."""

    task: Task
    classes: list[ClassLabel] | None
    signature: Signature
    frame: pd.DataFrame
    y: np.ndarray
    strings: list[str]  # string inputs (one-hot or categorical, by trainer)
    numbers: list[str]
    n_features: int


@dataclass(frozen=True)
class _Fitted:
    """A trainer's answer: the fitted model, the full parameters used and its flavor."""

    model: Any
    params: dict[str, Any]
    flavor: str


def _prepare(data: pd.DataFrame, label: str, features: list[str], *, task: str | None,
             metric: str | None, classes: list[ClassLabel] | None,
             nullable: Collection[str]) -> _Prepared:
    """The task and classes read off the label, the signature, and the data it conforms."""
    kind = resolve_task(data[label], task=task, metric=metric, name=label)
    known = label_classes(data[label], kind, name=label, classes=classes)
    output = {"name": label, "type": "float" if kind == "regression" else "probability"}
    signature = Signature.from_frame(data, features, output, nullable=nullable)
    signature = dataclasses.replace(
        signature, task=kind, classes=None if known is None else tuple(known))
    frame = signature.prepare(data, what="The training data")
    if known is None:
        y = data[label].to_numpy(dtype=np.float64)
    else:
        y = encode_labels(data[label].to_numpy(), known)[0]
    return _Prepared(
        task=kind, classes=known, signature=signature, frame=frame, y=y,
        strings=[c.name for c in signature.inputs if c.type == "string"],
        numbers=[c.name for c in signature.inputs if c.type != "string"],
        n_features=len(features),
    )


def _fit_custom(algorithm: Any, data: _Prepared, used: dict[str, Any], seed: int) -> _Fitted:
    """A scikit-learn estimator of the caller's behind the imputing, scaling preprocessing."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    learner = _custom_estimator(algorithm, data.task, used, seed)
    used = {k: v for k, v in learner.get_params(deep=False).items()
            if isinstance(v, str | int | float | bool | type(None))}
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    model = _behind_preprocessing(learner, numeric, data.strings, data.numbers).fit(
        data.frame, data.y)
    return _Fitted(model, used, "sklearn")


def _fit_sklearn(algorithm: Any, data: _Prepared, used: dict[str, Any], seed: int) -> _Fitted:
    """Logistic (linear for regression) or histogram gradient boosting."""
    if algorithm == "hist_gradient_boosting" or data.task != "regression":
        used.setdefault("random_state", seed)
    model = _sklearn_estimator(algorithm, data.task, used, data.strings, data.numbers)
    model.fit(data.frame, data.y)
    return _Fitted(model, used, "sklearn")


def _fit_lightgbm(algorithm: Any, data: _Prepared, used: dict[str, Any], seed: int) -> _Fitted:
    """Deterministic LightGBM with a fixed histogram layout (see ``_DEFAULTS``)."""
    lgb = require("lightgbm", "all", "Training a LightGBM model")
    fixed: dict[str, Any] = {"random_state": seed, "deterministic": True, "verbose": -1}
    if not {"force_row_wise", "force_col_wise"} & set(used):  # the caller's layout wins
        wide = data.n_features > ROW_WISE_MAX_FEATURES
        fixed["force_col_wise" if wide else "force_row_wise"] = True
    if data.task == "multiclass":  # also with two classes: the booster answers (n, k)
        fixed.update(objective="multiclass", num_class=len(data.classes or ()))
    used = {**fixed, **used}
    cls = lgb.LGBMRegressor if data.task == "regression" else lgb.LGBMClassifier
    return _Fitted(cls(**used).fit(as_categories(data.frame), data.y), used, "lightgbm")


def _fit_catboost(algorithm: Any, data: _Prepared, used: dict[str, Any], seed: int) -> _Fitted:
    """CatBoost: the flavor owns its own categorical handling."""
    from ctloop.models.flavor_catboost import fit_catboost

    model, used = fit_catboost(data.frame, data.y, task=data.task, params=used, seed=seed,
                               categorical=data.strings)
    return _Fitted(model, used, "catboost")


def _fit_xgboost(algorithm: Any, data: _Prepared, used: dict[str, Any], seed: int) -> _Fitted:
    """XGBoost's histogram trees on native categoricals."""
    xgb = require("xgboost", "boost", "Training an XGBoost model")
    fixed: dict[str, Any] = {"random_state": seed, "tree_method": "hist",
                             "enable_categorical": True}
    if data.task == "multiclass":
        fixed.update(objective="multi:softprob", num_class=len(data.classes or ()))
    used = {**fixed, **used}
    cls = xgb.XGBRegressor if data.task == "regression" else xgb.XGBClassifier
    return _Fitted(cls(**used).fit(as_categories(data.frame), data.y), used, "xgboost")


_TRAINERS = {
    "logistic": _fit_sklearn,
    "hist_gradient_boosting": _fit_sklearn,
    "lightgbm": _fit_lightgbm,
    "catboost": _fit_catboost,
    "xgboost": _fit_xgboost,
}


def summarize_training_data(
    data: pd.DataFrame, features: list[str], label: str, *, top: int = 20
) -> dict[str, Any]:
    """Per-column statistics of the training data, the reference for later drift checks."""
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(data[c].dtype)]
    strings = [c for c in features if c not in numeric]
    summary: dict[str, Any] = {"n_rows": len(data), "columns": {}}
    if numeric:
        stats = data[numeric].describe(percentiles=[0.01, 0.25, 0.5, 0.75, 0.99]).T
        missing = data[numeric].isna().sum()
        for column, row in stats.iterrows():
            summary["columns"][column] = {
                "type": "numeric",
                "missing": int(missing[str(column)]),
                **{k: (None if pd.isna(v) else float(v)) for k, v in row.items() if k != "count"},
            }
    for column in strings:
        counts = data[column].value_counts(dropna=True)
        summary["columns"][column] = {
            "type": "string",
            "missing": int(data[column].isna().sum()),
            "distinct": int(counts.size),
            "top": {str(k): int(v) for k, v in counts.head(top).items()},
        }
    if pd.api.types.is_numeric_dtype(data[label].dtype):
        summary["label_mean"] = float(data[label].mean())
    if not pd.api.types.is_float_dtype(data[label].dtype) or data[label].nunique() <= top:
        shares = data[label].value_counts(normalize=True, dropna=True).head(top)
        summary["label_shares"] = {str(k): float(v) for k, v in sorted(
            shares.items(), key=lambda kv: str(kv[0]))}
    return summary
