"""`ctloop data ...` end to end on files, and the offline HTML report."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ctloop.cli.data import app
from ctloop.core.errors import NotFound, ValidationFailed

runner = CliRunner()


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    n = 3000
    train = pd.DataFrame(
        {
            "distance": rng.integers(100, 3000, n),
            "temp": rng.normal(40, 10, n),
            "carrier": rng.choice(["AA", "DL", "UA"], n),
        }
    )
    good = train.sample(frac=1.0, random_state=1)
    bad = train.rename(columns={"carrier": "airline"}).assign(temp=train["temp"] + 40)
    bad.loc[:3, "distance"] = -1
    paths = {}
    for name, df in {"train": train, "good": good, "bad": bad}.items():
        paths[name] = tmp_path / f"{name}.parquet"
        df.to_parquet(paths[name], index=False)
    train.to_csv(tmp_path / "train.csv", index=False)
    paths["csv"] = tmp_path / "train.csv"
    return paths


def test_stats_json_and_saved_statistics(files, tmp_path):
    out = tmp_path / "s.json"
    result = runner.invoke(app, ["stats", str(files["csv"]), "--json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    cols = {c["name"]: c for c in doc["statistics"]["columns"]}
    assert cols["carrier"]["categorical"]["distinct"] == 3
    assert "kll" not in cols["temp"]["numeric"]  # summaries print without sketches
    assert json.loads(out.read_text())["format"] == "ctloop.statistics"


def test_schema_then_validate_good_and_bad(files, tmp_path):
    schema = tmp_path / "schema.yaml"
    assert runner.invoke(app, ["schema", str(files["train"]), "-o", str(schema)]).exit_code == 0
    ok = runner.invoke(app, ["validate", str(files["good"]), "--schema", str(schema)])
    assert ok.exit_code == 0, ok.output
    html = tmp_path / "bad.html"
    bad = runner.invoke(
        app,
        [
            "validate",
            str(files["bad"]),
            "--schema",
            str(schema),
            "--reference",
            str(files["train"]),
            "--json",
            "--html",
            str(html),
        ],
    )
    assert bad.exit_code == 1 and isinstance(bad.exception, ValidationFailed)
    doc = json.loads(bad.output)
    kinds = {(a["column"], a["kind"]) for a in doc["validation"]["anomalies"]}
    assert {
        ("carrier", "missing_column"),
        ("distance", "out_of_range"),
        ("airline", "unexpected_column"),
        ("temp", "drift"),
    } <= kinds
    page = html.read_text()
    assert "missing_column" in page and "<svg" in page
    assert not re.search(r"<script|<link|@import|src=\"http", page)


def test_drift_command(files, tmp_path):
    html = tmp_path / "drift.html"
    result = runner.invoke(
        app, ["drift", str(files["train"]), str(files["bad"]), "--json", "--html", str(html)]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)["drift"]
    drifted = {f["column"] for f in doc["features"] if f["drifted"]}
    assert drifted == {"temp"}
    assert "temp" in html.read_text()


def test_missing_file_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["stats", str(tmp_path / "nope.csv")])
    assert isinstance(result.exception, NotFound)
    assert "No file at" in str(result.exception)


def test_schema_from_a_folder_of_batches_and_drift_with_schema(tmp_path):
    from ctloop.examples.flights.data import load_table

    flights = load_table("flights")
    folder = tmp_path / "months"
    folder.mkdir()
    for month in (1, 2):
        flights[flights["month"] == month].to_parquet(folder / f"{month:02d}.parquet")
    schema = tmp_path / "schema.yaml"
    result = runner.invoke(app, ["schema", str(folder), "-o", str(schema), "--id", "flight"])
    assert result.exit_code == 0, result.output
    assert "from 2 batch(es)" in result.output
    text = schema.read_text()
    assert "role: calendar" in text and "role: id" in text
    result = runner.invoke(
        app,
        [
            "drift",
            str(folder / "01.parquet"),
            str(folder / "02.parquet"),
            "--schema",
            str(schema),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    left_out = {f["column"] for f in body["drift"]["features"] if not f["in_share"]}
    assert {"month", "year", "flight", "time_hour"} <= left_out
    weights = tmp_path / "w.json"
    weights.write_text("[1, 2]")
    result = runner.invoke(
        app,
        [
            "drift",
            str(folder / "01.parquet"),
            str(folder / "02.parquet"),
            "--weights",
            str(weights),
        ],
    )
    assert result.exit_code != 0 and "JSON object of feature name -> number" in str(
        result.exception
    )
