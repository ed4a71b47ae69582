"""Infra check: load in a fresh process, predict sample rows, or fail clearly."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from ctloop.examples.flights.data import flights
from ctloop.models import fit_model, infra_check, read_manifest
from ctloop.models.flavors import MANIFEST


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("infra") / "m"
    fit_model(
        flights([1]).head(5000),
        label="delayed",
        features=["origin", "hour", "distance"],
        algorithm="lightgbm",
        params={"n_estimators": 10, "n_jobs": 1},
    ).save(path)
    return path


def test_servable_model_passes(model_dir: Path) -> None:
    result = infra_check(model_dir, flights([2]).head(50))
    assert result["passed"], result
    assert {c["check"] for c in result["checks"]} >= {"loads", "shape", "type", "latency"}
    assert 0 < result["latency_ms"] < 1000


def test_missing_package_fails_clearly(model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "m"
    broken.mkdir()
    for f in model_dir.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    manifest = read_manifest(broken)
    manifest["requirements"]["ctloop_absent"] = "ctloop-absent==2.0"
    (broken / MANIFEST).write_text(json.dumps(manifest))
    result = infra_check(broken, flights([2]).head(5))
    assert not result["passed"]
    assert "pip install 'ctloop-absent==2.0'" in result["error"]


def test_sample_missing_a_column_fails(model_dir: Path) -> None:
    result = infra_check(model_dir, flights([2]).head(5).drop(columns=["distance"]))
    assert not result["passed"] and "distance" in result["error"]


PREDICTOR = '''
import numpy as np


class Constant:
    """A predictor whose class exists only in this file: no server can import it."""

    def predict(self, frame):
        return np.full(len(frame), 0.5)
'''


def test_a_class_only_the_training_process_loaded_fails(tmp_path: Path) -> None:
    """The probe's process never saw the module the training process imported, so
    the pickle cannot be read there: exactly what the prediction service would hit."""
    from ctloop.core.importing import import_file
    from ctloop.models.flavors import load_model, save_model
    from ctloop.models.signature import Signature

    (tmp_path / "notebook_cell.py").write_text(PREDICTOR)
    module = import_file(tmp_path / "notebook_cell.py", "ctloop_notebook")
    sample = flights([2]).head(5)
    signature = Signature.from_frame(sample, ["distance"], {"name": "delayed",
                                                             "type": "probability"})
    save_model(module.Constant(), tmp_path / "m", signature=signature, flavor="python")
    assert load_model(tmp_path / "m").predict(sample).tolist() == [0.5] * 5  # here it works
    result = infra_check(tmp_path / "m", sample)
    assert not result["passed"]
    assert "ctloop_notebook" in result["error"], result["error"]


def test_inside_a_daemonic_process_a_new_interpreter_checks(model_dir: Path) -> None:
    """A pool worker (or a Dask worker) is daemonic and may not fork children: the check
    then starts a new interpreter instead, with the same verdict."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result = pool.apply(infra_check, (str(model_dir), flights([2]).head(20)))
    assert result["passed"], result
    assert {c["check"] for c in result["checks"]} >= {"loads", "shape", "type", "latency"}
