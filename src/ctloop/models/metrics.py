"""Model metrics with bootstrap confidence intervals, vectorised over resamples.

Every metric is written once as a *weighted* formula over a matrix of weights
``W`` with one row per resample (``W[b, i]`` = how often row ``i`` was drawn in
resample ``b``). The point estimate is the same formula with all weights 1, so
intervals and values can never disagree in definition. Classification is
binary: ``y_score`` is the positive-class probability.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ctloop.core.errors import UserInputError

__all__ = [
    "CLASSIFICATION_METRICS",
    "HIGHER_IS_BETTER",
    "REGRESSION_METRICS",
    "bootstrap_weights",
    "metric_matrix",
    "metrics_with_ci",
    "paired_deltas",
]

CLASSIFICATION_METRICS = ("roc_auc", "log_loss", "accuracy", "precision", "recall", "f1")
REGRESSION_METRICS = ("rmse", "mae", "r2")
HIGHER_IS_BETTER = {
    "roc_auc": True,
    "log_loss": False,
    "accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "rmse": False,
    "mae": False,
    "r2": True,
}
_CHUNK_CELLS = 4_000_000  # resamples x rows per block, bounds memory to ~32 MB per matrix


def bootstrap_weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n)`` draw counts of ``n_boot`` resamples with replacement of ``n`` rows."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(n_boot, n))
    flat = (draws + (np.arange(n_boot) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # sklearn's zero_division=0 convention: an undefined ratio counts as 0.
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def _weighted_auc(w: np.ndarray, y: np.ndarray, score: np.ndarray) -> np.ndarray:
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
    w: np.ndarray, y: np.ndarray, score: np.ndarray, threshold: float
) -> dict[str, np.ndarray]:
    total = w.sum(axis=1)
    pred = (score >= threshold).astype(np.float64)
    tp = w @ (y * pred)
    fp = w @ ((1 - y) * pred)
    fn = w @ (y * (1 - pred))
    tn = total - tp - fp - fn
    eps = np.finfo(np.float64).eps
    p = np.clip(score, eps, 1 - eps)
    loss = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    return {
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


def _regression(w: np.ndarray, y: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    total = w.sum(axis=1)
    err = y - pred
    mean_y = (w @ y) / total
    sse = w @ (err * err)
    sst = w @ (y * y) - total * mean_y * mean_y
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(sst > 0, 1 - sse / np.where(sst > 0, sst, 1), np.nan)
    return {"rmse": np.sqrt(sse / total), "mae": (w @ np.abs(err)) / total, "r2": r2}


def _validate(y_true: Any, y_score: Any, task: str) -> tuple[np.ndarray, np.ndarray]:
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
    if task == "classification" and not np.isin(y, (0.0, 1.0)).all():
        raise UserInputError("Classification labels must be 0/1; got other values.")
    if task not in ("classification", "regression"):
        raise UserInputError(f"The 'task' must be classification or regression. Got {task!r}.")
    return y, s


def metric_matrix(
    w: np.ndarray, y_true: Any, y_score: Any, *, task: str, threshold: float = 0.5
) -> dict[str, np.ndarray]:
    """Every metric for every row of weights ``w`` (shape ``(resamples, rows)``)."""
    y, s = _validate(y_true, y_score, task)
    w = np.atleast_2d(np.asarray(w, dtype=np.float64))
    if task == "classification":
        return _classification(w, y, s, threshold)
    return _regression(w, y, s)


def _blocks(n_boot: int, n: int) -> list[tuple[int, int]]:
    step = max(1, _CHUNK_CELLS // max(n, 1))
    return [(start, min(start + step, n_boot)) for start in range(0, n_boot, step)]


def metrics_with_ci(
    y_true: Any,
    scores: dict[str, Any],
    *,
    task: str,
    threshold: float = 0.5,
    n_boot: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Metrics of several models' predictions on the same rows, with paired bootstrap CIs.

    All models share the same resamples, so their intervals (and the interval
    of their difference, ``paired_deltas``) are comparable. Returns, per model
    name, ``{"metrics": {name: {"value", "lo", "hi"}}, "confusion": {...}}``
    (confusion counts for classification).
    """
    y = np.asarray(y_true, dtype=np.float64)
    n = len(y)
    ones = np.ones((1, n))
    out: dict[str, dict[str, Any]] = {}
    samples: dict[str, dict[str, list[np.ndarray]]] = {m: {} for m in scores}
    for start, stop in _blocks(n_boot, n) if n_boot > 0 else []:
        w = bootstrap_weights(n, stop - start, seed + start)
        for model, score in scores.items():
            for key, values in metric_matrix(w, y, score, task=task, threshold=threshold).items():
                samples[model].setdefault(key, []).append(values)
    alpha = (1 - confidence) / 2
    names = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    for model, score in scores.items():
        point = metric_matrix(ones, y, score, task=task, threshold=threshold)
        boot = {k: np.concatenate(v) for k, v in samples[model].items()}
        metrics: dict[str, dict[str, float | None]] = {}
        for name in names:
            metrics[name] = {"value": _num(point[name][0]), **_interval(boot.get(name), alpha)}
        entry: dict[str, Any] = {"n": n, "metrics": metrics}
        if task == "classification":
            entry["confusion"] = {k: int(point[k][0]) for k in ("tp", "fp", "tn", "fn")}
        out[model] = entry
        out[model]["_boot"] = boot
    return out


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


def _interval(values: np.ndarray | None, alpha: float) -> dict[str, float | None]:
    if values is None or values.size == 0 or np.isnan(values).all():
        return {"lo": None, "hi": None}
    lo, hi = np.nanquantile(values, [alpha, 1 - alpha])
    return {"lo": float(lo), "hi": float(hi)}
