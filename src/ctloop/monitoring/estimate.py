"""Label-free performance estimates of a binary classifier (confidence-based, CBPE-style).

Labels arrive days after predictions, or never; a calibrated score is already
the probability that the label is 1, so the confusion matrix a window *would*
have is its expectation under those probabilities (NannyML's CBPE):
``E[TP] = sum of p over rows decided 1``, ``E[FN] = sum of p over rows decided 0``
and so on; ROC AUC is the probability-weighted Mann-Whitney statistic. Those
give accuracy, precision, recall, F1, AUC and expected cost without labels.

The band is the spread of the metric a window of this size would realise if
its labels were drawn from those probabilities (Monte Carlo, seeded): the
estimate cannot be sharper than that even when calibration is perfect. Every
metric is a function of three sums over the labels, so a large window draws
those sums from their normal approximation instead of every label (O(n), not
O(n * n_sim)); a small one draws the labels.

Scores are calibrated with the isotonic map stored with the model
(``ctloop.models.calibration``); without one they are used as they are, and
the result says so. The estimate holds while the relation between inputs and
label stays the same (covariate shift) and the model stays calibrated where the
inputs moved: on the tests' generator it is within 0.005 of the realised AUC up
to a moderate shift and overestimates it by 0.02-0.035 under a strong one. A
concept shift is caught only when labels arrive, which is why the realised
metric and the estimate's error are recorded beside it when labelled rows are
in the window.

Multiclass models are estimated the same way from their per-class probabilities
(``estimate_multiclass``), calibrated one-vs-rest per class when the model stores
maps (``class_calibration``): the expected per-class confusion counts give accuracy,
macro and weighted F1 and the one-vs-rest AUC; the band draws each row's class from
its probabilities. A regression has no probability to read an error from, so its
estimate is refused with the reason (``check_estimable``), never silently skipped;
decay on labels is its monitor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypeAlias

import numpy as np
import numpy.typing as npt

from ctloop.core.arrays import Floats, Indices
from ctloop.core.errors import UserInputError
from ctloop.core.jsontypes import JSONObject, JSONValue, as_list, as_number, as_object, as_str
from ctloop.models.calibration import Calibration, calibration_of
from ctloop.models.evaluation_record import Evaluation
from ctloop.models.metrics import Costs, metric_matrix
from ctloop.models.tasks import Task, normalize_task
from ctloop.monitoring.monitors import (
    MonitorResult,
    MonitorStatus,
    _window,
    served_rows,
    verdict,
)
from ctloop.requestlog.records import PredictionLog

if TYPE_CHECKING:
    import pandas as pd

    from ctloop.artifacts.base import ArtifactStore
    from ctloop.metadata.base import ModelStore

__all__ = [
    "ESTIMATED_METRICS",
    "MULTICLASS_ESTIMATED",
    "Estimate",
    "check_estimable",
    "check_estimated_performance",
    "estimate_multiclass",
    "estimate_performance",
]

ESTIMATED_METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1", "expected_cost")
MULTICLASS_ESTIMATED = ("accuracy", "macro_f1", "weighted_f1", "roc_auc")
HIGHER = {
    "roc_auc": True,
    "accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "macro_f1": True,
    "weighted_f1": True,
    "expected_cost": False,
}


def check_estimable(task: str, metric: str) -> str:
    """``metric`` if a ``task`` model's ``metric`` can be estimated without labels, else one
    line saying why not (a regression: no probabilities to read an error from)."""
    from ctloop.models.tasks import normalize_task

    kind = normalize_task(task)
    if kind == "regression":
        raise UserInputError(
            f"A regression model's {metric} cannot be estimated without labels: it answers "
            "values, not probabilities to read an expected error from. Monitor it with "
            "decay on labels (rmse, mae) instead of the estimate."
        )
    allowed = MULTICLASS_ESTIMATED if kind == "multiclass" else ESTIMATED_METRICS
    if metric not in allowed:
        raise UserInputError(
            f"Cannot estimate {metric!r} for a {kind} model; choose one of {allowed}."
        )
    return metric


@dataclass(frozen=True)
class Estimate:
    """One metric's estimate and the band of what the window would realise."""

    value: float | None
    lo: float | None
    hi: float | None

    def to_dict(self) -> dict[str, float | None]:
        return {"value": self.value, "lo": self.lo, "hi": self.hi}


