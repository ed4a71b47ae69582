"""`ctloop predict` and `ctloop explain` on a real project: chunked scoring, lineage, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctloop.artifacts import open_artifact_store
from ctloop.core.jsontypes import as_list, as_object
from ctloop.examples.flights.data import flights
from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
from ctloop.metadata.lineage import lineage
from ctloop.models import fit_model
from ctloop.models.flavors import MANIFEST, load_model
from ctloop.registry import ModelRegistry
from ctloop.testing.cli import cli, one_error_line

FEATURES = ["origin", "carrier", "hour", "distance", "dep_delay"]


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("predict-models")
    data = flights([1]).head(5000)
    out = {}
    for name, algorithm, params in (
        ("lgb", "lightgbm", {"n_estimators": 10, "n_jobs": 1}),
        ("hgb", "hist_gradient_boosting", {"max_iter": 5}),
    ):
        fit_model(
            data, label="delayed", features=FEATURES, algorithm=algorithm, params=params
        ).save(root / name)
        out[name] = root / name
    # A version whose evaluation chose a cost-aware threshold of 0.3.
    manifest = json.loads((out["lgb"] / MANIFEST).read_text())
    manifest["metadata"]["decision_threshold"] = 0.3
    (root / "lgb03").mkdir()
    for item in out["lgb"].iterdir():
        (root / "lgb03" / item.name).write_bytes(item.read_bytes())
    (root / "lgb03" / MANIFEST).write_text(json.dumps(manifest))
    out["lgb03"] = root / "lgb03"
    return out


@pytest.fixture
def project(ctloop_home: Path, model_folders: dict[str, Path]) -> Path:
    """flights:1 (champion, threshold 0.5), flights:2 (threshold 0.3), flights:3 (no explain)."""
    store = open_metadata_store()
    artifacts = open_artifact_store()
    registry = ModelRegistry(store, actor="test")
    for key in ("lgb", "lgb03", "hgb"):
        stored = artifacts.put(model_folders[key])
        art = store.add_artifact(
            ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256, stored.size, name=key)
        )
        registry.register("flights", art.id)
    registry.promote("flights", 1)
    registry.promote("flights", 2, alias="lowcost")
    store.close()
    rows = flights([2]).head(20_000)[[*FEATURES, "tailnum", "flight"]].reset_index(drop=True)
    rows.to_parquet(ctloop_home / "feb.parquet", row_group_size=4000)
    rows.head(3000).to_csv(ctloop_home / "feb.csv", index=False)
    return ctloop_home


def test_predict_scores_every_row_in_chunks_and_records_lineage(
    project: Path, model_folders: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(
        capsys,
        "predict",
        "flights",
        "feb.parquet",
        "scored.parquet",
        "--chunk-rows",
        "3000",
        "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["rows"] == 20_000 and summary["version"] == 1
    assert summary["decision_threshold"] == 0.5
    scored = pd.read_parquet(project / "scored.parquet")
    source = pd.read_parquet(project / "feb.parquet")
    assert list(scored.columns) == [*source.columns, "score", "decision"]
    pd.testing.assert_frame_equal(scored[source.columns], source)
    want = load_model(model_folders["lgb"]).predict(source)  # one pass over the whole frame
    np.testing.assert_allclose(scored["score"], want, rtol=0, atol=1e-12)
    assert (scored["decision"] == (want >= 0.5)).all()
    assert summary["positives"] == int((want >= 0.5).sum())

    store = open_metadata_store()
    run = store.get_run(summary["run_id"])
    assert run.pipeline == "batch-predict" and run.status == "succeeded"
    [step] = store.get_steps(run.id)
    assert step.outputs["rows"] == 20_000
    graph = lineage(store, summary["output_artifact_id"], direction="upstream").to_dict()
    artifacts = [as_object(a) for a in as_list(graph["artifacts"])]
    kinds = {(a["type"], a["name"]) for a in artifacts}
    assert {("Dataset", "predictions"), ("Dataset", "data"), ("Model", "lgb")} <= kinds
    model_record = store.get_model_version("flights", 1)
    assert model_record.artifact_id in {a["id"] for a in artifacts}
    store.close()


def test_predict_reads_and_writes_csv_at_the_models_threshold(
    project: Path, model_folders: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "predict", "flights@lowcost", "feb.csv", "out.csv", "--json")
    assert code == 0, err
    assert json.loads(out)["decision_threshold"] == 0.3
    scored = pd.read_csv(project / "out.csv")
    want = load_model(model_folders["lgb"]).predict(pd.read_csv(project / "feb.csv"))
    assert len(scored) == 3000
    np.testing.assert_allclose(scored["score"], want, atol=1e-9)
    assert (scored["decision"] == (want >= 0.3)).all()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["nosuch", "feb.parquet", "o.parquet"], "No model named 'nosuch'"),
        (["flights@nosuch", "feb.parquet", "o.parquet"], "no alias 'nosuch'"),
        (["flights", "missing.parquet", "o.parquet"], "does not exist"),
        (["flights", "feb.parquet", "o.txt"], "must end in .parquet"),
        (["flights", "garbage.parquet", "o.parquet"], "Cannot read"),
        (["flights", "partial.parquet", "o.parquet"], "missing column(s) ['dep_delay']"),
        (["flights", "feb.parquet", "taken.parquet"], "already exists; pass --overwrite"),
        (["flights", "feb.parquet", "nodir/o.parquet"], "does not exist; create it"),
    ],
)
def test_bad_predict_input_is_one_line_and_writes_nothing(
    project: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    (project / "garbage.parquet").write_bytes(b"not a parquet file at all")
    pd.read_parquet(project / "feb.parquet").drop(columns="dep_delay").to_parquet(
        project / "partial.parquet"
    )
    (project / "taken.parquet").write_bytes(b"keep me")
    code, _, err = cli(capsys, "predict", *args)
    assert code != 0
    assert says in one_error_line(err)
    assert not (project / "o.parquet").exists()
    assert (project / "taken.parquet").read_bytes() == b"keep me"
    assert not list(project.glob(".*.tmp-*"))


def test_overwrite_replaces_an_existing_output(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "taken.parquet").write_bytes(b"old")
    code, _, err = cli(
        capsys, "predict", "flights", "feb.csv", "taken.parquet", "--overwrite", "--no-progress"
    )
    assert code == 0, err
    assert len(pd.read_parquet(project / "taken.parquet")) == 3000


def test_explain_shows_top_contributions_that_add_up(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(
        capsys, "explain", "flights", "feb.parquet", "--top", "2", "--limit", "4", "--json"
    )
    assert code == 0, err
    body = json.loads(out)
    assert body["version"] == 1 and len(body["explanations"]) == 4
    full_code, full_out, _ = cli(
        capsys, "explain", "flights", "feb.csv", "--top", "5", "--limit", "4", "--json"
    )
    assert full_code == 0
    for short, full in zip(body["explanations"], json.loads(full_out)["explanations"], strict=True):
        assert len(short["contributions"]) == 2
        total = full["base_value"] + sum(c["value"] for c in full["contributions"])
        assert total == pytest.approx(full["raw_score"], abs=1e-9)
        assert short["contributions"] == full["contributions"][:2]
    code, out, _ = cli(capsys, "explain", "flights", "feb.parquet", "--limit", "1")
    assert code == 0 and "row 0" in out and "dep_delay" in out


def test_explain_refuses_what_it_cannot_explain_in_one_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "explain", "flights:3", "feb.parquet")
    assert code == 2 and "HistGradientBoostingClassifier" in one_error_line(err)
    code, _, err = cli(capsys, "explain", "flights", "feb.txt")
    assert code != 0 and "does not exist" in one_error_line(err)


def test_predict_can_log_every_row_to_the_prediction_log(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ctloop.requestlog.log import open_prediction_log

    code, out, err = cli(
        capsys,
        "predict",
        "flights",
        "feb.csv",
        "o.parquet",
        "--log",
        "--id-column",
        "flight",
        "--now",
        "2013-02-28T00:00:00",
        "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    logged = open_prediction_log(project / ".ctloop" / "predictions").read(model_name="flights")
    scored = pd.read_parquet(project / "o.parquet")
    assert len(logged) == 3000 and logged["request_id"].is_unique
    assert logged["request_id"].str.startswith(summary["run_id"]).all()
    assert set(logged["model_version"]) == {1} and set(logged["route"]) == {"batch"}
    by_row = logged.set_index("request_id").loc[[f"{summary['run_id']}-{i}" for i in range(3000)]]
    np.testing.assert_allclose(by_row["prediction"], scored["score"], atol=1e-12)
    assert {str(t)[:10] for t in logged["ts"]} == {"2013-02-28"}
    code, _, err = cli(capsys, "predict", "flights", "feb.csv", "o2.parquet", "--id-column", "x")
    assert code == 2 and "no id column 'x'" in one_error_line(err)
    code, _, err = cli(capsys, "predict", "flights", "feb.csv", "o2.parquet", "--now", "June")
    assert code == 2 and "ISO timestamp" in one_error_line(err)


def test_predict_refuses_exactly_the_rows_the_service_refuses(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import tritonclient.http as httpclient
    from fastapi.testclient import TestClient

    from ctloop.core.settings import load_settings
    from ctloop.serving import ServingConfig, create_app

    rows = pd.read_parquet(project / "feb.parquet").head(1000)
    rows.loc[[5, 700], "dep_delay"] = np.inf  # training never saw an infinity there
    rows.to_parquet(project / "bad.parquet", row_group_size=400)
    code, _, err = cli(capsys, "predict", "flights", "bad.parquet", "out.parquet")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "Row 5 is one the prediction service would refuse" in err
    assert "'dep_delay'" in err and not (project / "out.parquet").exists()

    app = create_app("flights", config=ServingConfig(models=("flights",), reload_interval=0),
                     settings=load_settings(), feature_store=False)
    inputs = []  # row 5 as the binary tensor extension carries it (JSON has no infinity)
    for column in FEATURES:
        values = rows.loc[[5], column].to_numpy()
        if values.dtype == object:
            tensor = httpclient.InferInput(column, [1], "BYTES")
            tensor.set_data_from_numpy(values.astype(np.object_), binary_data=True)
        else:
            tensor = httpclient.InferInput(column, [1], "FP64")
            tensor.set_data_from_numpy(values.astype(np.float64), binary_data=True)
        inputs.append(tensor)
    body, json_size = httpclient.InferenceServerClient.generate_request_body(inputs)
    with TestClient(app) as client:
        answer = client.post("/v2/models/flights/infer", content=body, headers={
            "Inference-Header-Content-Length": str(json_size)})
    assert answer.status_code == 422
    served_message = answer.json()["error"]
    batch_message = err.split("would refuse: ", 1)[1].split(" (--on-invalid")[0]
    assert served_message.split(": ", 1)[1] == batch_message.split(": ", 1)[1], (
        served_message, batch_message)  # the same check, the same words

    code, out, err = cli(capsys, "predict", "flights", "bad.parquet", "skip.parquet",
                         "--on-invalid", "skip", "--json")
    assert code == 0, err
    assert json.loads(out)["invalid"] == 2
    assert len(pd.read_parquet(project / "skip.parquet")) == 998

    code, out, err = cli(capsys, "predict", "flights", "bad.parquet", "flag.parquet",
                         "--on-invalid", "flag", "--json")
    assert code == 0, err
    flagged = pd.read_parquet(project / "flag.parquet")
    assert len(flagged) == 1000 and flagged["invalid"].notna().sum() == 2
    assert flagged.loc[[5, 700], "score"].isna().all()
    assert flagged.drop(index=[5, 700])["score"].notna().all()
    code, _, err = cli(capsys, "predict", "flights", "bad.parquet", "x.parquet",
                       "--on-invalid", "maybe")
    assert code == 2 and "--on-invalid must be one of fail, skip, flag" in err
