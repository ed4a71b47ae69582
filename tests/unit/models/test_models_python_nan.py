"""A plain Python predictor that answers NaN for a row is refused, naming the rows, as the
ONNX flavor refuses them: a NaN has no class label (its argmax would read as the first
class) and no value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ctloop.core.errors import UserInputError
from ctloop.examples.flights.data import flights
from ctloop.models.flavors import load_model, save_model
from ctloop.models.signature import Signature

COLUMNS = ["origin", "distance"]


class RateByOrigin:
    """P(delay) of the origin airport; NaN for an unknown origin or a missing distance."""

    def __init__(self, rates: dict[str, float]) -> None:
        self.rates = rates

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.array(frame["origin"].map(self.rates), dtype=float)
        out[frame["distance"].isna().to_numpy()] = np.nan
        return out


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return flights([1]).head(2000)


@pytest.fixture
def saved(data: pd.DataFrame, tmp_path: Path) -> Path:
    rates = {str(k): float(v) for k, v in data.groupby("origin")["delayed"].mean().items()}
    signature = Signature.from_frame(data, COLUMNS, {"name": "delayed"}, nullable=COLUMNS)
    save_model(RateByOrigin(rates), tmp_path / "py", signature=signature)
    return tmp_path / "py"


def test_rows_answered_nan_are_refused_by_row(saved: Path, data: pd.DataFrame) -> None:
    model = load_model(saved)
    assert model.flavor == "python" and model.task == "binary"
    rows = data[COLUMNS].head(100).reset_index(drop=True)
    assert model.predict(rows.head(1)).shape == (1,)  # complete rows answer
    assert not np.isnan(model.predict(rows)).any()

    two = rows.head(2).copy()
    two.loc[1, "distance"] = np.nan
    with pytest.raises(UserInputError, match=(
            r"answered NaN for 1 of 2 row\(s\) \(row 1, counting from 0\); those rows hold "
            r"a missing value \(null or NaN\) in column\(s\) \['distance'\]")):
        model.predict(two)
    with pytest.raises(UserInputError, match="answered NaN for 1 of 2"):
        model.predict_labels(two)  # never a label for a NaN

    many = rows.copy()
    many.loc[[3, 50, 99], "distance"] = np.nan
    with pytest.raises(UserInputError, match=r"3 of 100 row\(s\) \(row 3, 50, 99,"):
        model.predict(many)

    unknown = rows.head(2).copy()
    unknown.loc[0, "origin"] = "ORD"  # no null: the model's own NaN, refused all the same
    with pytest.raises(UserInputError, match=r"1 of 2 row\(s\) \(row 0, counting from 0\): "):
        model.predict(unknown)


def test_the_service_answers_4xx_naming_the_rows(saved: Path, tmp_path: Path) -> None:
    from ctloop.artifacts import open_artifact_store
    from ctloop.metadata import ArtifactRecord, new_id
    from ctloop.registry import ModelRegistry
    from ctloop.serving import ServingConfig, create_app
    from ctloop.testing.inmemory import InMemoryMetadataStore

    store = InMemoryMetadataStore()
    artifacts = open_artifact_store((tmp_path / "artifacts").as_uri())
    stored = artifacts.put(saved)
    record = store.add_artifact(ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256,
                                               stored.size))
    registry = ModelRegistry(store, actor="test")
    registry.register("rates", record.id)
    registry.promote("rates", 1)
    app = create_app("rates", metadata=store, artifacts=artifacts, feature_store=False,
                     prediction_log=False, config=ServingConfig(reload_interval=0))
    rows = [{"origin": "JFK", "distance": 1000}, {"origin": "LGA", "distance": None}]
    with TestClient(app) as client:
        ok = client.post("/v1/models/rates:predict", json={"instances": rows[:1]})
        assert ok.status_code == 200, ok.text
        refused = client.post("/v1/models/rates:predict", json={"instances": rows})
        assert refused.status_code == 422, refused.text  # as every bad-input answer
        assert "answered NaN for 1 of 2 row(s) (row 1, counting from 0)" in refused.text
        assert "distance" in refused.json()["error"]
