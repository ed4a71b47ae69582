"""The continuous-training pipeline of the NYC-flights scenario.

One run handles one month of 2013 arriving, labelled, as a batch file:

    batch ─► statistics ─► validate (schema pinned from January; drift vs last month)
                                │ stops the run on error-level anomalies
    feature store ─► training set (trailing months) ─► train ─► evaluate vs champion
                  └► evaluation set (the new month)  ┘            │ gate (floors, change, slices)
                                                infra check ─► push (register; promote if blessed)

The training and evaluation sets come from the feature store (weather at the
origin, plane attributes, carrier and route delay rates, all point in time),
so serving and training share one definition of every feature.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ctloop.components.data_validation import schema, statistics, validate
from ctloop.components.training import evaluate, infra_check, push, train
from ctloop.core.errors import UserInputError
from ctloop.pipeline import Dataset, Output, component, pipeline

MODEL_NAME = "flights-delay"
LABEL = "delayed"
FLIGHT_FEATURES = ["carrier", "origin", "dest", "hour", "distance"]
"""Columns of the flight itself, known when it is scheduled (no departure delay: that leaks)."""

GATE: dict[str, Any] = {
    "floors": {"roc_auc": 0.60},
    "changes": {"roc_auc": -0.005},
    "slices": [{"column": "origin", "metric": "roc_auc", "min_change": -0.05, "min_rows": 1000}],
}
"""The model gate: an absolute floor, no real loss against the champion, no airport left behind."""


def model_features() -> list[str]:
    """Flight columns plus every feature-store feature (short names)."""
    from ctloop.examples.flights.features import FEATURES

    return FLIGHT_FEATURES + [ref.split(":", 1)[1] for ref in FEATURES]


@component(version="1", cache=False)
def land_batch(path: str, out: Output[Dataset]) -> dict[str, Any]:
    """Read a batch file as it landed (never cached: the file may be replaced)."""
    import pandas as pd

    df = pd.read_parquet(path)
    out.write(df)
    out.metadata["source"] = path
    return {"rows": len(df)}


@component(version="1")
def feature_training_set(months: list[int], out: Output[Dataset]) -> dict[str, Any]:
    """Labelled flights of ``months`` with every feature as known at scheduled departure."""
    from ctloop.examples.flights.features import FEATURES, training_set

    frame = training_set(months).to_pandas()
    out.write(frame)
    out.metadata.update({"months": list(months), "feature_refs": list(FEATURES),
                         "delayed_share": round(float(frame[LABEL].mean()), 4)})
    return {"rows": len(frame), "delayed_share": round(float(frame[LABEL].mean()), 4)}


def batch_month(batch: str) -> int:
    """The month a batch file holds, from its name (``.../2013-05.parquet`` -> 5)."""
    found = re.search(r"(\d{4})-(\d{2})", Path(batch).name)
    if not found or not 1 <= int(found.group(2)) <= 12:
        raise UserInputError(
            f"The batch file name {Path(batch).name!r} must contain its month as YYYY-MM, "
            "e.g. 2013-05.parquet."
        )
    return int(found.group(2))


@pipeline
def flights_ct(
    batch: str,
    archive: str,
    schema_path: str,
    train_window: int = 3,
    algorithm: str = "lightgbm",
    model_name: str = MODEL_NAME,
    n_boot: int = 100,
):
    """Validate a month's batch, retrain on the trailing months, gate, register, promote.

    ``batch`` is the file that landed (its name says the month); ``archive`` the
    folder of earlier months' accepted batches, the reference for drift.
    """
    month = batch_month(batch)
    if month < 2:
        raise UserInputError("The first month has no month before it to train on or compare to.")
    new_batch = land_batch(path=batch)
    last_batch = land_batch(path=str(Path(archive) / f"2013-{month - 1:02d}.parquet"))
    new_stats = statistics(data=new_batch)
    last_stats = statistics(data=last_batch)
    pinned = schema(stats=last_stats, pinned=schema_path)
    checked = validate(stats=new_stats, schema=pinned, reference=last_stats)
    train_months = list(range(max(1, month - train_window), month))
    train_set = feature_training_set(months=train_months).after(checked)
    eval_set = feature_training_set(months=[month]).after(checked)
    model = train(data=train_set, label=LABEL, features=model_features(), algorithm=algorithm,
                  seed=0)
    judged = evaluate(candidate=model, data=eval_set, model_name=model_name, gate=GATE,
                      slice_columns=["origin", "carrier"], n_boot=n_boot)
    served = infra_check(model=model, data=eval_set)
    push(model=model, evaluation=judged.outputs["evaluation"], blessing=judged.outputs["blessing"],
         model_name=model_name, reason=f"retrained with {Path(batch).name}").after(served)
