"""Infra check: can the candidate be served? Load it in a fresh process and ask.

The child process imports nothing but what the prediction service imports
(``ctloop.models.load_model``), so a model that only works because the
training process happened to have a class or package loaded fails here,
before it is promoted, not in production.

The child is forked from the probe server (:mod:`ctloop.models.probe_server`),
a clean interpreter started once that has imported only the serving side, so
it starts in milliseconds yet without anything the training process loaded.
Without ``fork`` (Windows) or for another interpreter, a new process is
started per check instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ctloop.core.errors import UserInputError
from ctloop.models.probe_server import PROBE_MODULE, probe_server

__all__ = ["infra_check"]


def infra_check(
    model_path: str | Path,
    sample: pd.DataFrame,
    *,
    max_latency_ms: float = 1000.0,
    timeout_s: float = 120.0,
    python: str = sys.executable,
    serving: Mapping[str, Any] | bool | None = None,
) -> dict[str, Any]:
    """Load the model at ``model_path`` in a new Python process and predict ``sample``.

    Returns ``{"passed", "checks": [{"check", "passed", "detail"}], "latency_ms",
    "load_ms", "rows", "error"}``. Fails (``passed`` false, the reason in
    ``error``) when the model cannot be loaded (missing package, damaged file),
    the output has the wrong shape or type, or the median latency of predicting
    the sample exceeds ``max_latency_ms``, or when the prediction service, built on
    the candidate in the probe (:mod:`ctloop.serving.probe`), does not answer 1, 2
    and 100 rows over v1 and v2 exactly as the model does in-process (the ``http``
    check: a model whose answers the service cannot encode is never blessed).

    ``serving`` (the gate's ``serving`` rule, see
    :class:`ctloop.models.servingtest.ServingBudget`) adds the load test: the
    service started on a real socket holds the rule's p99 and error rate.
    """
    if len(sample) == 0:
        raise UserInputError("The infra check needs at least one sample row.")
    with tempfile.TemporaryDirectory(prefix="ctloop-infra-") as tmp:
        sample_path = Path(tmp) / "sample.parquet"
        sample.to_parquet(sample_path, index=False)
        server = probe_server() if python == sys.executable else None
        if server is not None:
            result = server.probe(str(model_path), str(sample_path), Path(tmp) / "report.json",
                                  timeout_s)
        else:
            result = _new_process_probe(python, str(model_path), str(sample_path), timeout_s)
    if isinstance(result, str):
        return _failed(result)
    if result.get("error"):
        return _failed(result["error"], warnings=result.get("warnings", []))
    checks = [
        _check("loads", True, f"{result['flavor']} model loaded in {result['load_ms']:.0f} ms"),
        _check(
            "shape",  # one value per row; a multiclass model one probability per class
            result["shape"] == [len(sample)] or (
                result.get("task") == "multiclass" and len(result["shape"]) == 2
                and result["shape"][0] == len(sample)),
            f"{result['shape']} predictions for {len(sample)} rows",
        ),
        _check(
            "type",
            result["dtype"].startswith("float") and result["finite"],
            f"dtype {result['dtype']}, all finite: {result['finite']}",
        ),
        _check(
            "latency",
            result["latency_ms"] <= max_latency_ms,
            f"median {result['latency_ms']:.1f} ms for {len(sample)} rows "
            f"(limit {max_latency_ms:g} ms)",
        ),
    ]
    if result.get("task") in ("binary", "classification", "multiclass"):
        checks.append(
            _check(
                "range",
                result["min"] >= 0 and result["max"] <= 1,
                f"probabilities in [{result['min']:.3f}, {result['max']:.3f}]",
            )
        )
    http = result.get("http")
    if http is not None:  # the answers through the service's decoders and encoders
        checks.append(_check("http", not http["failures"], "; ".join(http["failures"]) or
                             f"{http['answers']} answers of 1, 2 and 100 rows over v1 and v2 "
                             "equal the in-process prediction"))
    served = _served_checks(model_path, sample, serving) if all(
        c["passed"] for c in checks) else None
    if served is not None:
        checks += served["checks"]
    return {
        "passed": all(c["passed"] for c in checks),
        "checks": checks,
        "serving": None if served is None else served["report"],
        "latency_ms": result["latency_ms"],
        "load_ms": result["load_ms"],
        "rows": len(sample),
        "warnings": result.get("warnings", []),
        "error": None,
    }


def _served_checks(model_path: str | Path, sample: pd.DataFrame,
                   serving: Mapping[str, Any] | bool | None) -> dict[str, Any] | None:
    """The HTTP checks of the gate's serving rule (kept apart: one call, one result)."""
    from dataclasses import asdict

    from ctloop.models.flavors import load_model
    from ctloop.models.servingtest import ServingBudget, check_service, serve_folder

    budget = ServingBudget.from_table(serving)
    if budget is None:
        return None
    with serve_folder(model_path) as (url, _, startup):
        report = check_service(url, "candidate", sample, load_model(Path(model_path)),
                               budget=budget, startup_s=startup)
    # the answers were checked in the probe already (the "http" check); over a real
    # socket a failing one is still reported, beside the load test's verdict
    answers = [a for a in report.answers if not a.passed]
    checks = [_check("served", False, "; ".join(
        f"{a.protocol} with {a.rows} row(s) on a socket: {a.detail}" for a in answers))
        ] if answers else []
    if report.load is not None:
        checks.append(_check("load", report.load.passed, report.load.detail))
    return {"checks": checks, "report": asdict(report)}


def _new_process_probe(python: str, model_path: str, sample_path: str,
                       timeout_s: float) -> dict[str, Any] | str:
    """The probe's report from a new interpreter, or why there is none."""
    try:
        proc = subprocess.run(
            [python, "-m", PROBE_MODULE, model_path, sample_path],
            capture_output=True, text=True, timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return f"Loading and predicting took over {timeout_s:g} s."
    lines = proc.stdout.strip().splitlines()
    try:
        report: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        return f"The probe process crashed (exit {proc.returncode}): {tail[0]}"
    return report


def _check(name: str, passed: bool, detail: str) -> dict[str, Any]:
    return {"check": name, "passed": bool(passed), "detail": detail}


def _failed(error: str, warnings: list[str] | None = None) -> dict[str, Any]:
    return {
        "passed": False,
        "checks": [_check("loads", False, error)],
        "latency_ms": None,
        "load_ms": None,
        "rows": 0,
        "warnings": warnings or [],
        "error": error,
    }
