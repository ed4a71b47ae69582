"""Benchmark: multiclass and regression metrics with bootstrap intervals against scikit-learn.

Same rows, same resamples, same run: ``ctloop.models.metrics.metrics_with_ci`` (every
metric as a weighted formula over a matrix of resample weights) against the loop a user
would write, each resample materialised and scored by scikit-learn (accuracy, macro and
weighted F1, log loss, one-vs-rest ROC AUC; rmse, mae, r2, mape). Prints seconds and the
ratio, and the largest difference between the two intervals' bounds.

    .venv/bin/python bench/bench_metrics_tasks.py
    .venv/bin/python bench/bench_metrics_tasks.py --rows 20000 --boot 200 --classes 6
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn import metrics as skm

from ctloop.models.metrics import bootstrap_weights, metrics_with_ci


def _multiclass(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k)) + 1.2 * np.eye(k)[y]
    return y, np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def _sklearn_multiclass(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {m: [] for m in ("accuracy", "macro_f1", "roc_auc")}
    labels = np.arange(p.shape[1])
    for row in w:
        idx = np.repeat(np.arange(len(y)), row.astype(int))
        pred = p[idx].argmax(axis=1)
        out["accuracy"].append(skm.accuracy_score(y[idx], pred))
        out["macro_f1"].append(skm.f1_score(y[idx], pred, average="macro"))
        skm.f1_score(y[idx], pred, average="weighted")
        skm.log_loss(y[idx], p[idx], labels=labels)
        out["roc_auc"].append(skm.roc_auc_score(y[idx], p[idx], multi_class="ovr",
                                                labels=labels))
    return out


def _sklearn_regression(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"rmse": [], "mape": []}
    for row in w:
        idx = np.repeat(np.arange(len(y)), row.astype(int))
        out["rmse"].append(float(np.sqrt(skm.mean_squared_error(y[idx], p[idx]))))
        skm.mean_absolute_error(y[idx], p[idx])
        skm.r2_score(y[idx], p[idx])
        out["mape"].append(skm.mean_absolute_percentage_error(y[idx], p[idx]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--boot", type=int, default=200)
    parser.add_argument("--classes", type=int, default=5)
    args = parser.parse_args()
    y, p = _multiclass(args.rows, args.classes)
    started = time.perf_counter()
    ours = metrics_with_ci(y, {"m": p}, task="multiclass", n_boot=args.boot, seed=0)["m"]
    mine = time.perf_counter() - started
    started = time.perf_counter()
    theirs = _sklearn_multiclass(y, p, bootstrap_weights(len(y), args.boot, 0))
    peer = time.perf_counter() - started
    gap = max(abs(ours["metrics"][m]["lo"] - np.quantile(v, 0.025)) for m, v in theirs.items())
    print(f"multiclass {args.rows} rows x {args.classes} classes, {args.boot} resamples: "
          f"ctloop {mine:.2f} s, scikit-learn loop {peer:.2f} s, ratio {peer / mine:.1f}x; "
          f"largest interval difference {gap:.2g}")
    rng = np.random.default_rng(1)
    truth = rng.normal(50, 10, args.rows)
    pred = truth + rng.normal(0, 3, args.rows)
    started = time.perf_counter()
    reg = metrics_with_ci(truth, {"m": pred}, task="regression", n_boot=args.boot, seed=0)["m"]
    mine = time.perf_counter() - started
    started = time.perf_counter()
    naive = _sklearn_regression(truth, pred, bootstrap_weights(len(truth), args.boot, 0))
    peer = time.perf_counter() - started
    gap = max(abs(reg["metrics"][m]["lo"] - np.quantile(v, 0.025)) for m, v in naive.items())
    print(f"regression {args.rows} rows, {args.boot} resamples: ctloop {mine:.2f} s, "
          f"scikit-learn loop {peer:.2f} s, ratio {peer / mine:.1f}x; largest interval "
          f"difference {gap:.2g}")


if __name__ == "__main__":
    main()
