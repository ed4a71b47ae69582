"""What crosses from a step to its records is JSON: an output's metadata becomes the
artifact's properties (NumPy scalars as numbers, dates as ISO text, anything else as its
repr), the return value the step's ``outputs``, and run parameters their JSON form."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from ctloop.pipeline import Dataset, Output, component, pipeline
from ctloop.pipeline.engine import Engine
from ctloop.pipeline.runners.local import LocalRunner
from ctloop.testing.inmemory import InMemoryMetadataStore


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


@component
def table(rows: int, when: str, out: Output[Dataset]) -> np.float64:
    out.write(pd.DataFrame({"x": np.arange(rows)}))
    out.metadata["mean"] = np.float64(np.arange(rows).mean())
    out.metadata["day"] = date.fromisoformat(when)
    out.metadata["odd"] = _Opaque()
    return np.float64(rows) / 2


@pipeline
def one_table(rows: int = 3, when: str = "2026-12-07") -> None:
    table(rows=rows, when=when)


def _engine(tmp_path: Path) -> Engine[InMemoryMetadataStore]:
    return Engine(store=InMemoryMetadataStore(), artifacts_url=(tmp_path / "a").as_uri(),
                  runner=LocalRunner(), home=tmp_path)


def test_metadata_return_value_and_parameters_are_stored_as_json(tmp_path: Path) -> None:
    for rows in (1, 2, 500):
        result = _engine(tmp_path / str(rows)).run(one_table, {"rows": rows})
        assert result.ok, result.run.error
        props = result.output("table").properties
        assert props["rows"] == rows and props["columns"] == ["x"]
        assert props["mean"] == (rows - 1) / 2 and type(props["mean"]) is float
        assert props["day"] == "2026-12-07"
        assert props["odd"] == "<opaque>"  # one value JSON cannot hold: its repr, alone
        assert result.steps["table"].outputs == {"return": rows / 2}
        assert result.run.parameters == {"rows": rows, "when": "2026-12-07"}
