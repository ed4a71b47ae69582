"""Model metrics with bootstrap confidence intervals, vectorised over resamples.

Every metric is written once as a *weighted* formula over a matrix of weights
``W`` with one row per resample (``W[b, i]`` = how often row ``i`` was drawn in
resample ``b``). The point estimate is the same formula with all weights 1, so
intervals and values can never disagree in definition. Binary: ``y_score`` is
the positive-class probability and labels are 0/1. Multiclass: ``y_score`` is the
``(n, k)`` probability matrix in class order and labels are class indices
(:func:`encode_labels` maps class labels, strings included, to them); ``roc_auc``
is one-vs-rest, macro-averaged over the classes present. Regression: ``y_score``
is the predicted value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ctloop.core.arrays import Floats, Indices
from ctloop.core.errors import UserInputError
from ctloop.core.jsontypes import JSONValue
from ctloop.models.tasks import HIGHER_IS_BETTER, ClassLabel, class_label, metrics_for

__all__ = [
    "CLASSIFICATION_METRICS",
    "COST_METRIC",
    "HIGHER_IS_BETTER",
    "MULTICLASS_METRICS",
    "REGRESSION_METRICS",
    "Costs",
    "binary_labels",
    "bootstrap_weights",
    "encode_labels",
    "metric_matrix",
    "metric_value",
    "metrics_with_ci",
    "optimal_threshold",
    "paired_deltas",
    "residual_summary",
    "task_for_metrics",
]

CLASSIFICATION_METRICS = metrics_for("binary")
MULTICLASS_METRICS = metrics_for("multiclass")
REGRESSION_METRICS = metrics_for("regression")
COST_METRIC = "expected_cost"
_TASKS = ("classification", "binary", "multiclass", "regression")


def task_for_metrics(task: str) -> str:
    """``classification`` (the old name) as ``binary``; the others unchanged, checked."""
    if task == "classification":
        return "binary"
    if task not in _TASKS:
        raise UserInputError(
            f"The 'task' must be binary, multiclass or regression. Got {task!r}."
        )
    return task


@dataclass(frozen=True)
class Costs:
    """What each outcome of a binary decision costs, per row (``{fn = 5, fp = 1}``).

    Expected cost is the mean cost per row, so it compares across data sizes.
    """

    fn: float = 1.0
    fp: float = 1.0
    tp: float = 0.0
    tn: float = 0.0

    @classmethod
    def from_dict(cls, data: object) -> Costs:
        if isinstance(data, Costs):
            return data
        if not isinstance(data, dict) or not data:
            raise UserInputError(
                f"costs must be a mapping such as {{fn = 5, fp = 1}}. Got {data!r}."
            )
        unknown = set(data) - {"fn", "fp", "tp", "tn"}
        if unknown:
            raise UserInputError(f"costs take fn, fp, tp and tn only. Got {sorted(unknown)}.")
        values = {}
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
                raise UserInputError(f"The cost {key!r} must be a number. Got {value!r}.")
            values[key] = float(value)
        out = cls(**values)
        if out.fn <= out.tp or out.fp <= out.tn:
            raise UserInputError(
                "A wrong decision must cost more than the right one (fn > tp and fp > tn). "
                f"Got {data!r}."
            )
        return out

    def to_dict(self) -> dict[str, float]:
        return {"fn": self.fn, "fp": self.fp, "tp": self.tp, "tn": self.tn}

    @property
    def bayes_threshold(self) -> float:
        """The threshold that minimises expected cost when scores are calibrated."""
        return (self.fp - self.tn) / ((self.fp - self.tn) + (self.fn - self.tp))


def optimal_threshold(y_true: npt.ArrayLike, y_score: npt.ArrayLike, costs: Costs
                      ) -> tuple[float, float]:
    """The score threshold minimising the mean cost on these rows, and that cost.

    Every distinct score is a candidate (deciding 1 at and above it), plus "never 1".
    Ties in cost go to the threshold nearest the calibrated optimum
    (``costs.bayes_threshold``), so the choice does not hang on one row.
    """
    y = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(y_score, dtype=np.float64)
    if len(y) == 0:
        raise UserInputError("Cannot choose a threshold on zero rows.")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # deciding 1 for the top k rows (k = 0 .. n), cut only between distinct scores
    tp = np.concatenate([[0.0], np.cumsum(y_sorted)])
    fp = np.concatenate([[0.0], np.cumsum(1 - y_sorted)])
    pos, neg = tp[-1], fp[-1]
    cost = (costs.tp * tp + costs.fp * fp + costs.fn * (pos - tp) + costs.tn * (neg - fp))
    cost /= len(y)
    cuts = np.concatenate([[True], s_sorted[1:] != s_sorted[:-1], [True]])
    candidates = np.flatnonzero(cuts)  # k values where a threshold can fall
    # deciding 1 for the top k rows means a threshold at the k-th highest score
    thresholds = np.where(candidates == 0, np.inf, s_sorted[np.maximum(candidates - 1, 0)])
    values = cost[candidates]
    best = np.flatnonzero(values <= values.min() + 1e-12)
    distance = np.abs(np.where(np.isfinite(thresholds[best]), thresholds[best], 2.0)
                      - costs.bayes_threshold)
    pick = best[np.argmin(distance)]
    threshold = float(thresholds[pick]) if np.isfinite(thresholds[pick]) else 1.0 + 1e-9
    return threshold, float(values[pick])
_CHUNK_CELLS = 4_000_000  # resamples x rows per block, bounds memory to ~32 MB per matrix


def bootstrap_weights(n: int, n_boot: int, seed: int) -> Floats:
    """``(n_boot, n)`` draw counts of ``n_boot`` resamples with replacement of ``n`` rows."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_boot, n))
    flat = (draws + (np.arange(n_boot) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def _safe_div(num: Floats, den: Floats) -> Floats:
    # sklearn's zero_division=0 convention: an undefined ratio counts as 0.
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def _weighted_auc(w: Floats, y: Floats, score: Floats) -> Floats:
    """ROC AUC per row of ``w`` (Mann-Whitney, ties count one half); NaN with one class."""
    order = np.argsort(score, kind="mergesort")
    s, yy, ws = score[order], y[order], w[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    pos = np.add.reduceat(ws * yy, starts, axis=1)
    neg = np.add.reduceat(ws * (1 - yy), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos * (below + 0.5 * neg)).sum(axis=1) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def _classification(
    w: Floats, y: Floats, score: Floats, threshold: float,
    costs: Costs | None = None,
) -> dict[str, Floats]:
    total = w.sum(axis=1)
    pred = (score >= threshold).astype(np.float64)
    tp = w @ (y * pred)
    fp = w @ ((1 - y) * pred)
    fn = w @ (y * (1 - pred))
    tn = total - tp - fp - fn
    eps = np.finfo(np.float64).eps
    p = np.clip(score, eps, 1 - eps)
    loss = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    extra = {}
    if costs is not None:
        spent = costs.tp * tp + costs.fp * fp + costs.fn * fn + costs.tn * tn
        extra[COST_METRIC] = spent / total
    return {
        **extra,
        "roc_auc": _weighted_auc(w, y, score),
        "log_loss": (w @ loss) / total,
        "accuracy": (tp + tn) / total,
        "precision": _safe_div(tp, tp + fp),
        "recall": _safe_div(tp, tp + fn),
        "f1": _safe_div(2 * tp, 2 * tp + fp + fn),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


def _one_hot(index: Indices, k: int) -> Floats:
    out = np.zeros((len(index), k))
    out[np.arange(len(index)), index] = 1.0
    return out


def _multiclass(w: Floats, y: Indices, proba: Floats) -> dict[str, Floats]:
    """Multiclass metrics per row of ``w``; ``y`` holds class indices, ``proba`` is (n, k)."""
    n, k = proba.shape
    total = w.sum(axis=1)
    truth = _one_hot(y, k)
    decided = _one_hot(np.argmax(proba, axis=1), k)
    tp = w @ (truth * decided)  # (B, k)
    support = w @ truth
    predicted = w @ decided
    f1 = _safe_div(2 * tp, support + predicted)
    present = (support + predicted) > 0
    eps = np.finfo(np.float64).eps
    p_true = np.clip(proba[np.arange(n), y], eps, 1.0)
    aucs = np.column_stack([_weighted_auc(w, truth[:, c], proba[:, c]) for c in range(k)])
    defined = ~np.isnan(aucs)
    with np.errstate(invalid="ignore", divide="ignore"):
        roc_auc = np.where(defined.sum(axis=1) >= 2,
                           np.nansum(aucs, axis=1) / defined.sum(axis=1), np.nan)
    return {
        "accuracy": tp.sum(axis=1) / total,
        "macro_f1": (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1),
        "weighted_f1": (support * f1).sum(axis=1) / total,
        "log_loss": (w @ -np.log(p_true)) / total,
        "roc_auc": roc_auc,
        "class_tp": tp,
        "class_support": support,
        "class_predicted": predicted,
    }


def _regression(w: Floats, y: Floats, pred: Floats) -> dict[str, Floats]:
    total = w.sum(axis=1)
    err = y - pred
    mean_y = (w @ y) / total
    sse = w @ (err * err)
    sst = w @ (y * y) - total * mean_y * mean_y
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(sst > 0, 1 - sse / np.where(sst > 0, sst, 1), np.nan)
    # scikit-learn's definition: |error| / max(|y|, eps), so a zero label gives a huge term
    relative = np.abs(err) / np.maximum(np.abs(y), np.finfo(np.float64).eps)
    return {"rmse": np.sqrt(sse / total), "mae": (w @ np.abs(err)) / total, "r2": r2,
            "mape": (w @ relative) / total}


def _validate(y_true: npt.ArrayLike, y_score: npt.ArrayLike, task: str
              ) -> tuple[Floats, Floats]:
    """Binary or regression labels and scores as floats, checked (multiclass: below)."""
    y = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(y_score, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise UserInputError(
            f"Labels and predictions must be 1-D of equal length. Got {y.shape} and {s.shape}."
        )
    if len(y) == 0:
        raise UserInputError("Cannot compute metrics on zero rows; the evaluation set is empty.")
    if np.isnan(y).any():
        raise UserInputError("The label column has missing values; drop or fill them first.")
    if task == "binary" and not np.isin(y, (0.0, 1.0)).all():
        raise UserInputError("Classification labels must be 0/1; got other values.")
    return y, s


def _validate_multiclass(y_true: npt.ArrayLike, y_score: npt.ArrayLike
                         ) -> tuple[Indices, Floats]:
    s = np.asarray(y_score, dtype=np.float64)
    y = np.asarray(y_true)
    if s.ndim != 2 or y.ndim != 1 or len(y) != s.shape[0]:
        raise UserInputError(
            "Multiclass metrics need class indices (n,) and probabilities (n, classes). "
            f"Got {y.shape} and {s.shape}."
        )
    if len(y) == 0:
        raise UserInputError("Cannot compute metrics on zero rows; the evaluation set is empty.")
    if not np.issubdtype(y.dtype, np.integer) or (y < 0).any() or (y >= s.shape[1]).any():
        raise UserInputError(
            "Multiclass labels must be class indices 0..k-1 (map labels with encode_labels)."
        )
    return y.astype(np.int64), s


def encode_labels(
    y_true: npt.ArrayLike, classes: Sequence[ClassLabel] | None
) -> tuple[Indices, list[ClassLabel]]:
    """Class labels (strings allowed) as indices into ``classes``, and the classes used.

    A label that is not among ``classes`` (a class the model never saw) is appended, so
    it counts as a class the model always misses rather than an error. Labels match a
    class equal to them or to their text (``"3"`` is class 3, as logs may store it).
    """
    known: list[ClassLabel] = [class_label(c) for c in (classes or [])]
    lookup: dict[object, int] = {}
    for i, c in enumerate(known):
        lookup.setdefault(c, i)
        lookup.setdefault(str(c), i)
    values = np.asarray(y_true, dtype=object)
    if len(values) and any(v is None or v != v for v in values.tolist()):
        raise UserInputError("The label column has missing values; drop or fill them first.")
    index = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values.tolist()):
        label = class_label(value)
        position = lookup.get(label, lookup.get(str(label)))
        if position is None:
            position = len(known)
            known.append(label)
            lookup[label] = lookup[str(label)] = position
        index[i] = position
    return index, known


def metric_matrix(
    w: npt.ArrayLike, y_true: npt.ArrayLike, y_score: npt.ArrayLike, *, task: str,
    threshold: float = 0.5, costs: Costs | None = None,
) -> dict[str, Floats]:
    """Every metric for every row of weights ``w`` (shape ``(resamples, rows)``).

    With ``costs`` (binary), also ``expected_cost``: mean cost per row. Multiclass
    takes class indices and an ``(n, k)`` probability matrix.
    """
    kind = task_for_metrics(task)
    if kind == "multiclass":
        index, proba = _validate_multiclass(y_true, y_score)
        return _multiclass(np.atleast_2d(np.asarray(w, dtype=np.float64)), index, proba)
    y, s = _validate(y_true, y_score, kind)
    weights = np.atleast_2d(np.asarray(w, dtype=np.float64))
    if kind == "binary":
        return _classification(weights, y, s, threshold, costs)
    return _regression(weights, y, s)


def metric_value(
    y_true: npt.ArrayLike, y_score: npt.ArrayLike, metric: str, *, threshold: float = 0.5,
    classes: Sequence[ClassLabel] | None = None,
) -> float | None:
    """One metric on these rows, None where it is undefined (one class for roc_auc).

    The task follows the metric and the scores: regression metrics take values, an
    ``(n, k)`` score matrix is multiclass (labels mapped through ``classes``), a vector
    is binary (labels 0/1, or ``classes[1]`` the positive class).
    """
    if metric not in HIGHER_IS_BETTER:
        raise UserInputError(
            f"Unknown metric {metric!r}; use one of {', '.join(HIGHER_IS_BETTER)}.")
    scores = np.asarray(y_score, dtype=np.float64)
    ones = np.ones((1, len(scores)))
    if metric in REGRESSION_METRICS:
        values = metric_matrix(ones, np.asarray(y_true, dtype=np.float64), scores,
                               task="regression")
    elif scores.ndim == 2:  # without classes, the columns are classes 0..k-1
        index, used = encode_labels(y_true, classes or list(range(scores.shape[1])))
        if len(used) > scores.shape[1]:
            scores = np.hstack([scores, np.zeros((len(scores), len(used) - scores.shape[1]))])
        values = metric_matrix(ones, index, scores, task="multiclass")
    else:
        values = metric_matrix(ones, binary_labels(y_true, classes), scores, task="binary",
                               threshold=threshold)
    if metric not in values:
        return None
    value = float(values[metric][0])
    return None if np.isnan(value) else value


def binary_labels(y_true: npt.ArrayLike, classes: Sequence[ClassLabel] | None = None
                  ) -> Floats:
    """A binary label as 0/1 floats: numbers as they are, else 1 for ``classes[1]``."""
    values = np.asarray(y_true)
    if classes is not None and len(classes) == 2 and not np.issubdtype(values.dtype, np.number):
        positive = class_label(classes[1])
        return np.asarray([class_label(v) == positive or str(v) == str(positive)
                           for v in values.tolist()], dtype=np.float64)
    return np.asarray(values, dtype=np.float64)


def _blocks(n_boot: int, n: int) -> list[tuple[int, int]]:
    step = max(1, _CHUNK_CELLS // max(n, 1))
    return [(start, min(start + step, n_boot)) for start in range(0, n_boot, step)]


def metrics_with_ci(
    y_true: npt.ArrayLike,
    scores: Mapping[str, npt.ArrayLike],
    *,
    task: str,
    threshold: float | dict[str, float] = 0.5,
    n_boot: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    costs: Costs | None = None,
    classes: Sequence[ClassLabel] | None = None,
) -> dict[str, dict[str, Any]]:
    """Metrics of several models' predictions on the same rows, with paired bootstrap CIs.

    ``threshold`` is one for all models or one per model (each at its own decision
    threshold); with ``costs``, ``expected_cost`` is among the metrics.

    All models share the same resamples, so their intervals (and the interval
    of their difference, ``paired_deltas``) are comparable. Returns, per model
    name, ``{"metrics": {name: {"value", "lo", "hi"}}, "confusion": {...}}``
    (confusion counts for binary). Classification also gets ``classes``,
    ``per_class`` (precision, recall, f1, support, predicted per class, keyed by the
    class as text) and, multiclass, ``confusion_matrix`` (rows true, columns predicted,
    in ``classes`` order). Multiclass labels are class indices into ``classes``.
    """
    kind = task_for_metrics(task)
    y = np.asarray(y_true, dtype=np.int64 if kind == "multiclass" else np.float64)
    n = len(y)
    ones = np.ones((1, n))
    out: dict[str, dict[str, Any]] = {}
    samples: dict[str, dict[str, list[Floats]]] = {m: {} for m in scores}
    for start, stop in _blocks(n_boot, n) if n_boot > 0 else []:
        w = bootstrap_weights(n, stop - start, seed + start)
        for model, score in scores.items():
            for key, values in metric_matrix(
                w, y, score, task=task, threshold=_for(threshold, model), costs=costs
            ).items():
                if not key.startswith("class_"):
                    samples[model].setdefault(key, []).append(values)
    alpha = (1 - confidence) / 2
    names = metrics_for(kind)  # type: ignore[arg-type]
    if costs is not None and kind == "binary":
        names = (*names, COST_METRIC)
    for model, score in scores.items():
        point = metric_matrix(
            ones, y, score, task=task, threshold=_for(threshold, model), costs=costs
        )
        boot = {k: np.concatenate(v) for k, v in samples[model].items()}
        metrics: dict[str, dict[str, float | None]] = {}
        for name in names:
            metrics[name] = {"value": _num(point[name][0]), **_interval(boot.get(name), alpha)}
        entry: dict[str, Any] = {"n": n, "metrics": metrics}
        if kind == "binary":
            entry["confusion"] = {k: int(point[k][0]) for k in ("tp", "fp", "tn", "fn")}
            names_of = [class_label(c) for c in (classes or (0, 1))]
            entry["classes"] = names_of
            entry["per_class"] = _binary_table(entry["confusion"], names_of)
        elif kind == "multiclass":
            k = np.asarray(score).shape[1]
            names_of = [class_label(c) for c in (classes or range(k))]
            decided = np.argmax(np.asarray(score), axis=1)
            matrix = np.bincount(y * k + decided, minlength=k * k).reshape(k, k)
            entry["classes"] = names_of
            entry["confusion_matrix"] = matrix.tolist()
            entry["per_class"] = _table(names_of, point["class_tp"][0],
                                        point["class_support"][0], point["class_predicted"][0])
        else:
            entry["residuals"] = residual_summary(np.asarray(y, dtype=np.float64),
                                                  np.asarray(score, dtype=np.float64))
        out[model] = entry
        out[model]["_boot"] = boot
    return out


def residual_summary(y: Floats, pred: Floats, bins: int = 20) -> dict[str, JSONValue]:
    """Residuals (label - prediction) of a regression: mean, quantiles and a histogram,
    what the model pages and ``ctloop models show`` draw instead of a confusion matrix."""
    residual = y - pred
    finite = residual[np.isfinite(residual)]
    if finite.size == 0:
        return {"n": 0}
    quantiles = np.quantile(finite, [0.05, 0.25, 0.5, 0.75, 0.95])
    counts, edges = np.histogram(finite, bins=bins)
    return {
        "n": int(finite.size),
        "mean": float(finite.mean()),
        "quantiles": {q: float(v) for q, v in zip(
            ("p05", "p25", "p50", "p75", "p95"), quantiles.tolist(), strict=True)},
        "histogram": {"edges": [float(e) for e in edges], "counts": counts.tolist()},
    }


def _table(
    classes: Sequence[ClassLabel], tp: Floats, support: Floats, predicted: Floats
) -> dict[str, dict[str, float | int | None]]:
    """Per-class precision, recall, f1 (None where undefined), support and predicted counts."""
    rows: dict[str, dict[str, float | int | None]] = {}
    for c, t, s, p in zip(classes, tp.tolist(), support.tolist(), predicted.tolist(), strict=True):
        rows[str(c)] = {
            "precision": t / p if p else None,
            "recall": t / s if s else None,
            "f1": 2 * t / (s + p) if s + p else None,
            "support": int(s),
            "predicted": int(p),
        }
    return rows


def _binary_table(
    confusion: dict[str, int], classes: Sequence[ClassLabel]
) -> dict[str, dict[str, float | int | None]]:
    tp, fp, tn, fn = (confusion[k] for k in ("tp", "fp", "tn", "fn"))
    return _table(classes, np.array([tn, tp]), np.array([tn + fp, tp + fn]),
                  np.array([tn + fn, tp + fp]))


def _for(threshold: float | dict[str, float], model: str) -> float:
    return threshold.get(model, 0.5) if isinstance(threshold, dict) else threshold


def paired_deltas(
    results: dict[str, dict[str, Any]], candidate: str, baseline: str, confidence: float = 0.95
) -> dict[str, dict[str, float | None]]:
    """``candidate - baseline`` per metric with a CI from the shared resamples."""
    alpha = (1 - confidence) / 2
    deltas: dict[str, dict[str, float | None]] = {}
    for name, cand in results[candidate]["metrics"].items():
        base = results[baseline]["metrics"][name]
        value = None
        if cand["value"] is not None and base["value"] is not None:
            value = cand["value"] - base["value"]
        boot_c = results[candidate].get("_boot", {}).get(name)
        boot_b = results[baseline].get("_boot", {}).get(name)
        diff = None if boot_c is None or boot_b is None else boot_c - boot_b
        deltas[name] = {"value": value, **_interval(diff, alpha)}
    return deltas


def _num(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def _interval(values: Floats | None, alpha: float) -> dict[str, float | None]:
    if values is None or values.size == 0 or np.isnan(values).all():
        return {"lo": None, "hi": None}
    lo, hi = np.nanquantile(values, [alpha, 1 - alpha])
    return {"lo": float(lo), "hi": float(hi)}
