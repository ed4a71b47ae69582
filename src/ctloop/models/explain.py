"""Per-feature contributions to a prediction, in the model's raw-score space.

Each row's contributions plus its base value add up to the model's raw score
(log-odds for a classifier, the value for a regressor), so a reader sees how
much every input pushed this prediction away from the model's average.

- LightGBM and XGBoost: the libraries' own TreeSHAP (``pred_contrib`` /
  ``pred_contribs``); the base value is the expected raw score over the
  training data.
- Linear scikit-learn models (``LogisticRegression``, ``LinearRegression``,
  ``Ridge``..., alone or at the end of a ``Pipeline``): coefficient times the
  centred transformed value. ``fit_model``'s scaler centres numeric inputs at
  their training mean; one-hot categories count from "absent", so a category's
  contribution is its coefficient. Pass ``background`` (rows like the training
  data) to centre every transformed feature at its mean there instead. The
  one-hot columns of a categorical input are summed back into that input.
- Anything else raises :class:`CannotExplain`, saying what can.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ctloop.core.errors import UserInputError
from ctloop.core.plugins import require
from ctloop.models.flavors import LoadedModel, as_categories

__all__ = ["CannotExplain", "Explanation", "explain"]


class CannotExplain(UserInputError):
    """The model's flavor or estimator has no per-feature contributions."""

    headline = "cannot explain"
    http_status = 422


@dataclass(frozen=True)
class Explanation:
    """Contributions of ``features`` to each row's raw score."""

    features: tuple[str, ...]
    contributions: np.ndarray  # (rows, features)
    base_values: np.ndarray  # (rows,)
    raw_scores: np.ndarray  # (rows,): base value + sum of contributions
    space: str  # "log_odds" (classifier) or "value" (regressor)
    method: str  # "tree_shap" or "linear"

    def __len__(self) -> int:
        return int(self.contributions.shape[0])

    def predictions(self) -> np.ndarray:
        """What ``LoadedModel.predict`` answers: the probability for a classifier."""
        if self.space == "log_odds":
            return np.asarray(1.0 / (1.0 + np.exp(-self.raw_scores)), dtype=float)
        return self.raw_scores

    def top(self, k: int | None = None) -> list[list[tuple[str, float]]]:
        """Per row, the ``k`` largest contributions by magnitude (all when None), largest first."""
        order = np.argsort(-np.abs(self.contributions), axis=1, kind="stable")
        if k is not None:
            order = order[:, : max(0, k)]
        names = np.asarray(self.features, dtype=object)
        return [
            list(zip(names[idx].tolist(), row[idx].tolist(), strict=True))
            for idx, row in zip(order, self.contributions, strict=True)
        ]

    def to_rows(self, top: int | None = None) -> list[dict[str, Any]]:
        """One JSON-able object per row: base value, raw score, prediction, contributions."""
        predictions = self.predictions()
        return [
            {
                "base_value": float(self.base_values[i]),
                "raw_score": float(self.raw_scores[i]),
                "prediction": float(predictions[i]),
                "contributions": [{"feature": f, "value": v} for f, v in ranked],
            }
            for i, ranked in enumerate(self.top(top))
        ]


def explain(
    model: LoadedModel,
    frame: pd.DataFrame,
    *,
    background: pd.DataFrame | None = None,
    what: str = "The input data",
) -> Explanation:
    """Per-feature contributions of ``model`` for every row of ``frame``."""
    prepared = model.signature.prepare(frame, what=what)
    space = "log_odds" if model.task == "binary" else "value"
    columns = tuple(model.signature.columns)
    if model.flavor == "lightgbm":
        data = as_categories(prepared)
        contrib = np.asarray(model.model.predict(data, pred_contrib=True), dtype=float)
        return _from_trees(columns, contrib, space)
    if model.flavor == "xgboost":
        xgb = require("xgboost", "boost", "Explaining an XGBoost model")
        matrix = xgb.DMatrix(as_categories(prepared), enable_categorical=True)
        contrib = np.asarray(model.model.predict(matrix, pred_contribs=True), dtype=float)
        return _from_trees(columns, contrib, space)
    if model.flavor == "sklearn":
        return _linear(model, prepared, background, space, what)
    raise CannotExplain(
        f"A {model.flavor!r} model cannot be explained: contributions exist for LightGBM, "
        "XGBoost and linear scikit-learn models."
    )


def _from_trees(columns: tuple[str, ...], contrib: np.ndarray, space: str) -> Explanation:
    if contrib.ndim != 2 or contrib.shape[1] != len(columns) + 1:
        raise CannotExplain(
            f"The model returned contributions of shape {contrib.shape} for {len(columns)} "
            "inputs; multi-class models cannot be explained yet."
        )
    parts, base = contrib[:, :-1], contrib[:, -1]
    return Explanation(columns, parts, base, base + parts.sum(axis=1), space, "tree_shap")


