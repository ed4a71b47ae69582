"""statistics -> schema -> validate as pipeline steps on flights data."""

from __future__ import annotations

import json
from pathlib import Path

from ctloop.components.data_validation import schema, statistics, validate
from ctloop.core.jsontypes import as_list, as_object
from ctloop.examples.flights.data import flights
from ctloop.metadata import open_metadata_store
from ctloop.pipeline import Dataset, Output, component, pipeline, run

COLUMNS = ["month", "carrier", "origin", "distance", "dep_delay", "hour", "delayed"]


@component(version="1")
def month_batch(month: int, defect: bool, out: Output[Dataset]) -> int:
    df = flights([month])[COLUMNS]
    if defect:
        df = df.rename(columns={"origin": "airport"})
        df.loc[df.index[:3], "carrier"] = "ZZ"
        df.loc[df.index[:4], "distance"] = -1
    out.write(df)
    return len(df)


@pipeline
def check_month(month: int, pinned: str, defect: bool = False):
    reference = statistics(data=month_batch(month=1, defect=False))
    current = statistics(data=month_batch(month=month, defect=defect))
    expected = schema(stats=reference, pinned=pinned)
    validate(stats=current, schema=expected, reference=reference)


def test_good_month_passes_and_records_drift(ctloop_home: Path):
    pinned = ctloop_home / "schema.yaml"
    result = run(check_month, {"month": 2, "pinned": str(pinned)})
    assert result.ok, result.run.error
    assert pinned.exists()  # the first run pins the inferred schema
    anomalies = result.output("validate")
    assert anomalies.type == "Anomalies"
    props = open_metadata_store().get_artifact(anomalies.id).properties
    assert props["ok"] is True and props["errors"] == 0
    # month 1 vs 2 of course differs: a calendar column, reported but not counted as drift
    drift = as_object(props["drift"])
    assert "month" in as_list(drift["excluded"])
    assert "month" not in as_list(drift["drifted_features"])
    assert as_object(as_object(drift["scores"])["carrier"])["drifted"] is False


def test_defective_month_stops_the_run_naming_each_anomaly(ctloop_home: Path):
    pinned = ctloop_home / "schema.yaml"
    result = run(check_month, {"month": 2, "pinned": str(pinned), "defect": True})
    assert not result.ok
    text = json.dumps([result.steps["validate"].error, result.run.error])
    for needle in ("'origin'", "renamed to 'airport'", "'ZZ' (3 rows)", "4 negative value(s)"):
        assert needle in text
