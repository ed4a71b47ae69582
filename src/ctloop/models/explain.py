"""Per-feature contributions to a prediction, in the model's raw-score space.

Each row's contributions plus its base value add up to the model's raw score
(log-odds for a classifier, the value for a regressor), so a reader sees how
much every input pushed this prediction away from the model's average.

- LightGBM, XGBoost and CatBoost: the libraries' own TreeSHAP (``pred_contrib`` /
  ``pred_contribs`` / ``ShapValues``); the base value is the expected raw score over the
  training data.
- Linear scikit-learn models (``LogisticRegression``, ``LinearRegression``,
  ``Ridge``..., alone or at the end of a ``Pipeline``): coefficient times the
  centred transformed value. ``fit_model``'s scaler centres numeric inputs at
  their training mean; one-hot categories count from "absent", so a category's
  contribution is its coefficient. Pass ``background`` (rows like the training
  data) to centre every transformed feature at its mean there instead. The
  one-hot columns of a categorical input are summed back into that input.
- Anything else raises :class:`CannotExplain`, saying what can.

A multiclass model has one raw score per class (its logits; softmax gives the
probabilities), so it has contributions per class: ``per_class`` holds them all
(rows, classes, features), and the flat fields explain each row's predicted class
(``explained``), so every reader of a binary explanation reads a multiclass one too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ctloop.core.arrays import Floats, Indices
from ctloop.core.errors import UserInputError
from ctloop.core.lazy import lazy_module
from ctloop.core.plugins import require
from ctloop.models.flavors import LoadedModel, as_categories
from ctloop.models.tasks import normalize_task

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd
    from scipy.sparse import spmatrix  # untyped libraries (ignore_missing_imports): names
    from sklearn.base import BaseEstimator as Estimator  # for the reader
    from sklearn.preprocessing import OneHotEncoder
else:
    pd = lazy_module("pandas", globals(), "pd")

__all__ = ["CannotExplain", "Explanation", "explain"]


class CannotExplain(UserInputError):
    """The model's flavor or estimator has no per-feature contributions."""

    headline = "cannot explain"
    http_status = 422


@dataclass(frozen=True)
class Explanation:
    """Contributions of ``features`` to each row's raw score."""

    features: tuple[str, ...]
    contributions: Floats  # (rows, features)
    base_values: Floats  # (rows,)
    raw_scores: Floats  # (rows,): base value + sum of contributions
    space: str  # "log_odds" (binary), "logits" (multiclass, softmax) or "value" (regressor)
    method: str  # "tree_shap" or "linear"
    classes: tuple[str | int, ...] | None = None  # multiclass: the classes of per_class
    per_class: Floats | None = None  # multiclass: (rows, classes, features)
    per_class_base: Floats | None = None  # multiclass: (rows, classes)
    explained: Indices | None = None  # multiclass: (rows,) index of the class explained

    def __len__(self) -> int:
        return int(self.contributions.shape[0])

    def class_scores(self) -> Floats | None:
        """Multiclass: every class's raw score (rows, classes); None otherwise."""
        if self.per_class is None or self.per_class_base is None:
            return None
        return np.asarray(self.per_class_base + self.per_class.sum(axis=2), dtype=float)

    def class_probabilities(self) -> Floats | None:
        """Multiclass: the softmax of the class scores, what ``LoadedModel.predict`` answers."""
        scores = self.class_scores()
        if scores is None:
            return None
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        return np.asarray(shifted / shifted.sum(axis=1, keepdims=True), dtype=float)

    def predictions(self) -> Floats:
        """The probability for a binary classifier, the value for a regressor, and for a
        multiclass model the probability of the class each row explains."""
        proba = self.class_probabilities()
        if proba is not None and self.explained is not None:
            return np.asarray(proba[np.arange(len(proba)), self.explained], dtype=float)
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

    def to_rows(self, top: int | None = None) -> list[dict[str, Any]]:  # cli/predict reads dicts
        """One JSON-able object per row: base value, raw score, prediction, contributions."""
        predictions = self.predictions()
        rows: list[dict[str, Any]] = [
            {
                "base_value": float(self.base_values[i]),
                "raw_score": float(self.raw_scores[i]),
                "prediction": float(predictions[i]),
                "contributions": [{"feature": f, "value": v} for f, v in ranked],
            }
            for i, ranked in enumerate(self.top(top))
        ]
        if self.per_class is None or self.classes is None or self.explained is None:
            return rows
        proba = self.class_probabilities()
        assert proba is not None and self.per_class_base is not None
        for i, row in enumerate(rows):
            row["class"] = self.classes[int(self.explained[i])]
            row["classes"] = [
                {
                    "class": c,
                    "base_value": float(self.per_class_base[i, j]),
                    "probability": float(proba[i, j]),
                    "contributions": [
                        {"feature": f, "value": float(v)}
                        for f, v in _ranked(self.features, self.per_class[i, j], top)
                    ],
                }
                for j, c in enumerate(self.classes)
            ]
        return rows


