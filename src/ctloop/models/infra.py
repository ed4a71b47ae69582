"""Infra check: can the candidate be served? Load it in a fresh process and ask.

The child process imports nothing but what the prediction service imports
(``ctloop.models.load_model``), so a model that only works because the
training process happened to have a class or package loaded fails here,
before it is promoted, not in production.

A new interpreter per check cost more than loading and predicting (about 1.2 s
of imports each, a loop's replay checks every candidate), so the child is
forked from the standard library's fork server: a clean interpreter started
once, which has imported only the serving side (numpy, pandas, the model
flavors) and forks a fresh child per check. The child therefore still starts
without anything the training process loaded. Inside a daemonic process (a
Dask worker may not start children) or for another interpreter, a new
process is started instead.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import multiprocessing
import subprocess
import sys
import tempfile
from multiprocessing.context import ForkServerContext
from pathlib import Path
from typing import Any

import pandas as pd

from ctloop.core.errors import UserInputError

__all__ = ["infra_check"]


def infra_check(
    model_path: str | Path,
    sample: pd.DataFrame,
    *,
    max_latency_ms: float = 1000.0,
    timeout_s: float = 120.0,
    python: str = sys.executable,
) -> dict[str, Any]:
    """Load the model at ``model_path`` in a new Python process and predict ``sample``.

    Returns ``{"passed", "checks": [{"check", "passed", "detail"}], "latency_ms",
    "load_ms", "rows", "error"}``. Fails (``passed`` false, the reason in
    ``error``) when the model cannot be loaded (missing package, damaged file),
    the output has the wrong shape or type, or the median latency of predicting
    the sample exceeds ``max_latency_ms``.
    """
    if len(sample) == 0:
        raise UserInputError("The infra check needs at least one sample row.")
    with tempfile.TemporaryDirectory(prefix="ctloop-infra-") as tmp:
        sample_path = Path(tmp) / "sample.parquet"
        sample.to_parquet(sample_path, index=False)
        context = _fork_server() if python == sys.executable else None
        if context is not None:
            result = _forked_probe(context, str(model_path), str(sample_path), timeout_s)
        else:
            result = _new_process_probe(python, str(model_path), str(sample_path), timeout_s)
    if isinstance(result, str):
        return _failed(result)
    if result.get("error"):
        return _failed(result["error"], warnings=result.get("warnings", []))
    checks = [
        _check("loads", True, f"{result['flavor']} model loaded in {result['load_ms']:.0f} ms"),
        _check(
            "shape",
            result["shape"] == [len(sample)],
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
    if result.get("task") == "classification":
        checks.append(
            _check(
                "range",
                result["min"] >= 0 and result["max"] <= 1,
                f"probabilities in [{result['min']:.3f}, {result['max']:.3f}]",
            )
        )
    return {
        "passed": all(c["passed"] for c in checks),
        "checks": checks,
        "latency_ms": result["latency_ms"],
        "load_ms": result["load_ms"],
        "rows": len(sample),
        "warnings": result.get("warnings", []),
        "error": None,
    }


_SERVING_IMPORTS = ("ctloop.models.infra_probe", "lightgbm", "sklearn.base")
"""What the fork server imports before forking: the prediction service's side only."""


@functools.cache
def _preload() -> tuple[str, ...]:
    return tuple(m for m in _SERVING_IMPORTS
                 if importlib.util.find_spec(m.partition(".")[0]) is not None)


def _fork_server() -> ForkServerContext | None:
    """The fork-server context, or None where a child process may not be started."""
    if multiprocessing.current_process().daemon:
        return None
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(_preload()))  # taken when the server first starts
    return context


def _forked_probe(context: ForkServerContext, model_path: str, sample_path: str,
                  timeout_s: float) -> dict[str, Any] | str:
    """The probe's report from a child of the fork server, or why there is none."""
    from ctloop.models.infra_probe import probe_into

    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=probe_into, args=(sender, model_path, sample_path),
                            name="ctloop-infra-probe", daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(timeout_s):
            child.kill()
            return f"Loading and predicting took over {timeout_s:g} s."
        try:
            report: dict[str, Any] = receiver.recv()
        except EOFError:
            child.join()
            return f"The probe process crashed (exit {child.exitcode})."
        return report
    finally:
        receiver.close()
        child.join()


def _new_process_probe(python: str, model_path: str, sample_path: str,
                       timeout_s: float) -> dict[str, Any] | str:
    """The probe's report from a new interpreter, or why there is none."""
    try:
        proc = subprocess.run(
            [python, "-m", "ctloop.models.infra_probe", model_path, sample_path],
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
