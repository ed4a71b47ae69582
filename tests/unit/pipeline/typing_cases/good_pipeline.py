"""A pipeline as users write it; ``mypy --strict`` must accept it without a single error."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ctloop import Dataset, Input, Metrics, Model, Output, component, pipeline
from ctloop.pipeline import ComponentDef, Graph, PipelineDef, StepHandle


@component
def make_data(rows: int, seed: int, out: Output[Dataset]) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 2))
    out.write(pd.DataFrame(x, columns=["a", "b"]).assign(label=(x.sum(1) > 0).astype(int)))


@component(retries=2, retry_backoff=1.0)
def fit(data: Input[Dataset], model: Output[Model]) -> None:
    frame: pd.DataFrame = data.read(columns=["a", "b", "label"])
    (model.path / "mean.txt").write_text(str(frame["a"].mean()))


@component
def score(data: Input[Dataset], model: Input[Model], metrics: Output[Metrics]) -> float:
    value = float((model.path / "mean.txt").read_text()) + len(data.read())
    metrics.log("value", value)
    return value


@pipeline
def example(rows: int = 1000) -> None:
    model = fit(data=make_data(rows=rows, seed=0))
    handle: StepHandle = score(data=make_data(rows=rows, seed=1), model=model)
    handle.after(model)


# What type checkers see: the functions' own signatures, kept by ParamSpec.
typed_score: ComponentDef[[Dataset, Model, Metrics], float] = score
typed_example: PipelineDef[[int]] = example
graph: Graph = example(rows=10)
direct: float = score(Dataset(Path("d.parquet")), Model(Path("m")), Metrics(Path("x.json")))
