"""Pipelines for the scale-out tests, loaded by file path as a user's would be."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ctloop.pipeline import Dataset, Input, Metrics, Output, component, pipeline


@component
def make(n: int, out: Output[Dataset]) -> int:
    import pandas as pd

    out.write(pd.DataFrame({"x": list(range(n)), "y": [i * 0.5 for i in range(n)]}))
    return n


@component
def doubled(data: Input[Dataset], out: Output[Dataset]) -> float:
    df = data.read()
    df["x"] = df["x"] * 2
    out.write(df)
    return float(df["x"].sum())


@component
def summed(a: Input[Dataset], b: Input[Dataset], metrics: Output[Metrics]) -> float:
    value = float(a.read()["x"].sum() + b.read()["x"].sum())
    metrics.log("sum", value)
    return value


@pipeline
def branches(n: int = 6):
    first = make(n=n)
    summed(a=doubled(data=first), b=doubled(data=make(n=n + 1)))


def _wait_to_be_killed(box: str, out: Dataset) -> int:
    """Waits to be killed on the first attempt; succeeds on the next one."""
    import pandas as pd

    marker = Path(box) / "victim-pid"
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(60)
    out.write(pd.DataFrame({"pid": [os.getpid()]}))
    return os.getpid()


@component(retries=1, retry_backoff=0.1)
def victim_retried(box: str, out: Output[Dataset]) -> int:
    return _wait_to_be_killed(box, out)


@component
def victim_final(box: str, out: Output[Dataset]) -> int:
    return _wait_to_be_killed(box, out)


@pipeline
def killed_and_retried(box: str):
    victim_retried(box=box)


@pipeline
def killed_for_good(box: str):
    victim_final(box=box)


@component(resources={"cpus": 1, "memory": "50MB"})
def modest(out: Output[Metrics]) -> str:
    from distributed import get_worker

    out.log("worker", get_worker().address)
    return get_worker().address


@component(resources={"cpus": 64})
def greedy(out: Output[Metrics]) -> None:
    out.log("never", 1)


@component(resources={"memory": "lots"})
def vague(out: Output[Metrics]) -> None:
    out.log("never", 1)


@pipeline
def modest_pipe():
    modest()


@pipeline
def greedy_pipe():
    greedy()


@pipeline
def vague_pipe():
    vague()


@component
def sleeper(box: str, seconds: float, out: Output[Metrics]) -> float:
    (Path(box) / "sleeper-started").write_text(str(os.getpid()))
    time.sleep(seconds)
    out.log("slept", seconds)
    return seconds


@pipeline
def sleepy(box: str, seconds: float = 20.0):
    sleeper(box=box, seconds=seconds)
