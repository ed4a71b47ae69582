"""A scikit-learn Pipeline served over v1 and v2 answers what scikit-learn answers.

Two Pipelines fitted on flights rows, registered and served as ``ctloop serve`` serves
them: a ColumnTransformer (numeric columns imputed and scaled, carrier and origin one-hot
encoded, read by name: the frame path) and a scaled logistic regression on the numeric
columns (the NumPy path and its kernels, ``models.sklearn_kernels``). Both answer, for 1,
2 and 100 rows, exactly ``pipeline.predict_proba`` on the same rows (NaN where the
imputer takes it, categories never seen in training), and bad rows get the same 4xx.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ctloop.examples.flights.data import flights
from ctloop.models import Signature, save_model
from ctloop.models.sklearn_kernels import kernel_chain

NUMERIC = ["hour", "distance", "dep_delay"]
CATEGORICAL = ["carrier", "origin"]
CLASSES = ["early", "on time", "late"]
ROWS = (1, 2, 100)


def _arrival(frame: pd.DataFrame) -> np.ndarray:
    delay = frame["arr_delay"].to_numpy(dtype=float)
    return np.asarray(CLASSES, dtype=object)[np.digitize(delay, [0.0, 30.0])]


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    frame = flights([1]).head(4000).dropna(subset=["arr_delay"]).reset_index(drop=True)
    frame["hour"] = frame["hour"].astype("int64")
    frame["distance"] = frame["distance"].astype("float64")
    return frame


@pytest.fixture(scope="module")
def rows(train: pd.DataFrame) -> pd.DataFrame:
    """100 February rows: NaN delays (the imputer fills them), a carrier unseen in January."""
    frame = flights([2]).head(100)[[*NUMERIC, *CATEGORICAL]].reset_index(drop=True)
    frame["hour"] = frame["hour"].astype("int64")
    frame["distance"] = frame["distance"].astype("float64")
    frame.loc[[1, 7, 40], "dep_delay"] = np.nan
    frame.loc[5, "carrier"] = "ZZ"
    assert frame["dep_delay"].isna().any() and not frame.loc[1:, "dep_delay"].isna().all()
    return frame


def _columns_pipeline(train: pd.DataFrame) -> Pipeline:
    numeric = make_pipeline(SimpleImputer(), StandardScaler())
    encode = ColumnTransformer([("numeric", numeric, NUMERIC),
                                ("categories", OneHotEncoder(handle_unknown="ignore"),
                                 CATEGORICAL)])
    return make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(
        train[[*NUMERIC, *CATEGORICAL]], _arrival(train))


def _numeric_pipeline(train: pd.DataFrame) -> Pipeline:
    x = train[NUMERIC].dropna()
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        x, _arrival(train.loc[x.index]))


def _serve(project: Any, tmp_path: Path, name: str, model: Pipeline, frame: pd.DataFrame,
           features: list[str], nullable: list[str]) -> None:
    folder = tmp_path / name
    signature = Signature.from_frame(frame, features, nullable=nullable)
    save_model(model, folder, signature=signature, task="multiclass")
    project.register(folder, name)
    project.registry.promote(name, 1)


def _v2(frame: pd.DataFrame) -> dict[str, Any]:
    inputs = []
    for column in frame.columns:
        values = frame[column]
        if values.dtype.kind not in "iuf":
            inputs.append({"name": column, "shape": [len(frame)], "datatype": "BYTES",
                           "data": values.tolist()})
        else:
            kind = "INT64" if values.dtype.kind == "i" else "FP64"
            data = [None if v != v else v for v in values.tolist()]  # JSON has no NaN
            inputs.append({"name": column, "shape": [len(frame)], "datatype": kind,
                           "data": data})
    return {"inputs": inputs}


def _answers(client: TestClient, name: str, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The probabilities over v1 (rows as records) and v2 (one tensor per column)."""
    records = [{k: (None if isinstance(v, float) and np.isnan(v) else v)
                for k, v in row.items()} for row in frame.to_dict(orient="records")]
    v1 = client.post(f"/v1/models/{name}:predict", json={"instances": records})
    assert v1.status_code == 200, v1.text
    v2 = client.post(f"/v2/models/{name}/infer", json=_v2(frame))
    assert v2.status_code == 200, v2.text
    outputs = {o["name"]: o for o in v2.json()["outputs"]}
    probabilities = outputs["probabilities"]
    assert v1.json()["predictions"] == outputs["label"]["data"]
    return {"v1": np.asarray(v1.json()["probabilities"]),
            "v2": np.reshape(probabilities["data"], probabilities["shape"])}


def test_a_column_transformer_pipeline_answers_as_scikit_learn(
        project: Any, tmp_path: Path, train: pd.DataFrame, rows: pd.DataFrame) -> None:
    features = [*NUMERIC, *CATEGORICAL]
    pipeline = _columns_pipeline(train)
    _serve(project, tmp_path, "columns", pipeline, train, features, ["dep_delay"])
    with TestClient(project.app("columns")) as client:
        for n in ROWS:
            frame = rows.head(n) if n > 2 else rows.iloc[[1, 5][:n]]  # NaN, unseen carrier
            expected = pipeline.predict_proba(frame[features])
            for protocol, got in _answers(client, "columns", frame[features]).items():
                np.testing.assert_array_equal(got, expected, err_msg=f"{protocol} {n} rows")
        text = _v2(rows.head(2)[features])
        text["inputs"][1] = {"name": "distance", "shape": [2], "datatype": "BYTES",
                             "data": ["far", "near"]}
        refused = client.post("/v2/models/columns/infer", json=text)
        assert refused.status_code in (400, 422) and "distance" in refused.json()["error"]


def test_a_numeric_pipeline_answers_as_scikit_learn_and_refuses_as_before(
        project: Any, tmp_path: Path, train: pd.DataFrame, rows: pd.DataFrame) -> None:
    pipeline = _numeric_pipeline(train)
    scale, logistic = (s for _, s in pipeline.steps)
    assert kernel_chain([scale], logistic, "predict_proba") is not None  # the NumPy path's
    # dep_delay may be null (the signature says so), but this pipeline cannot score a NaN
    _serve(project, tmp_path, "numeric", pipeline, train.dropna(subset=NUMERIC), NUMERIC,
           ["dep_delay"])
    complete = rows[NUMERIC].dropna().reset_index(drop=True)
    with TestClient(project.app("numeric")) as client:
        for n in ROWS:
            frame = complete.head(n)
            expected = pipeline.predict_proba(frame)
            for protocol, got in _answers(client, "numeric", frame).items():
                np.testing.assert_array_equal(got, expected, err_msg=f"{protocol} {n} rows")
        gap = client.post("/v1/models/numeric:predict", json={"instances": [
            {"hour": 5, "distance": 1000.0, "dep_delay": None}]})
        assert gap.status_code in (400, 422) and "dep_delay" in gap.json()["error"]
