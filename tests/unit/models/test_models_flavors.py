"""Saving and loading every flavor on real flights data; hashes, signatures, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ctloop.core.errors import BackendUnavailable, IntegrityError, NotFound, UserInputError
from ctloop.models import (
    ModelEnvironmentWarning,
    Signature,
    fit_model,
    load_model,
    read_manifest,
    save_model,
)
from ctloop.models.flavors import MANIFEST

FEATURES = ["origin", "carrier", "hour", "distance", "month", "dest"]

SMALL = {
    "logistic": {"max_iter": 200},
    "hist_gradient_boosting": {"max_iter": 30},
    "lightgbm": {"n_estimators": 30, "n_jobs": 1},
    "xgboost": {"n_estimators": 30, "n_jobs": 1},
}


class MeanDelayPredictor:
    """A plain Python predictor: the training delay rate of each origin airport."""

    def __init__(self, rates: dict[str, float]) -> None:
        self.rates = rates

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return frame["origin"].map(self.rates).fillna(0.2).to_numpy(dtype=float)


@pytest.mark.parametrize("algorithm", list(SMALL))
def test_round_trip_predicts_the_same_and_hash_is_reproducible(
    algorithm: str, jan_feb: pd.DataFrame, april: pd.DataFrame, tmp_path: Path
) -> None:
    fits = [
        fit_model(
            jan_feb,
            label="delayed",
            features=FEATURES,
            algorithm=algorithm,
            params=SMALL[algorithm],
            seed=5,
        )
        for _ in range(2)
    ]
    manifests = [f.save(tmp_path / f"m{i}") for i, f in enumerate(fits)]
    assert manifests[0]["sha256"] == manifests[1]["sha256"]
    assert manifests[0]["metadata"]["seed"] == 5
    loaded = load_model(tmp_path / "m0")
    assert loaded.flavor == fits[0].flavor
    assert loaded.signature.columns == FEATURES
    p = loaded.predict(april)
    assert p.shape == (len(april),) and ((p >= 0) & (p <= 1)).all()
    assert roc_auc_score(april["delayed"], p) > 0.6
    # Extra columns are ignored; column order does not matter.
    shuffled = april[[*reversed(april.columns)]]
    np.testing.assert_allclose(loaded.predict(shuffled), p)


def test_python_predictor_and_signature_types(jan_feb: pd.DataFrame, tmp_path: Path) -> None:
    rates = {str(k): float(v) for k, v in jan_feb.groupby("origin")["delayed"].mean().items()}
    sig = Signature.from_frame(jan_feb, ["origin", "distance"], {"name": "delayed"})
    assert [c.type for c in sig.inputs] == ["string", "integer"]
    manifest = save_model(MeanDelayPredictor(rates), tmp_path / "py", signature=sig)
    assert manifest["flavor"] == "python"
    loaded = load_model(tmp_path / "py")
    out = loaded.predict(pd.DataFrame({"origin": ["JFK", "EWR"], "distance": ["100", 5]}))
    np.testing.assert_allclose(out, [rates["JFK"], rates["EWR"]])
    with pytest.raises(UserInputError, match="'distance' must be integer"):
        loaded.predict(pd.DataFrame({"origin": ["JFK"], "distance": ["far"]}))


def test_missing_column_is_named(
    jan_feb: pd.DataFrame, april: pd.DataFrame, tmp_path: Path
) -> None:
    fit_model(
        jan_feb,
        label="delayed",
        features=FEATURES,
        algorithm="lightgbm",
        params={"n_estimators": 5, "n_jobs": 1},
    ).save(tmp_path / "m")
    with pytest.raises(UserInputError, match=r"missing column\(s\) \['carrier'\]"):
        load_model(tmp_path / "m").predict(april.drop(columns=["carrier"]))


def test_corrupted_model_file_is_an_integrity_error(jan_feb: pd.DataFrame, tmp_path: Path) -> None:
    manifest = fit_model(
        jan_feb,
        label="delayed",
        features=FEATURES,
        algorithm="xgboost",
        params={"n_estimators": 5, "n_jobs": 1},
    ).save(tmp_path / "m")
    model_file = tmp_path / "m" / manifest["model_file"]
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="changed or damaged"):
        load_model(tmp_path / "m")


def test_missing_package_and_version_mismatch(jan_feb: pd.DataFrame, tmp_path: Path) -> None:
    fit_model(
        jan_feb,
        label="delayed",
        features=FEATURES,
        algorithm="lightgbm",
        params={"n_estimators": 5, "n_jobs": 1},
    ).save(tmp_path / "m")
    path = tmp_path / "m" / MANIFEST
    manifest = read_manifest(tmp_path / "m")
    manifest["requirements"]["lightgbm"] = "lightgbm==0.1"
    path.write_text(json.dumps(manifest))
    with pytest.warns(ModelEnvironmentWarning, match="saved with lightgbm 0.1"):
        load_model(tmp_path / "m")
    manifest["requirements"]["ctloop_no_such_module"] = "ctloop-no-such-dist==1.0"
    path.write_text(json.dumps(manifest))
    with (
        pytest.warns(ModelEnvironmentWarning),
        pytest.raises(BackendUnavailable, match=re.escape("install 'ctloop-no-such-dist==1.0'")),
    ):
        load_model(tmp_path / "m")


def test_not_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="not a saved ctloop model"):
        load_model(tmp_path)


def test_training_refuses_bad_input(jan_feb: pd.DataFrame) -> None:
    with pytest.raises(UserInputError, match="no column"):
        fit_model(jan_feb, label="delayed", features=["origin", "nope"])
    with pytest.raises(UserInputError, match="'algorithm' must be one of"):
        fit_model(jan_feb, label="delayed", features=["origin"], algorithm="magic")
    with pytest.raises(UserInputError, match="no label column"):
        fit_model(jan_feb, label="late", features=["origin"])


def test_training_records_summary_and_params(jan_feb: pd.DataFrame) -> None:
    trained = fit_model(
        jan_feb,
        label="delayed",
        features=FEATURES,
        algorithm="lightgbm",
        params={"n_estimators": 7, "n_jobs": 1},
        seed=3,
    )
    assert trained.params["n_estimators"] == 7 and trained.params["random_state"] == 3
    assert trained.training_seconds > 0 and trained.n_rows == len(jan_feb)
    summary = trained.data_summary
    assert summary["columns"]["distance"]["mean"] == pytest.approx(jan_feb["distance"].mean())
    assert summary["columns"]["origin"]["distinct"] == 3
    assert summary["label_mean"] == pytest.approx(jan_feb["delayed"].mean())
