"""Pipelines for the regression tests of issue 14's defects; steered by files in CTLOOP_TEST_DIR."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from ctloop.pipeline import Dataset, Input, Output, component, pipeline


def _box() -> Path:
    return Path(os.environ["CTLOOP_TEST_DIR"])


@component
def emit(n: int, out: Output[Dataset]) -> None:
    import pandas as pd

    out.write(pd.DataFrame({"x": list(range(n))}))


@component
def strict_check(data: Input[Dataset]) -> int:
    if not (_box() / "fixed").exists():
        raise ValueError("column [/bold] has [red]bad[/red] values like [/] and [link=x]")
    return len(data.read())


@pipeline
def markup_error(n: int = 3, threshold: float = 0.5):
    strict_check(data=emit(n=n))


@component
def lingering(data: Input[Dataset], out: Output[Dataset]) -> int:
    """Record this process and a child it started, then wait unless told to hurry."""
    with open(_box() / "lingering-pids", "a") as fh:
        child = subprocess.Popen(["sleep", "300"])
        fh.write(f"{os.getpid()} {child.pid}\n")
    if not (_box() / "fast").exists():
        time.sleep(300)
    child.kill()
    out.write(data.read())
    return os.getpid()


@pipeline
def slow_in_subprocess(n: int = 3):
    lingering(data=emit(n=n))


@component
def weigh(weights: Any, out: Output[Dataset]) -> float:
    """Sum a parameter of any type that numpy can read (arrays, frames, tables)."""
    import numpy as np
    import pandas as pd

    with open(_box() / "weighed", "a") as fh:
        fh.write("x\n")
    total = float(np.asarray(weights, dtype=float).sum()) if not hasattr(weights, "v") else 0.0
    out.write(pd.DataFrame({"total": [total]}))
    return total


@pipeline
def weighing(weights: Any = None):
    weigh(weights=weights)
