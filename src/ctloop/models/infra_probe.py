"""Child process of the infra check: load a model as the server does, predict, report JSON.

Forked from the fork server (``probe_into``, the report goes back through a
pipe), or run as ``python -m ctloop.models.infra_probe MODEL_DIR SAMPLE.parquet``,
which prints one JSON line on stdout.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import warnings
from multiprocessing.connection import Connection

import numpy as np
import pandas as pd


def probe(model_dir: str, sample_path: str, repeats: int = 5) -> dict[str, object]:
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


def probe_into(sender: Connection, model_dir: str, sample_path: str) -> None:
    """The fork server's child: send the probe's report to the parent."""
    try:
        sender.send(probe(model_dir, sample_path))
    finally:
        sender.close()


if __name__ == "__main__":
    sys.stdout.write(json.dumps(probe(sys.argv[1], sys.argv[2])) + "\n")