def _ranked(features: tuple[str, ...], values: Floats, top: int | None
            ) -> list[tuple[str, float]]:
    order = np.argsort(-np.abs(values), kind="stable")
    if top is not None:
        order = order[: max(0, top)]
    return [(features[i], float(values[i])) for i in order]


def explain(
    model: LoadedModel,
    frame: pd.DataFrame,
    *,
    background: pd.DataFrame | None = None,
    what: str = "The input data",
) -> Explanation:
    """Per-feature contributions of ``model`` for every row of ``frame``."""
    prepared = model.signature.prepare(frame, what=what)
    task = normalize_task(model.task) or "binary"
    space = {"binary": "log_odds", "multiclass": "logits"}.get(task, "value")
    columns = tuple(model.signature.columns)
    classes = tuple(model.signature.classes) if model.signature.classes else None
    if model.flavor == "lightgbm":
        data = as_categories(prepared)
        contrib = np.asarray(model.model.predict(data, pred_contrib=True), dtype=float)
        if task == "multiclass":
            contrib = contrib.reshape(len(prepared), -1, len(columns) + 1)
        return _from_trees(columns, contrib, space, classes)
    if model.flavor == "xgboost":
        xgb = require("xgboost", "boost", "Explaining an XGBoost model")
        matrix = xgb.DMatrix(as_categories(prepared), enable_categorical=True)
        contrib = np.asarray(model.model.predict(matrix, pred_contribs=True), dtype=float)
        return _from_trees(columns, contrib, space, classes)
    if model.flavor == "catboost":  # CatBoost's own TreeSHAP (ShapValues)
        from ctloop.models.flavor_catboost import shap_values

        return _from_trees(columns, shap_values(model.model, prepared), space, classes)
    if model.flavor == "sklearn":
        return _linear(model, prepared, background, space, what, classes)
    raise CannotExplain(
        f"A {model.flavor!r} model cannot be explained: contributions exist for LightGBM, "
        "XGBoost, CatBoost and linear scikit-learn models."
    )


def _from_trees(columns: tuple[str, ...], contrib: Floats, space: str,
                classes: tuple[str | int, ...] | None = None) -> Explanation:
    if contrib.ndim == 3 and contrib.shape[2] == len(columns) + 1:
        return _per_class(columns, contrib[:, :, :-1], contrib[:, :, -1], space, "tree_shap",
                          classes)
    if contrib.ndim != 2 or contrib.shape[1] != len(columns) + 1:
        raise CannotExplain(
            f"The model returned contributions of shape {contrib.shape} for {len(columns)} "
            "inputs, which is not one contribution per input and class."
        )
    parts, base = contrib[:, :-1], contrib[:, -1]
    return Explanation(columns, parts, base, base + parts.sum(axis=1), space, "tree_shap")


