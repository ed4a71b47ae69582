"""Train -> evaluate (vs champion) -> infra check -> push, as a pipeline on real flights data."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctloop.components.training import evaluate, infra_check, push, train
from ctloop.core.jsontypes import as_list, as_object
from ctloop.examples.flights.data import flights
from ctloop.metadata import open_metadata_store
from ctloop.pipeline import Dataset, Output, component, pipeline, run
from ctloop.registry import ModelRegistry

GATE = {
    "floors": {"roc_auc": 0.6},
    "changes": {"roc_auc": -0.005},
    "slices": [{"column": "origin", "metric": "roc_auc", "min_change": -0.02, "min_rows": 500}],
}
FEATURES = ["origin", "carrier", "hour", "distance", "month"]


@component(version="1")
def flights_months(months: list[int], fraction: float, out: Output[Dataset]) -> int:
    df = flights(months)
    if fraction < 1:
        df = df.sample(frac=fraction, random_state=0)
    out.write(df[[*FEATURES, "delayed"]])
    return len(df)


@pipeline
def train_and_push(train_months: list[int], fraction: float = 1.0, n_estimators: int = 40):
    data = flights_months(months=train_months, fraction=fraction)
    holdout = flights_months(months=[4], fraction=0.3)
    model = train(
        data=data,
        label="delayed",
        features=FEATURES,
        algorithm="lightgbm",
        params={"n_estimators": n_estimators, "n_jobs": 1},
        seed=0,
    )
    judged = evaluate(
        candidate=model,
        data=holdout,
        model_name="flights",
        gate=GATE,
        slice_columns=["origin"],
        n_boot=100,
    )
    infra_check(model=model, data=holdout, sample_rows=50)
    push(
        model=model,
        evaluation=judged.outputs["evaluation"],
        blessing=judged.outputs["blessing"],
        model_name="flights",
    )


@pytest.mark.slow
def test_champion_then_weaker_candidate_is_registered_but_not_promoted(
    ctloop_home: Path,
) -> None:
    first = run(train_and_push, {"train_months": [1, 2, 3]})
    assert first.ok, first.run.error
    assert as_object(first.steps["push"].outputs["return"])["promoted"] is True
    weak = run(train_and_push, {"train_months": [1, 2, 3], "fraction": 0.01})
    assert weak.ok, weak.run.error
    verdict = as_object(weak.steps["evaluate"].outputs["return"])
    assert verdict["champion_version"] == 1
    assert "roc_auc change vs champion >= -0.005" in as_list(verdict["failed"])
    assert weak.steps["push"].outputs["return"] == {
        "version": 2,
        "promoted": False,
        "alias": "champion",
        "blessed": False,
    }
    store = open_metadata_store()
    registry = ModelRegistry(store)
    assert registry.get("flights@champion").version == 1
    v1, v2 = registry.versions("flights")
    lineage = as_object(v1.properties["lineage"])
    assert lineage["step"] == "train" and v1.run_id == first.run.id
    assert as_object(as_list(lineage["inputs"])[0])["type"] == "Dataset"
    assert v2.tags == {"blessed": "false"}
    compared = registry.compare("flights", 1, 2)
    auc = next(r for r in compared.overall if r.metric == "roc_auc")
    assert auc.better == "a" and set(compared.slices["origin"]) == {"EWR", "JFK", "LGA"}
    store.close()