Judge: TypeAlias = Callable[[MonitorStatus, float | None, float | None, str], MonitorResult]
"""A monitor's verdict from its status, value, limit and note (``verdict`` bound to a window)."""


# Below this variance of the expected true- or false-negative count, label draws are
# exact Bernoulli; above it their sums are normal draws (see ``_simulate_normal``).
NORMAL_MIN_VARIANCE = 50.0


def _ordered(score: Floats) -> tuple[Indices, Indices]:
    """The stable sort order of ``score`` and where each run of tied scores starts in it.

    Sorted once per window: the expected AUC, the mid-ranks and the band all read it.
    """
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    return order, np.flatnonzero(np.r_[True, s[1:] != s[:-1]])


def _midranks(order: Indices, starts: Indices) -> Floats:
    """Mid-ranks (1-based, ties share their mean rank) in the original row order.

    The same numbers as ``scipy.stats.rankdata(score)``, from the sort already made.
    """
    n = order.size
    ends = np.r_[starts[1:], n]
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
    return ranks


def _expected_auc(p_sorted: Floats, starts: Indices) -> float:
    """P(score of a positive > score of a negative) with labels ~ Bernoulli(p); ties 1/2.

    ``p_sorted`` is p in ascending score order and ``starts`` its runs of tied scores
    (:func:`_ordered`): one pass of cumulative sums, no pairs.
    """
    pos = np.add.reduceat(p_sorted, starts)
    neg = np.add.reduceat(1 - p_sorted, starts)
    below = np.cumsum(neg) - neg
    total_pos, total_neg = pos.sum(), neg.sum()
    # (the pairing of a row with itself, included in these sums, is negligible for n >> 1)
    if total_pos <= 0 or total_neg <= 0:
        return float("nan")
    return float((pos * (below + 0.5 * neg)).sum() / (total_pos * total_neg))


def estimate_performance(
    scores: npt.ArrayLike,
    *,
    calibration: Calibration | None = None,
    threshold: float = 0.5,
    costs: Costs | None = None,
    n_sim: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Estimate]:
    """Estimated metrics of a window of scores, with a ``confidence`` band each."""
    raw = np.asarray(scores, dtype=np.float64)
    raw = raw[np.isfinite(raw)]
    if raw.size == 0:
        raise UserInputError("No finite scores to estimate performance from.")
    p = np.clip(calibration.apply(raw) if calibration is not None else raw, 0.0, 1.0)
    decided = (raw >= threshold).astype(np.float64)
    n = raw.size
    order, starts = _ordered(raw)
    tp, fp = float(p @ decided), float((1 - p) @ decided)
    fn, tn = float(p @ (1 - decided)), float((1 - p) @ (1 - decided))
    point: dict[str, float | None] = {
        "roc_auc": _expected_auc(p[order], starts),
        "accuracy": (tp + tn) / n,
        "precision": tp / (tp + fp) if tp + fp > 0 else 0.0,
        "recall": tp / (tp + fn) if tp + fn > 0 else 0.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else 0.0,
    }
    if costs is not None:
        point["expected_cost"] = (costs.tp * tp + costs.fp * fp + costs.fn * fn + costs.tn * tn) / n
    sims = _simulate(p, decided, _midranks(order, starts), costs, n_sim, seed)
    alpha = (1 - confidence) / 2
    out = {}
    for name, value in point.items():
        drawn = sims.get(name)
        lo = hi = None
        if drawn is not None and np.isfinite(drawn).any():
            lo, hi = (float(v) for v in np.nanquantile(drawn, [alpha, 1 - alpha]))
        out[name] = Estimate(
            None if value is None or not np.isfinite(value) else float(value), lo, hi
        )
    return out