def _per_class(columns: tuple[str, ...], parts: Floats, base: Floats, space: str,
               method: str, classes: tuple[str | int, ...] | None) -> Explanation:
    """A multiclass explanation: every class's contributions, the predicted class's flat."""
    k = parts.shape[1]
    names = classes if classes is not None and len(classes) == k else tuple(range(k))
    scores = base + parts.sum(axis=2)
    explained = np.argmax(scores, axis=1)
    rows = np.arange(len(parts))
    return Explanation(columns, parts[rows, explained], base[rows, explained],
                       scores[rows, explained], space, method, classes=names, per_class=parts,
                       per_class_base=base, explained=explained)


def _split_pipeline(estimator: Estimator) -> tuple[Estimator | None, Estimator]:
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
    classes: tuple[str | int, ...] | None = None,
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
        return _linear_per_class(model, pre, learner, weights, prepared, background, space,
                                 classes)
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


def _linear_per_class(
    model: LoadedModel, pre: Estimator | None, learner: Estimator, weights: Floats,
    prepared: pd.DataFrame,
    background: pd.DataFrame | None, space: str, classes: tuple[str | int, ...] | None,
) -> Explanation:
    """A multinomial linear model: coefficient times centred value, for every class."""
    transformed = _dense(pre.transform(prepared) if pre is not None else prepared)
    if transformed.shape[1] != weights.shape[1]:
        raise CannotExplain(
            f"The model's preprocessing gives {transformed.shape[1]} features but the learner "
            f"has {weights.shape[1]} coefficients per class; it cannot be explained."
        )
    centre = np.zeros(weights.shape[1])
    if background is not None:
        if background.empty:
            raise UserInputError("The background data is empty; give rows like the training data.")
        reference = model.signature.prepare(background, what="The background data")
        centre = _dense(pre.transform(reference) if pre is not None else reference).mean(axis=0)
    parts = weights[None, :, :] * (transformed - centre)[:, None, :]  # (rows, k, d)
    intercept = np.asarray(learner.intercept_, dtype=float).reshape(-1)
    base = np.broadcast_to(intercept + weights @ centre, (len(parts), weights.shape[0]))
    features: tuple[str, ...] = ()
    grouped = []
    for c in range(weights.shape[0]):
        features, part = _group_by_input(pre, parts[:, c, :], tuple(model.signature.columns))
        grouped.append(part)
    return _per_class(features, np.stack(grouped, axis=1), np.array(base), space, "linear",
                      classes)


def _dense(values: npt.ArrayLike | spmatrix) -> Floats:
    if hasattr(values, "toarray"):
        values = values.toarray()
    return np.asarray(values, dtype=float)


def _group_by_input(
    pre: Estimator | None, parts: Floats, inputs: tuple[str, ...]
) -> tuple[tuple[str, ...], Floats]:
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
    pre: Estimator | None, width: int, inputs: tuple[str, ...]
) -> list[tuple[str, list[int]]] | None:
    """Which transformed columns each input produced, for identity and ColumnTransformer steps."""
    if pre is None:
        return [(name, [i]) for i, name in enumerate(inputs)] if width == len(inputs) else None
    from sklearn.compose import ColumnTransformer

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
        if not _add_outputs(groups, transformer, [str(c) for c in columns], out):
            return None
    ordered = [(name, groups[name]) for name in inputs if name in groups]
    ordered += [(name, idx) for name, idx in groups.items() if name not in inputs]
    return ordered


def _add_outputs(groups: dict[str, list[int]], transformer: Estimator, columns: list[str],
                 out: list[int]) -> bool:
    """Add which of ``out`` each of ``columns`` produced; False when that is not known."""
    from sklearn.preprocessing import OneHotEncoder

    if isinstance(transformer, OneHotEncoder):
        sizes = _one_hot_sizes(transformer)
        if sizes is None or sum(sizes) != len(out):
            return False
        start = 0
        for column, size in zip(columns, sizes, strict=True):
            groups.setdefault(column, []).extend(out[start : start + size])
            start += size
        return True
    if len(columns) != len(out):
        return False
    for column, index in zip(columns, out, strict=True):
        groups.setdefault(column, []).append(index)
    return True


def _one_hot_sizes(encoder: OneHotEncoder) -> list[int] | None:
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
