"""Mistakes ``mypy --strict`` must report, one per marked line (``# error: <code>``)."""

from __future__ import annotations

from pathlib import Path

from ctloop import Dataset, Input, Output, component, pipeline


@component(retries="two")  # error: call-overload untyped-decorator
def retried(out: Output[Dataset]) -> None: ...


@component
def make_data(rows: int, out: Output[Dataset]) -> None:
    out.write({"a": [1, 2]})  # error: arg-type
    out.writ(None)  # error: attr-defined


@component
def wrong_kind(data: Input[int]) -> None: ...  # error: type-var


@pipeline
def example(rows: int = 1000) -> None:
    make_data(rows=rows)


example(rows="many")  # error: arg-type
count: int = make_data.func  # error: assignment
value: str = make_data(rows=3, out=Dataset(Path("x")))  # error: assignment