def estimate_multiclass(
    proba: npt.ArrayLike, *, calibrated: npt.ArrayLike | None = None, n_sim: int = 200,
    confidence: float = 0.95, seed: int = 0,
) -> dict[str, Estimate]:
    """Estimated multiclass metrics of a window of (n, k) probabilities, with bands.

    Expected counts per class c: TP = sum of p_c over rows decided c, FP = sum of
    1 - p_c over them, FN = sum of p_c over the other rows. The band draws every row's
    class from its probabilities ``n_sim`` times (seeded) and reads accuracy and F1
    off each draw; the AUC (one-vs-rest, macro, probability-weighted) has a point only.
    The model decides by ``proba`` (its answers); ``calibrated`` (the same rows through
    the stored per-class maps) are the probabilities the labels are expected from.
    """
    raw = np.asarray(proba, dtype=np.float64)
    if raw.ndim != 2 or raw.shape[0] == 0:
        raise UserInputError("No per-class probabilities to estimate performance from.")
    p = np.clip(raw if calibrated is None else np.asarray(calibrated, dtype=np.float64), 0, 1)
    p = p / np.maximum(p.sum(axis=1, keepdims=True), np.finfo(np.float64).tiny)
    n, k = p.shape
    decided = np.argmax(raw, axis=1)
    hit = np.zeros((n, k))
    hit[np.arange(n), decided] = 1.0
    tp = (p * hit).sum(axis=0)
    predicted = hit.sum(axis=0)
    support = p.sum(axis=0)
    aucs = []
    for c in range(k):
        order, starts = _ordered(raw[:, c])
        aucs.append(_expected_auc(p[order, c], starts))
    finite = [a for a in aucs if np.isfinite(a)]
    point = {
        "accuracy": float(tp.sum() / n),
        **{name: float(value[0]) for name, value in
           _f1s(tp[None, :], support[None, :], predicted[None, :], n).items()},
        "roc_auc": float(np.mean(finite)) if len(finite) >= 2 else None,
    }
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(p, axis=1)
    draws = (rng.random((n_sim, n, 1)) > cumulative[None, :, :]).sum(axis=2)  # (n_sim, n)
    draws = np.minimum(draws, k - 1)
    drawn_tp = np.stack([np.bincount(d[d == decided], minlength=k) for d in draws]
                        ).astype(np.float64)  # counts, exact in float64
    drawn_support = np.stack([np.bincount(d, minlength=k) for d in draws]).astype(np.float64)
    sims = {"accuracy": drawn_tp.sum(axis=1) / n,
            **_f1s(drawn_tp, drawn_support, np.broadcast_to(predicted, drawn_tp.shape), n)}
    alpha = (1 - confidence) / 2
    out = {}
    for name, value in point.items():
        band = sims.get(name)
        lo = hi = None
        if isinstance(band, np.ndarray):
            lo, hi = (float(v) for v in np.quantile(band, [alpha, 1 - alpha]))
        out[name] = Estimate(None if value is None else float(value), lo, hi)
    return out


