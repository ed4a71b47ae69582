"""Small pipelines started by the trigger tests: count rows of a file, or fail on purpose."""

from __future__ import annotations

from ctloop.pipeline import Dataset, Output, component, pipeline


@component
def read_file(path: str, out: Output[Dataset]) -> int:
    import pandas as pd

    frame = pd.read_parquet(path)
    out.write(frame)
    return len(frame)


@component
def note(message: str) -> str:
    return message


@component
def explode(message: str) -> None:
    raise RuntimeError(f"told to fail: {message}")


@pipeline
def ingest(path: str = ""):
    read_file(path=path)


@pipeline
def hello(message: str = "hi"):
    note(message=message)


@pipeline
def broken(message: str = "boom"):
    explode(message=message)
