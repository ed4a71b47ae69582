"""Evaluate candidate and champion on the same rows, overall and per slice.

Both models are scored on identical data and identical bootstrap resamples,
so the gate compares like with like and the interval of their difference is
meaningful. Slices are the values of chosen columns (origin airport, carrier):
a model can be better on average and still much worse for one airport.

With ``costs`` (``{fn = 5, fp = 1}``), every model decides at its own threshold:
the candidate at the one minimising expected cost on these rows
(:func:`ctloop.models.metrics.optimal_threshold`), the champion at the one stored
with it (``metadata.decision_threshold``); ``expected_cost`` joins the metrics
so the gate can compare it, and the report's ``decision_thresholds`` says which
threshold to store with the candidate.

Multiclass models answer ``(n, k)`` probabilities in their own class order; models
that know different classes (a class that appeared later) are compared on the union
of their classes and the labels' (a class a model lacks has probability 0), so a
class the champion never saw counts against it, not as an error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ctloop.core.arrays import Cell, Floats, Indices
from ctloop.core.errors import UserInputError
from ctloop.models.flavors import LoadedModel
from ctloop.models.metrics import (
    Costs,
    binary_labels,
    encode_labels,
    metrics_with_ci,
    optimal_threshold,
    paired_deltas,
)
from ctloop.models.tasks import ClassLabel, class_label, normalize_task

__all__ = ["evaluate_models", "evaluate_predictions"]


def _strip(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m: {k: v for k, v in r.items() if k != "_boot"} for m, r in results.items()}


def evaluate_predictions(
    data: pd.DataFrame,
    predictions: Mapping[str, npt.ArrayLike],
    *,
    label: str,
    task: str = "classification",
    slice_columns: Sequence[str] = (),
    threshold: float = 0.5,
    n_boot: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    candidate: str | None = None,
    baseline: str | None = None,
    costs: Costs | dict[str, float] | None = None,
    thresholds: Mapping[str, float] | None = None,
    classes: Sequence[ClassLabel] | Mapping[str, Sequence[ClassLabel]] | None = None,
) -> dict[str, Any]:
    """Metrics of precomputed predictions (one array per model, aligned with ``data``).

    ``classes`` name the columns of classification scores: one list for every model or
    one per model (multiclass models may know different classes); binary labels that are
    not 0/1 count ``classes[1]`` as positive.

    With ``candidate`` and ``baseline`` both among the models, the report also
    holds ``deltas`` (candidate minus baseline) overall and per slice.
    ``thresholds`` give some models their own decision threshold (others use
    ``threshold``); with ``costs``, models without one get the cost-minimising
    threshold on these rows, and ``expected_cost`` is reported.
    """
    _check_columns(data, label, slice_columns)
    kind = normalize_task(task) or "binary"
    if data[label].isna().any():
        raise UserInputError("The label column has missing values; drop or fill them first.")
    scores = {name: np.asarray(p, dtype=np.float64) for name, p in predictions.items()}
    y, union, scores = _labels(kind, data[label], scores, _classes_per_model(classes, scores))
    cost_model = Costs.from_dict(costs) if costs is not None else None
    if cost_model is not None and kind != "binary":
        raise UserInputError(f"costs apply to binary classification; this evaluation is {kind}.")
    per_model = _decision_thresholds(y, scores, cost_model, thresholds, threshold)
    options: dict[str, Any] = {
        "task": kind, "threshold": per_model, "n_boot": n_boot, "confidence": confidence,
        "costs": cost_model, "classes": union,
    }
    compare = candidate in scores and baseline in scores
    overall = metrics_with_ci(y, scores, seed=seed, **options)
    report: dict[str, Any] = {
        "label": label,
        "task": kind,
        "classes": union,
        "threshold": threshold,
        "n_rows": len(data),
        "n_boot": n_boot,
        "confidence": confidence,
        "seed": seed,
        "slice_columns": list(slice_columns),
        "decision_thresholds": per_model if kind == "binary" else {},
        "costs": cost_model.to_dict() if cost_model is not None else None,
        "models": {name: {"overall": r, "slices": {}} for name, r in _strip(overall).items()},
    }
    if compare:
        report["deltas"] = {
            "candidate": candidate,
            "baseline": baseline,
            "overall": paired_deltas(overall, candidate, baseline, confidence),  # type: ignore[arg-type]
            "slices": {},
        }
    for column, key, index in _slices(data, slice_columns):
        part = metrics_with_ci(
            y[index], {m: s[index] for m, s in scores.items()}, seed=seed, **options
        )
        for name, result in _strip(part).items():
            report["models"][name]["slices"].setdefault(column, {})[key] = result
        if compare:
            report["deltas"]["slices"].setdefault(column, {})[key] = {
                "n": len(index),
                "metrics": paired_deltas(part, candidate, baseline, confidence),  # type: ignore[arg-type]
            }
    return report


def _check_columns(data: pd.DataFrame, label: str, slice_columns: Sequence[str]) -> None:
    missing = [c for c in (label, *slice_columns) if c not in data.columns]
    if missing:
        raise UserInputError(
            f"The evaluation set is missing column(s) {missing} (label or slice columns); "
            f"it has {list(data.columns)}."
        )


def _labels(kind: str, labels: pd.Series[Cell], scores: dict[str, Floats],
            classes: dict[str, list[ClassLabel]]
            ) -> tuple[Floats | Indices, list[ClassLabel] | None, dict[str, Floats]]:
    """The labels as the metrics take them, the class names, and the scores (widened to
    the union of the models' classes for a multiclass evaluation)."""
    if kind == "multiclass":
        return _align_multiclass(labels, scores, classes)
    if kind == "binary":
        names = next(iter(classes.values()), None) if classes else None
        return binary_labels(labels.to_numpy(), names), list(names) if names else None, scores
    values = np.asarray(labels.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    return values, None, scores


def _decision_thresholds(y: Floats | Indices, scores: Mapping[str, Floats],
                         costs: Costs | None, thresholds: Mapping[str, float] | None,
                         threshold: float) -> dict[str, float]:
    """Each model's threshold: its own, else the cost-minimising one, else ``threshold``."""
    chosen = dict(thresholds or {})
    if costs is not None and not np.isnan(y).any():
        for name, score in scores.items():
            if name not in chosen:
                chosen[name] = optimal_threshold(y, score, costs)[0]
    return {name: chosen.get(name, threshold) for name in scores}


def _slices(data: pd.DataFrame, slice_columns: Sequence[str]
            ) -> Iterator[tuple[str, str, Indices]]:
    """Every slice: its column, its value as text (``<missing>`` for null), its rows."""
    for column in slice_columns:
        groups = data.groupby(column, observed=True, dropna=False, sort=True).indices
        for value, index in groups.items():
            key = "<missing>" if pd.isna(value) else str(value)  # type: ignore[call-overload]  # a group key is a scalar; pandas-stubs types it Hashable
            yield column, key, np.asarray(index)  # already an array: no copy


def _classes_per_model(
    classes: Sequence[ClassLabel] | Mapping[str, Sequence[ClassLabel]] | None,
    scores: Mapping[str, Floats],
) -> dict[str, list[ClassLabel]]:
    if classes is None:
        return {}
    if isinstance(classes, Mapping):
        return {m: [class_label(c) for c in cs] for m, cs in classes.items() if cs is not None}
    return {m: [class_label(c) for c in classes] for m in scores}


def _align_multiclass(
    labels: pd.Series[Cell], scores: dict[str, Floats], classes: dict[str, list[ClassLabel]]
) -> tuple[Indices, list[ClassLabel], dict[str, Floats]]:
    """Labels as indices into the union of every model's classes; scores widened to it."""
    union: list[ClassLabel] = []
    for name, score in scores.items():
        if score.ndim != 2:
            raise UserInputError(
                f"Model {name!r} answered {score.shape} for a multiclass evaluation; a "
                "multiclass model answers one probability per class (rows, classes)."
            )
        own = classes.get(name) or list(range(score.shape[1]))
        if len(own) != score.shape[1]:
            raise UserInputError(
                f"Model {name!r} answered {score.shape[1]} probabilities per row but names "
                f"{len(own)} classes ({own})."
            )
        union += [c for c in own if c not in union]
    y, union = encode_labels(labels.to_numpy(), union)
    aligned = {}
    for name, score in scores.items():
        own = classes.get(name) or list(range(score.shape[1]))
        wide = np.zeros((len(score), len(union)))
        wide[:, [union.index(c) for c in own]] = score
        aligned[name] = wide
    return y, union, aligned


def evaluate_models(
    models: Mapping[str, LoadedModel],
    data: pd.DataFrame,
    *,
    label: str,
    slice_columns: Sequence[str] = (),
    threshold: float = 0.5,
    n_boot: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    candidate: str | None = "candidate",
    baseline: str | None = "champion",
    costs: Costs | dict[str, float] | None = None,
) -> dict[str, Any]:
    """Score every model on ``data`` and evaluate them together (see ``evaluate_predictions``).

    With ``costs``, the ``candidate`` gets the cost-minimising threshold on ``data``
    and every other model decides at the threshold stored with it.
    Raises ``UserInputError`` naming any column a model needs that ``data`` lacks.
    """
    if not models:
        raise UserInputError("Give at least one model to evaluate.")
    tasks = {normalize_task(m.task) or "binary" for m in models.values()}
    if len(tasks) > 1:
        raise UserInputError(f"Models of different tasks cannot be compared: {sorted(tasks)}.")
    predictions = {
        name: model.predict(data, what=f"The evaluation set (for model {name!r})")
        for name, model in models.items()
    }
    return evaluate_predictions(
        data,
        predictions,
        label=label,
        task=tasks.pop(),
        slice_columns=slice_columns,
        threshold=threshold,
        n_boot=n_boot,
        confidence=confidence,
        seed=seed,
        candidate=candidate,
        baseline=baseline,
        costs=costs,
        thresholds=(
            {n: m.decision_threshold for n, m in models.items() if n != candidate}
            if costs is not None
            else None
        ),
        classes={n: list(m.signature.classes) for n, m in models.items()
                 if m.signature.classes is not None},
    )