def _f1s(tp: Floats, support: Floats, predicted: Floats, n: int) -> dict[str, Floats]:
    """Macro and weighted F1 of each row of per-class counts (a window, or one draw a row)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
    present = (support + predicted) > 0
    macro = (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    weighted = (support * f1).sum(axis=1) / n
    return {"macro_f1": macro, "weighted_f1": weighted}


def _simulate(
    p: Floats,
    decided: Floats,
    ranks: Floats,
    costs: Costs | None,
    n_sim: int,
    seed: int,
) -> dict[str, Floats]:
    """Metrics of ``n_sim`` label draws y ~ Bernoulli(p): what the window would realise.

    Every metric is a function of three sums over the rows, ``tp = sum y*decided``,
    ``n1 = sum y`` and ``rank_sum = sum y*rank`` (Mann-Whitney), so a draw needs only
    those. Drawing every label costs n * n_sim; once the counts vary enough, their
    normal approximation (same mean and covariance, central limit theorem) is drawn
    instead, at a cost of n, with a bias well below the Monte Carlo noise of the band.
    """
    if n_sim <= 0:
        return {}
    w = p * (1 - p)
    if min(w @ decided, w @ (1 - decided)) >= NORMAL_MIN_VARIANCE:
        tp, n1, rank_sum = _simulate_normal(p, decided, ranks, n_sim, seed)
    else:
        tp, n1, rank_sum = _simulate_bernoulli(p, decided, ranks, n_sim, seed)
    return _metrics_of_draws(tp, n1, rank_sum, p.size, float(decided.sum()), costs)


def _simulate_bernoulli(
    p: Floats, decided: Floats, ranks: Floats, n_sim: int, seed: int
) -> tuple[Floats, Floats, Floats]:
    """``(tp, n1, rank_sum)`` of ``n_sim`` exact label draws, vectorised over draws.

    The decisions and ranks do not depend on the labels, so each sum is a matrix product.
    """
    rng = np.random.default_rng(seed)
    decided32 = decided.astype(np.float32)
    p32 = p.astype(np.float32)
    parts: list[tuple[Floats, Floats, Floats]] = []
    block = max(1, 4_000_000 // p.size)
    for start in range(0, n_sim, block):
        draws = rng.random((min(block, n_sim - start), p.size), dtype=np.float32)
        y = (draws < p32).astype(np.float32)  # float32: exact for counts below 2**24
        parts.append(
            ((y @ decided32).astype(np.float64), y.sum(axis=1, dtype=np.float64), y @ ranks)
        )
    tp, n1, rank_sum = (np.concatenate(column) for column in zip(*parts, strict=True))
    return tp, n1, rank_sum


def _simulate_normal(
    p: Floats, decided: Floats, ranks: Floats, n_sim: int, seed: int
) -> tuple[Floats, Floats, Floats]:
    """``(tp, n1, rank_sum)`` drawn from the normal law of the sums of Bernoulli(p) labels.

    Drawn as (tp, fn, rank_sum): tp and fn sum over disjoint rows, so they are
    independent and each stays inside its possible range when clipped. Ranks are
    centred to keep the covariance well conditioned.
    """
    n = p.size
    w = p * (1 - p)
    centred = ranks - (n + 1) / 2
    rows = np.stack([decided, 1 - decided, centred])  # (3, n): what each label adds
    mean = rows @ p
    cov = (rows * w) @ rows.T
    scale = np.sqrt(np.diag(cov))
    values, vectors = np.linalg.eigh(cov / np.outer(scale, scale))
    root = scale[:, None] * vectors * np.sqrt(np.clip(values, 0.0, None))
    z = np.random.default_rng(seed).standard_normal((n_sim, 3))
    tp, fn, centred_sum = (mean + z @ root.T).T
    tp = np.clip(tp, 0.0, decided.sum())
    fn = np.clip(fn, 0.0, n - decided.sum())
    n1 = tp + fn
    return tp, n1, centred_sum + (n + 1) / 2 * n1


def _metrics_of_draws(
    tp: Floats,
    n1: Floats,
    rank_sum: Floats,
    n: int,
    n_decided: float,
    costs: Costs | None,
) -> dict[str, Floats]:
    """Each metric of each draw, from its true positives, positives and positives' rank sum."""
    n0 = n - n1
    fp = n_decided - tp
    fn = n1 - tp
    tn = n0 - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        values = {
            "roc_auc": np.where(
                (n1 > 0) & (n0 > 0),
                np.clip((rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0), 0.0, 1.0),
                np.nan,
            ),
            "accuracy": (tp + tn) / n,
            "precision": np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0),
            "recall": np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0),
            "f1": np.where(tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0),
        }
    if costs is not None:
        values["expected_cost"] = (
            costs.tp * tp + costs.fp * fp + costs.fn * fn + costs.tn * tn
        ) / n
    return values


def check_estimated_performance(
    log: PredictionLog,
    model_name: str,
    *,
    manifest: JSONObject | None = None,
    metric: str | None = None,
    baseline: float | None = None,
    max_drop: float = 0.05,
    min_rows: int = 200,
    min_labels: int = 200,
    start: datetime | None = None,
    end: datetime | None = None,
    store: ModelStore | None = None,
    artifacts: ArtifactStore | None = None,
    version: int | None = None,
    n_sim: int = 200,
) -> MonitorResult:
    """Did the *estimated* ``metric`` of the window fall more than ``max_drop`` below baseline?

    A monitor like ``check_decay`` that needs no labels. ``manifest`` (the served
    model's, for its calibration, decision threshold and costs) and ``baseline``
    default to the registry's record of the version served most in the window
    (the manifest is read from ``artifacts``).
    When at least ``min_labels`` rows of the window have labels, the realised
    metric and the estimate's error are recorded in ``details["realized"]``.
    Without a ``metric``, the model's own (roc_auc for binary, accuracy for multiclass);
    a regression model is refused (``check_estimable``).
    """
    _check_arguments(manifest, metric, max_drop)
    window = _window(start, end)
    frame, served_version = _served(log, model_name, start, end, version)
    details: dict[str, JSONValue] = {
        "metric": metric,
        "higher_is_better": HIGHER[metric] if metric else True,
        "max_drop": max_drop,
        "served_version": served_version,
    }

    def result(
        status: MonitorStatus, value: float | None, limit: float | None, note: str = ""
    ) -> MonitorResult:
        return verdict("estimate", model_name, status, value, note, details, window=window,
                       n=len(frame), threshold=limit, baseline=baseline)

    if len(frame) < min_rows:
        return result(
            "no_data", None, None, f"only {len(frame)} served rows in the window, need {min_rows}"
        )
    manifest, baseline, task = _model_facts(manifest, baseline, store, artifacts, model_name,
                                            served_version, metric)
    metric = check_estimable(task, metric or ("accuracy" if task == "multiclass" else "roc_auc"))
    details.update(metric=metric, higher_is_better=HIGHER[metric], task=task)
    if task == "multiclass":
        return _check_multiclass(frame, manifest, metric, baseline, max_drop, min_labels,
                                 n_sim, details, result)
    estimate, note = _estimate_binary(frame, manifest, metric, model_name, min_labels, n_sim,
                                      details)
    return _judge(estimate.value, baseline, max_drop, HIGHER[metric], metric, note, result)


