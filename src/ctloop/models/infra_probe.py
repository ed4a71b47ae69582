"""Child process of the infra check: load a model as the server does, predict, report JSON.

``python -m ctloop.models.infra_probe MODEL_DIR SAMPLE.parquet`` probes once and
prints one JSON line. ``python -m ctloop.models.infra_probe --serve`` is the
probe server (:mod:`ctloop.models.probe_server`): it imports the serving side
once, then for each request line forks a fresh child that probes and writes its
report to the request's file, and answers with the child's pid and exit code.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

import numpy as np
import pandas as pd


class HttpReport(TypedDict):
    """The candidate answered through the service (:mod:`ctloop.serving.probe`)."""

    answers: int
    failures: list[str]


class ProbeReport(TypedDict, total=False):
    """What one probe found; ``error`` set means the model could not be loaded or predict."""

    flavor: str
    task: str | None
    load_ms: float
    latency_ms: float
    shape: list[int]
    dtype: str
    finite: bool
    min: float | None
    max: float | None
    warnings: list[str]
    error: str | None
    http: HttpReport


Probe = Callable[[str, str], ProbeReport]


def probe(model_dir: str, sample_path: str, repeats: int = 5) -> ProbeReport:
    """Load, predict ``repeats`` times and describe the output."""
    from ctloop.core.errors import CtloopError
    from ctloop.models.flavors import load_model

    sample = pd.read_parquet(sample_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.perf_counter()
        try:
            model = load_model(model_dir)
        except CtloopError as exc:
            return {"error": exc.one_line(), "warnings": [str(w.message) for w in caught]}
        load_ms = (time.perf_counter() - started) * 1000
    times, out = [], np.empty(0)
    try:
        for _ in range(repeats):
            started = time.perf_counter()
            out = np.asarray(model.predict(sample))
            times.append((time.perf_counter() - started) * 1000)
    except CtloopError as exc:
        return {"error": exc.one_line()}
    except Exception as exc:
        return {"error": f"predict failed: {type(exc).__name__}: {exc}"}
    numeric = np.issubdtype(out.dtype, np.number)
    return {
        "flavor": model.flavor,
        "task": model.task,
        "load_ms": load_ms,
        "latency_ms": statistics.median(times),
        "shape": list(out.shape),
        "dtype": str(out.dtype),
        "finite": bool(numeric and np.isfinite(out).all()),
        "min": float(out.min()) if numeric and out.size else None,
        "max": float(out.max()) if numeric and out.size else None,
        "warnings": [str(w.message) for w in caught],
        "error": None,
    }


SERVING_IMPORTS = ("lightgbm", "sklearn.base")
"""Imported by the probe server before it forks: what loading a model imports anyway."""


def serve(probe_one: Probe = probe, prepare: Callable[[], object] | None = None) -> None:
    """Fork one fresh child per request line ``{"model", "sample", "out"}`` on stdin.

    Answers ``{"pid": N}`` when the child starts and ``{"exit": CODE}`` when it ends.
    The child's stdout goes to stderr, so nothing a library prints mixes with the answers.
    ``probe_one`` is what the child runs (the serving side passes one that also asks the
    service); ``prepare`` runs once before the first fork.
    """
    import importlib
    import os

    if prepare is not None:
        prepare()
    for name in SERVING_IMPORTS:  # best effort: a flavor not installed is not preloaded
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: a copy of this clean interpreter
            code = 1
            try:
                os.dup2(2, 1)
                try:
                    report = probe_one(request["model"], request["sample"])
                except Exception as exc:  # what a real server would hit loading this model
                    report = ProbeReport(
                        error=f"the probe failed: {type(exc).__name__}: {exc}")
                Path(request["out"]).write_text(json.dumps(report))
                code = 0
            finally:
                os._exit(code)
        _answer({"pid": pid})
        _, status = os.waitpid(pid, 0)
        _answer({"exit": os.waitstatus_to_exitcode(status)})


def _answer(message: dict[str, int]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        sys.stdout.write(json.dumps(probe(sys.argv[1], sys.argv[2])) + "\n")
