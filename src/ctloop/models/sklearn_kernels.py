"""scikit-learn's own arithmetic for a few common steps, without its per-call checks.

On one row a scaled logistic regression's arithmetic takes ~15 us; the call takes ~190,
almost all of it ``validate_data`` in each step (the dataframe checks of ``check_array``,
the feature-name checks, the fitted check), none of which can fail on a finite float64
matrix of the fitted width. For the steps below this module runs the operations the
installed scikit-learn runs, in its order, on the same arrays (so the same bits):

- ``StandardScaler.transform``: a copy, ``-= mean_`` and ``/= scale_`` as configured;
- ``LogisticRegression.predict_proba``: ``X @ coef_.T + intercept_``, then ``softmax``
  (more than two classes) or ``expit`` and ``[1 - p, p]``.

Only exact classes (not subclasses) with float64 fitted arrays are taken, and a chain is
kept only when it answers scikit-learn's bits on probe rows where it is built, so a
scikit-learn that computes these another way gets its own call back (``None``). The
caller (``flavors.lean_call``) runs a chain only on a finite float64 matrix of at least
one row and the fitted width, and checks each step's output for NaN/infinity.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["Kernel", "kernel_chain", "run"]

Kernel = Callable[[np.ndarray], np.ndarray]


def kernel_chain(steps: list[Any], last: Any, method: str) -> list[Kernel] | None:
    """One kernel per step (``steps`` transform, ``last`` answers ``method``), or None
    when any step has none or the chain does not answer ``last``'s own bits on probe rows."""
    try:
        chain = [_transform(step) for step in steps]
        chain.append(_final(last, method))
    except (AttributeError, ImportError, TypeError, ValueError):
        return None  # fitted some other way, or a scikit-learn whose internals moved
    if any(k is None for k in chain):
        return None
    kernels = [k for k in chain if k is not None]
    width = getattr(steps[0] if steps else last, "n_features_in_", None)
    if not isinstance(width, int) or width < 1:
        return None
    try:
        same = _same_bits(kernels, steps, last, method, width)
    except Exception:  # scikit-learn refused the probe rows: no shortcut, its own call
        same = False
    return kernels if same else None


def _float64(*arrays: Any) -> bool:
    return all(a is None or (isinstance(a, np.ndarray) and a.dtype == np.float64)
               for a in arrays)


def _exact(estimator: Any, module: str, names: frozenset[str]) -> bool:
    kind = type(estimator)
    return kind.__module__.startswith(module) and kind.__name__ in names


def _transform(step: Any) -> Kernel | None:
    if not _exact(step, "sklearn.preprocessing", frozenset({"StandardScaler"})):
        return None
    with_mean, with_std = bool(step.with_mean), bool(step.with_std)
    mean = step.mean_ if with_mean else None
    scale = step.scale_ if with_std else None
    if not _float64(mean, scale) or (with_mean and mean is None) or (with_std and scale is None):
        return None

    def standard_scaler(x: np.ndarray) -> np.ndarray:
        out = np.array(x, copy=True, order="K")  # check_array(copy=True) keeps the layout
        if mean is not None:
            out -= mean
        if scale is not None:
            out /= scale
        return out

    return standard_scaler


def _final(last: Any, method: str) -> Kernel | None:
    if method == "predict_proba" and _exact(last, "sklearn.linear_model",
                                            frozenset({"LogisticRegression"})):
        return _logistic(last)
    return None


def _logistic(model: Any) -> Kernel | None:
    from scipy.special import expit

    coef, intercept = model.coef_, model.intercept_
    if not _float64(coef, intercept) or coef.ndim != 2:
        return None
    coef_t = coef.T
    binary = len(model.classes_) <= 2
    if binary and coef.shape[0] != 1:
        return None

    def logistic(x: np.ndarray) -> np.ndarray:
        scores: np.ndarray = x @ coef_t + intercept
        if binary:  # LinearClassifierMixin._predict_proba_lr on one decision column
            prob = scores.reshape(-1)
            expit(prob, out=prob)
            return np.stack([1 - prob, prob], axis=1)
        scores -= np.max(scores, axis=1).reshape(-1, 1)  # sklearn.utils.extmath.softmax
        np.exp(scores, out=scores)
        scores /= np.sum(scores, axis=1).reshape(-1, 1)
        return scores

    return logistic


def run(kernels: list[Kernel], matrix: np.ndarray) -> np.ndarray | None:
    """The chain on ``matrix``; None when a step's output holds NaN or infinity."""
    values = matrix
    for kernel in kernels[:-1]:
        values = kernel(values)
        if not np.isfinite(values).all():
            return None
    return kernels[-1](values)


def _same_bits(kernels: list[Kernel], steps: list[Any], last: Any, method: str,
               width: int) -> bool:
    """The chain answers scikit-learn's own bits on a few rows of both layouts."""
    rng = np.random.default_rng(0)
    first = steps[0] if steps else None
    centre = getattr(first, "mean_", None)
    spread = getattr(first, "scale_", None)
    rows = rng.standard_normal((5, width))
    if isinstance(spread, np.ndarray) and spread.shape == (width,):
        rows = rows * spread
    if isinstance(centre, np.ndarray) and centre.shape == (width,):
        rows = rows + centre
    for probe in (rows[:1], rows, np.asfortranarray(rows)):
        got = run(kernels, probe)
        with warnings.catch_warnings():  # a model fitted on a frame warns of the names
            warnings.simplefilter("ignore", UserWarning)
            values = probe
            for step in steps:
                values = step.transform(values)
            expected = getattr(last, method)(values)
        if got is None or got.shape != expected.shape or not np.array_equal(got, expected):
            return False
    return True