def _check_arguments(manifest: JSONObject | None, metric: str | None,
                     max_drop: float) -> None:
    if manifest is not None:
        check_estimable(str(manifest.get("task", "binary")), metric or "accuracy")
    if metric is not None and metric not in HIGHER:
        raise UserInputError(
            f"Cannot estimate {metric!r}; choose one of {ESTIMATED_METRICS} (binary) or "
            f"{MULTICLASS_ESTIMATED} (multiclass).")
    if max_drop < 0:
        raise UserInputError(f"max_drop must be >= 0. Got {max_drop!r}.")


def _served(log: PredictionLog, model_name: str, start: datetime | None, end: datetime | None,
            version: int | None) -> tuple[pd.DataFrame, int | None]:
    """The window's served rows (of ``version`` when given) and the version served most."""
    frame = served_rows(log.read(model_name=model_name, start=start, end=end, with_labels=True))
    if version is not None:
        frame = frame[frame["model_version"] == version]
    if version is None and len(frame):
        version = int(frame["model_version"].mode().iloc[0])
    return frame, version


def _model_facts(
    manifest: JSONObject | None, baseline: float | None, store: ModelStore | None,
    artifacts: ArtifactStore | None, model_name: str, version: int | None, metric: str | None,
) -> tuple[JSONObject | None, float | None, Task]:
    """The manifest, baseline and task: as given, else as the registry keeps them."""
    record_task = None
    if manifest is None or baseline is None:
        record_manifest, record_baseline, record_task = _from_registry(
            store, artifacts, model_name, version, metric
        )
        manifest = manifest if manifest is not None else record_manifest
        baseline = baseline if baseline is not None else record_baseline
    declared = (manifest or {}).get("task")
    task = (normalize_task(str(declared or "")) if declared else None) or record_task or "binary"
    return manifest, baseline, task


def _estimate_binary(frame: pd.DataFrame, manifest: JSONObject | None, metric: str,
                     model_name: str, min_labels: int, n_sim: int, details: dict[str, JSONValue]
                     ) -> tuple[Estimate, str]:
    """The binary estimate of the window (and the realised metric once labels arrived, in
    ``details``); the note says when the scores were not calibrated."""
    metadata = as_object((manifest or {}).get("metadata"))
    calibration = calibration_of(manifest or {})
    stored = as_number(metadata.get("decision_threshold"))
    threshold = 0.5 if stored is None else stored
    costs = Costs.from_dict(metadata["costs"]) if metadata.get("costs") else None
    if metric == "expected_cost" and costs is None:
        raise UserInputError(
            f"Model {model_name!r} has no costs stored; expected cost cannot be estimated."
        )
    scores = frame["prediction"].to_numpy(dtype=np.float64)
    estimates = estimate_performance(
        scores, calibration=calibration, threshold=threshold, costs=costs, n_sim=n_sim
    )
    details["estimates"] = {k: v.to_dict() for k, v in estimates.items()}
    details["calibrated"] = calibration is not None
    details["threshold"] = threshold
    estimate = estimates[metric]
    details["band"] = [estimate.lo, estimate.hi]
    labelled = frame[frame["label"].notna()] if "label" in frame.columns else frame.iloc[:0]
    if len(labelled) >= min_labels:
        details["realized"] = _realized_binary(labelled, metric, threshold, costs, estimate)
    note = "" if calibration is not None else "scores used uncalibrated (no calibration stored)"
    return estimate, note