def _split_pipeline(estimator: Any) -> tuple[Any | None, Any]:
    """(preprocessing or None, final estimator) of a scikit-learn model."""
    steps = getattr(estimator, "steps", None)
    if steps:
        pre = estimator[:-1] if len(steps) > 1 else None
        return pre, steps[-1][1]
    return None, estimator


def _linear(
    model: LoadedModel,
    prepared: pd.DataFrame,
    background: pd.DataFrame | None,
    space: str,
    what: str,
) -> Explanation:
    pre, learner = _split_pipeline(model.model)
    coef = getattr(learner, "coef_", None)
    if coef is None or not hasattr(learner, "intercept_"):
        raise CannotExplain(
            f"The scikit-learn model ends in a {type(learner).__name__}, which has no "
            "coefficients; contributions exist for linear models (LogisticRegression, "
            "LinearRegression, Ridge...), LightGBM and XGBoost. Train one of those to explain."
        )
    weights = np.asarray(coef, dtype=float)
    if weights.ndim == 2 and weights.shape[0] != 1:
        raise CannotExplain("Multi-class linear models cannot be explained yet.")
    weights = weights.reshape(-1)
    transformed = _dense(pre.transform(prepared) if pre is not None else prepared)
    if transformed.shape[1] != weights.size:
        raise CannotExplain(
            f"The model's preprocessing gives {transformed.shape[1]} features but the learner "
            f"has {weights.size} coefficients; it cannot be explained."
        )
    if background is not None:
        if background.empty:
            raise UserInputError("The background data is empty; give rows like the training data.")
        reference = model.signature.prepare(background, what="The background data")
        centre = _dense(pre.transform(reference) if pre is not None else reference).mean(axis=0)
    else:
        centre = np.zeros(weights.size)
    parts = weights * (transformed - centre)
    intercept = float(np.asarray(learner.intercept_, dtype=float).reshape(-1)[0])
    base = np.full(len(parts), intercept + float(weights @ centre))
    features, grouped = _group_by_input(pre, parts, tuple(model.signature.columns))
    return Explanation(features, grouped, base, base + parts.sum(axis=1), space, "linear")


def _dense(values: Any) -> np.ndarray:
    if hasattr(values, "toarray"):
        values = values.toarray()
    return np.asarray(values, dtype=float)


def _group_by_input(
    pre: Any | None, parts: np.ndarray, inputs: tuple[str, ...]
) -> tuple[tuple[str, ...], np.ndarray]:
    """Sum transformed-feature contributions back into the input columns they came from."""
    groups = _column_groups(pre, parts.shape[1], inputs)
    if groups is None:  # an unknown preprocessing: report its own output features
        names = getattr(pre, "get_feature_names_out", None)
        labels = [str(n) for n in names()] if names else [f"f{i}" for i in range(parts.shape[1])]
        return tuple(labels), parts
    features = tuple(name for name, _ in groups)
    grouped = np.column_stack([parts[:, idx].sum(axis=1) for _, idx in groups])
    return features, grouped


def _column_groups(
    pre: Any | None, width: int, inputs: tuple[str, ...]
) -> list[tuple[str, list[int]]] | None:
    """Which transformed columns each input produced, for identity and ColumnTransformer steps."""
    if pre is None:
        return [(name, [i]) for i, name in enumerate(inputs)] if width == len(inputs) else None
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    transformers = [s for _, s in getattr(pre, "steps", [("", pre)])]
    found = [t for t in transformers if isinstance(t, ColumnTransformer)]
    if len(transformers) != 1 or len(found) != 1:
        return None
    ct = found[0]
    groups: dict[str, list[int]] = {}
    for name, transformer, columns in ct.transformers_:
        span = ct.output_indices_.get(name, slice(0, 0))
        out = list(range(width))[span]
        if not out:
            continue
        if not isinstance(columns, Sequence) or isinstance(columns, str):
            return None
        columns = [str(c) for c in columns]
        if isinstance(transformer, OneHotEncoder):
            sizes = _one_hot_sizes(transformer)
            if sizes is None or sum(sizes) != len(out):
                return None
            start = 0
            for column, size in zip(columns, sizes, strict=True):
                groups.setdefault(column, []).extend(out[start : start + size])
                start += size
        elif len(columns) == len(out):
            for column, index in zip(columns, out, strict=True):
                groups.setdefault(column, []).append(index)
        else:
            return None
    ordered = [(name, groups[name]) for name in inputs if name in groups]
    ordered += [(name, idx) for name, idx in groups.items() if name not in inputs]
    return ordered


def _one_hot_sizes(encoder: Any) -> list[int] | None:
    """Output columns per input of a fitted OneHotEncoder (dropped categories removed)."""
    try:
        names = encoder.get_feature_names_out()
        categories = encoder.categories_
    except Exception:  # an unfitted or exotic encoder: fall back to its own names
        return None
    drop = getattr(encoder, "drop_idx_", None)
    sizes = [
        len(c) - (0 if drop is None or drop[i] is None else 1) for i, c in enumerate(categories)
    ]
    return sizes if sum(sizes) == len(names) else None
