"""Infra check: load in a fresh process, predict sample rows, or fail clearly."""

from __future__ import annotations

import json
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