def _realized_binary(labelled: pd.DataFrame, metric: str, threshold: float,
                     costs: Costs | None, estimate: Estimate) -> dict[str, JSONValue]:
    """The metric the labels realised, and how far the estimate was from it."""
    y = labelled["label"].to_numpy(dtype=np.float64)
    realized = metric_matrix(
        np.ones((1, len(y))),
        y,
        labelled["prediction"].to_numpy(dtype=np.float64),
        task="classification",
        threshold=threshold,
        costs=costs,
    )
    value = float(realized[metric][0])
    return {
        "metric": metric,
        "value": value,
        "n_labels": len(labelled),
        "error": None if estimate.value is None else estimate.value - value,
        "inside_band": (
            estimate.lo is not None
            and estimate.hi is not None
            and estimate.lo <= value <= estimate.hi
        ),
    }


def _judge(value: float | None, baseline: float | None, max_drop: float, higher: bool,
           metric: str, note: str, result: Judge) -> MonitorResult:
    """Fired when the estimate is past the baseline by more than ``max_drop``."""
    if baseline is None:
        return result("no_data", value, None,
                      "no baseline: pass one or register an evaluated version")
    limit = baseline - max_drop if higher else baseline + max_drop
    if value is None:
        return result("no_data", None, limit, f"{metric} is undefined on this window")
    fired = value < limit if higher else value > limit
    return result("fired" if fired else "ok", value, limit, note)


def _check_multiclass(
    frame: pd.DataFrame, manifest: JSONObject | None, metric: str, baseline: float | None,
    max_drop: float, min_labels: int, n_sim: int, details: dict[str, JSONValue],
    result: Judge,
) -> MonitorResult:
    """The multiclass estimate of a window, with the realised metric when labels arrived."""
    from ctloop.models.metrics import metric_value
    from ctloop.models.tasks import class_label
    from ctloop.monitoring.monitors import logged_scores

    proba = logged_scores(frame, "multiclass")
    if proba is None:
        return result("no_data", None, None,
                      "the log holds no per-class probabilities for these rows")
    maps = [as_object(m) for m in as_list(
        as_object((manifest or {}).get("metadata")).get("class_calibration"))]
    calibrated = None
    if maps and len(maps) == proba.shape[1]:
        from ctloop.models.calibration import apply_class_calibrations

        calibrated = apply_class_calibrations(proba, maps)
    estimates = estimate_multiclass(proba, calibrated=calibrated, n_sim=n_sim)
    estimate = estimates[metric]
    details["estimates"] = {k: v.to_dict() for k, v in estimates.items()}
    details["calibrated"] = bool(maps)
    details["band"] = [estimate.lo, estimate.hi]
    classes = [class_label(c) for c in
               as_list(as_object((manifest or {}).get("signature")).get("classes"))] or None
    labelled = frame[frame["label"].notna()] if "label" in frame.columns else frame.iloc[:0]
    if len(labelled) >= min_labels:
        scores = logged_scores(labelled, "multiclass")  # rows of ``proba``: never None
        value = None if scores is None else metric_value(
            labelled["label"].to_numpy(), scores, metric, classes=classes)
        details["realized"] = {
            "metric": metric, "value": value, "n_labels": len(labelled),
            "error": None if estimate.value is None or value is None
            else estimate.value - value,
        }
    return _judge(estimate.value, baseline, max_drop, True, metric,
                  "" if maps else "probabilities used uncalibrated (no calibration stored)",
                  result)


def _from_registry(
    store: ModelStore | None,
    artifacts: ArtifactStore | None,
    model_name: str,
    version: int | None,
    metric: str | None,
) -> tuple[JSONObject | None, float | None, Task | None]:
    """The served version's manifest, evaluated metric and task, as the registry keeps them."""
    if store is None:
        return None, None, None
    from ctloop.registry import ModelRegistry

    registry = ModelRegistry(store)
    record = registry.get(f"{model_name}:{version}" if version is not None else model_name)
    signature = as_object(record.properties.get("signature"))
    task = normalize_task(as_str(signature["task"])) if signature.get("task") else None
    metric = metric or ("accuracy" if task == "multiclass" else "roc_auc")
    baseline = Evaluation.from_json(record.properties).metric(metric)
    manifest = None
    if artifacts is not None:
        manifest = registry.load(f"{model_name}:{record.version}", artifacts).manifest
    return manifest, baseline, task
