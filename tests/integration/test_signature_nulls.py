"""``nullable`` is what training saw (or what the user declared), and every edge obeys it.

A model trained without a gap in a column refuses a null there over v1, v2 and in
``ctloop predict``, with the same words; one trained with gaps accepts them; a signature
stored before (every column nullable for boosted trees) keeps its meaning; a replayed
span with such rows is served without them, and the rows left out are counted.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop.artifacts import open_artifact_store
from ctloop.core.errors import UserInputError
from ctloop.core.jsontypes import as_object
from ctloop.data.schema import infer_schema
from ctloop.data.stats import compute_statistics
from ctloop.examples.flights.data import flights
from ctloop.loop.sample import write_sample_spans
from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
from ctloop.models import fit_model
from ctloop.models.signature import Signature
from ctloop.registry import ModelRegistry
from ctloop.testing.cli import cli, one_error_line
from ctloop.testing.loops import churn_loop

FEATURES = ["origin", "carrier", "hour", "distance", "dep_delay"]
LGB = {"n_estimators": 5, "n_jobs": 1}


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rows = flights([1]).head(2000).reset_index(drop=True)
    assert not rows[FEATURES].isna().any().any()  # cancelled flights are dropped
    return rows


@pytest.fixture(scope="module")
def models(data: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``clean``: trained without a gap; ``gappy``: with gaps in dep_delay."""
    root = tmp_path_factory.mktemp("nullable")
    gappy = data.copy()
    gappy.loc[gappy.index % 10 == 0, "dep_delay"] = np.nan
    for name, frame in (("clean", data), ("gappy", gappy)):
        fit_model(frame, label="delayed", features=FEATURES, algorithm="lightgbm",
                  params=LGB).save(root / name)
    return {"clean": root / "clean", "gappy": root / "gappy"}


def _nullable(signature: Signature) -> dict[str, bool]:
    return {c.name: c.nullable for c in signature.inputs}


# --- how nullable is derived --------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["lightgbm", "hist_gradient_boosting", "logistic"])
def test_nullable_is_what_training_saw_plus_what_is_declared(
        data: pd.DataFrame, algorithm: str) -> None:
    gappy = data.head(400).copy()
    gappy.loc[::7, "distance"] = np.nan
    gappy.loc[::9, "origin"] = None
    params = {"logistic": {}, "lightgbm": LGB, "hist_gradient_boosting": {"max_iter": 3}}
    trained = fit_model(gappy, label="delayed", features=FEATURES, algorithm=algorithm,
                        params=params[algorithm], nullable=["hour"])
    assert _nullable(trained.signature) == {"origin": True, "carrier": False, "hour": True,
                                            "distance": True, "dep_delay": False}
    stored = Signature.from_dict(json.loads(json.dumps(trained.signature.to_dict())))
    assert _nullable(stored) == _nullable(trained.signature)


def test_declaring_a_column_that_is_no_feature_is_one_line(data: pd.DataFrame) -> None:
    with pytest.raises(UserInputError, match=r"'nullable' column\(s\) \['hours'\]"):
        fit_model(data.head(100), label="delayed", features=FEATURES, algorithm="lightgbm",
                  params=LGB, nullable=["hours"])


def test_a_signature_stored_before_keeps_its_meaning() -> None:
    # Before nullable/finite were recorded: nulls allowed, infinities refused.
    oldest = Signature.from_dict({"inputs": [{"name": "hour", "type": "integer"}],
                                  "output": {"name": "delayed", "type": "probability"}})
    assert oldest.inputs[0].nullable and oldest.inputs[0].finite
    assert np.isnan(oldest.conform({"hour": [None, 5]})["hour"][0])
    # A booster saved when boosters were recorded nullable everywhere still is.
    booster = Signature.from_dict({"inputs": [
        {"name": "hour", "type": "integer", "nullable": True, "finite": True},
        {"name": "carrier", "type": "string", "nullable": False, "finite": True}],
        "output": {}, "task": "binary"})
    assert _nullable(booster) == {"hour": True, "carrier": False}
    booster.conform({"hour": [None], "carrier": ["AA"]})
    with pytest.raises(UserInputError, match="'carrier' has nulls"):
        booster.conform({"hour": [1], "carrier": [None]})


# --- every edge obeys it --------------------------------------------------------------------


@pytest.fixture
def project(ctloop_home: Path, models: dict[str, Path], data: pd.DataFrame) -> Path:
    """flights:1 (champion) trained without gaps, flights:2 (``gappy``) with gaps in dep_delay."""
    store = open_metadata_store()
    artifacts = open_artifact_store()
    registry = ModelRegistry(store, actor="test")
    for key in ("clean", "gappy"):
        stored = artifacts.put(models[key])
        art = store.add_artifact(
            ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256, stored.size, name=key))
        registry.register("flights", art.id)
    registry.promote("flights", 1)
    registry.promote("flights", 2, alias="gappy")
    store.close()
    rows = data.head(50)[FEATURES].astype({"hour": "float64", "dep_delay": "float64"})
    rows.loc[[3], "dep_delay"] = np.nan
    rows.to_parquet(ctloop_home / "gap.parquet")
    return ctloop_home


def _v2_binary(row: pd.DataFrame) -> tuple[bytes, str]:
    """One row as the binary tensor extension carries it (NaN, which JSON cannot)."""
    import tritonclient.http as httpclient

    inputs = []
    for column in FEATURES:
        values = row[column].to_numpy()
        if values.dtype == object:
            tensor = httpclient.InferInput(column, [len(row)], "BYTES")
            tensor.set_data_from_numpy(values.astype(np.object_), binary_data=True)
        else:
            tensor = httpclient.InferInput(column, [len(row)], "FP64")
            tensor.set_data_from_numpy(values.astype(np.float64), binary_data=True)
        inputs.append(tensor)
    body, json_size = httpclient.InferenceServerClient.generate_request_body(inputs)
    return body, str(json_size)


def test_a_gap_training_never_saw_is_refused_alike_over_v1_v2_and_predict(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fastapi.testclient import TestClient

    from ctloop.core.settings import load_settings
    from ctloop.serving import ServingConfig, create_app

    rows = pd.read_parquet(project / "gap.parquet")
    code, _, err = cli(capsys, "predict", "flights", "gap.parquet", "out.parquet")
    assert code == 2 and "Row 3 is one the prediction service would refuse" in err
    batch = one_error_line(err).split("would refuse: ", 1)[1].split(" (--on-invalid")[0]
    assert "'dep_delay'" in batch and "never null in training" in batch

    v1_row = json.loads(rows.loc[[3]].to_json(orient="records"))[0]  # NaN: null
    body, size = _v2_binary(rows.loc[[3]])
    v2_json = {"inputs": [{"name": c, "shape": [1], "datatype": "BYTES" if isinstance(
        v1_row[c], str) else "FP64", "data": [v1_row[c]]} for c in FEATURES]}  # null: the gap
    answers = {}
    for alias in ("champion", "gappy"):  # v1, then v2 trained with gaps in dep_delay
        config = ServingConfig(models=("flights",), alias=alias, reload_interval=0)
        app = create_app("flights", config=config, settings=load_settings(),
                         feature_store=False)
        with TestClient(app) as client:
            answers[alias] = (
                client.post("/v1/models/flights:predict", json={"instances": [v1_row]}),
                client.post("/v2/models/flights/infer", content=body,
                            headers={"Inference-Header-Content-Length": size}),
                client.post("/v2/models/flights/infer", json=v2_json))
    v1, v2, v2_null = answers["champion"]
    assert v2_null.status_code == 422 and v2_null.json() == v2.json(), v2_null.text
    assert v2.status_code == 422 and v1.status_code == 422, (v1.text, v2.text)
    assert v2.json()["error"].split(": ", 1)[1] == batch.split(": ", 1)[1]  # the same words
    assert v1.json()["error"].split(": ", 1)[1] == batch.split(": ", 1)[1].replace(
        "has NaN values", "has nulls")  # JSON's null, not NaN: the same rule and advice
    # The version trained with gaps in dep_delay takes the same row everywhere.
    assert [a.status_code for a in answers["gappy"]] == [200, 200, 200], [
        a.text for a in answers["gappy"]]
    v2_outputs = {o["name"]: o["data"] for o in answers["gappy"][2].json()["outputs"]}
    assert v2_outputs["prediction"] == pytest.approx(answers["gappy"][0].json()["predictions"])
    code, out, err = cli(capsys, "predict", "flights:2", "gap.parquet", "out.parquet", "--json")
    assert code == 0 and json.loads(out)["invalid"] == 0, err
    code, out, err = cli(capsys, "predict", "flights", "gap.parquet", "skip.parquet",
                         "--on-invalid", "skip", "--json")
    assert code == 0 and json.loads(out)["invalid"] == 1, err


# --- the loop and the replay -----------------------------------------------------------------


@pytest.mark.slow
def test_a_replayed_span_with_gaps_the_champion_refuses_is_served_without_them(
        ctloop_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """week-00 trains v1 without a gap in usage (tenure declared nullable); week-01's rows
    with a missing usage are left out of serving and counted, not a failed replay; the
    candidate trained on both weeks takes nulls in usage."""
    paths = write_sample_spans(ctloop_home / "landing", spans=2, rows=300, change_at=None,
                               shift_at=None)
    schema = infer_schema(compute_statistics(paths[0], name="week-00"), label="churned")
    schema.columns["usage"].max_missing = 0.05  # the data may have gaps: not a broken span
    schema.save(ctloop_home / "schema.yaml")
    week = pd.read_parquet(paths[1])
    week.loc[[3, 50, 51], "usage"] = np.nan
    week.to_parquet(paths[1], index=False)
    (ctloop_home / "ctloop.toml").write_text(churn_loop(
        'schema = "schema.yaml"', 'window = "2 spans"',
        'train = { flavor = "lightgbm", params = { n_estimators = 10 }, nullable = ["tenure"] }'))
    code, out, err = cli(capsys, "loop", "replay", "churn", "--json")
    assert code == 0, err
    first, second = json.loads(out)["spans"]
    assert first["bootstrap"] and first["promoted"] == 1
    assert second["status"] == "valid" and second["served_version"] == 1
    assert second["live"]["n"] == 297  # three rows refused, the rest served and labelled
    [line] = second["anomalies"]
    assert line.startswith("[warning] serving: 3 of 300 rows left out, refused by churn v1")
    assert "'usage'" in line and "never null in training" in line
    from ctloop.core.settings import load_settings
    from ctloop.loop.sandbox import replay_settings

    sandbox = replay_settings(load_settings(), "churn")
    store = open_metadata_store(sandbox.metadata_url)
    try:
        registry = ModelRegistry(store)
        nullable = [_nullable(Signature.from_dict(dict(as_object(
            registry.get(f"churn:{v}").properties["signature"])))) for v in (1, 2)]
    finally:
        store.close()
    assert nullable[0] == {"customer": False, "usage": False, "tenure": True, "spend": False,
                           "plan": False}
    assert nullable[1]["usage"] and nullable[1]["tenure"]  # trained on week-01's gaps
