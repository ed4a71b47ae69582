"""``ctloop models test``: the candidate served for real over v1, v2 and gRPC, then loaded.

A good LightGBM model passes; a model that answers wrongly for 2 rows over
HTTP (one prediction, or a 500) fails, in the CLI and in the infra check the gate's ``serving``
rule turns on; a model that sleeps breaks a p99 budget.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from ctloop.artifacts import open_artifact_store
from ctloop.core.errors import UserInputError
from ctloop.examples.flights.data import flights
from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
from ctloop.models import GateConfig, Signature, fit_model, infra_check, save_model
from ctloop.models.servingtest import SIZES, ServingBudget
from ctloop.registry import ModelRegistry
from ctloop.testing.cli import cli

HERE = Path(__file__).resolve().parent
FEATURES = ["origin", "hour"]


@pytest.fixture
def project(ctloop_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """flights:1 LightGBM, flights:2 wrong for 2 rows, flights:3 sleeps 50 ms per call,
    flights:4 multiclass, flights:5 regression."""
    monkeypatch.syspath_prepend(str(HERE))
    import serving_predictors as predictors

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.delenv("CTLOOP_ENV", raising=False)
    home = ctloop_home / ".ctloop"
    home.mkdir()
    store = open_metadata_store(f"sqlite:///{home / 'metadata.db'}")
    artifacts = open_artifact_store((home / "artifacts").as_uri())
    registry = ModelRegistry(store, actor="test")
    data = flights([1]).head(3000)
    fit_model(data, label="delayed", features=FEATURES, algorithm="lightgbm",
              params={"n_estimators": 20, "n_jobs": 1}).save(ctloop_home / "good")
    signature = Signature.from_frame(data, FEATURES)
    for name, predictor in (("broken", predictors.TwoRowsBreak()),
                            ("slow", predictors.Sleeper(0.05))):
        save_model(predictor, ctloop_home / name, signature=signature, task="regression",
                   flavor="python")
    # every task answers as it does in-process: multiclass (3 airports), regression
    fit_model(data.dropna(subset=["distance"]), label="origin", features=["hour", "distance"],
              algorithm="lightgbm", task="multiclass",
              params={"n_estimators": 10, "n_jobs": 1}).save(ctloop_home / "multiclass")
    fit_model(data.dropna(subset=["dep_delay"]), label="dep_delay", features=FEATURES,
              algorithm="lightgbm", task="regression",
              params={"n_estimators": 10, "n_jobs": 1}).save(ctloop_home / "regression")
    for name in ("good", "broken", "slow", "multiclass", "regression"):
        stored = artifacts.put(ctloop_home / name)
        art = store.add_artifact(ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256,
                                                stored.size))
        registry.register("flights", art.id)
    store.close()
    flights([2]).head(300)[[*FEATURES, "distance"]].to_parquet(ctloop_home / "sample.parquet")
    return ctloop_home


def _test(capsys: pytest.CaptureFixture[str], ref: str, *extra: str) -> tuple[int, dict]:
    code, out, err = cli(capsys, "models", "test", ref, "--data", "sample.parquet", "--json",
                         "--concurrency", "2", "--duration", "1", *extra)
    assert out, err
    return code, json.loads(out)


@pytest.mark.slow
def test_models_test_passes_a_good_model_and_fails_the_misbehaving_ones(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, good = _test(capsys, "flights@1", "--p99-ms", "5000")
    assert code == 0, good["failures"]
    assert good["passed"] and good["protocols"] == ["v1", "v2", "grpc"]
    assert sorted((a["protocol"], a["rows"]) for a in good["answers"]) == sorted(
        (p, n) for p in ("v1", "v2", "grpc") for n in SIZES)
    assert good["load"]["requests"] > 0 and good["load"]["errors"] == 0
    for version in (4, 5):  # multiclass (labels and probabilities), regression (values)
        code, other = _test(capsys, f"flights@{version}", "--no-load")
        assert code == 0 and other["load"] is None, other["failures"]
        assert len(other["answers"]) == 9

    code, broken = _test(capsys, "flights:2", "--no-load")
    assert code == 1 and not broken["passed"]
    by = {(a["protocol"], a["rows"]): a for a in broken["answers"]}
    assert all(by[(p, 1)]["passed"] and by[(p, 100)]["passed"] for p in ("v1", "v2", "grpc"))
    assert not any(by[(p, 2)]["passed"] for p in ("v1", "v2", "grpc"))
    # today's service answers 200 with one prediction for two rows (or 500): never a pass
    assert "shape [1]" in by[("v1", 2)]["detail"] or by[("v1", 2)]["status"] >= 500
    assert any("v1 with 2 row(s)" in f for f in broken["failures"])

    code, slow = _test(capsys, "flights@3", "--p99-ms", "20")
    assert code == 1 and all(a["passed"] for a in slow["answers"])
    assert not slow["load"]["passed"] and slow["load"]["p99_ms"] > 20
    assert any(f.startswith("load: p99") for f in slow["failures"])
    # the table form names the verdict
    code, out, _ = cli(capsys, "models", "test", "flights@3", "--data", "sample.parquet",
                       "--concurrency", "2", "--duration", "1", "--p99-ms", "20")
    assert code == 1 and "FAILED: load: p99" in out


@pytest.mark.slow
def test_the_gate_serving_rule_makes_the_infra_check_serve_over_http(project: Path) -> None:
    sample = pd.read_parquet(project / "sample.parquet")
    config = GateConfig.from_dict({"floors": {"roc_auc": 0.5},
                                   "serving": {"p99_ms": 50, "concurrency": 8}})
    assert config.to_dict()["serving"] == {"p99_ms": 50, "concurrency": 8}
    with pytest.raises(UserInputError, match="Unknown key"):
        GateConfig.from_dict({"serving": {"p99": 50}})
    # every infra check now asks the service (in-process ASGI): the model that answers
    # 2 rows wrongly is refused without any serving rule, naming the protocol and size
    plain = infra_check(project / "broken", sample.head(50))
    assert not plain["passed"]
    http = next(c for c in plain["checks"] if c["check"] == "http")
    assert not http["passed"] and "v1 with 2 row(s)" in http["detail"], http
    assert [c["check"] for c in plain["checks"] if not c["passed"]] == ["http"]
    good = infra_check(project / "good", sample.head(50),
                       serving={"seconds": 0.5, "concurrency": 2})
    assert good["passed"], good["checks"]
    assert [c["check"] for c in good["checks"]][-2:] == ["http", "load"]
    # every task passes the default check over both protocols
    for name in ("multiclass", "regression"):
        checked = infra_check(project / name, sample.head(50))
        assert checked["passed"], (name, checked["checks"])
        assert "6 answers" in next(c for c in checked["checks"] if c["check"] == "http")[
            "detail"]


def test_a_serving_budget_is_validated() -> None:
    assert ServingBudget.from_table(None) is None and ServingBudget.from_table(True)
    for bad in ({"concurrency": 0}, {"p99_ms": "fast"}, {"max_error_rate": 2}, [1]):
        with pytest.raises(UserInputError):
            ServingBudget.from_table(bad)  # type: ignore[arg-type]


@pytest.mark.slow
def test_a_service_with_api_keys_is_tested_with_a_key_over_http_and_grpc(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ctloop.models.servingtest import serve_candidate
    from ctloop.serving.auth import hash_key

    key = "a-long-enough-test-key-0123456789"
    (project / "ctloop.toml").write_text(
        f'[ctloop.serving.keys]\nci = {{ hash = "{hash_key(key)}", roles = ["predict"] }}\n')
    with serve_candidate("flights", 1, cwd=project) as (url, grpc_at, _):
        assert grpc_at is not None
        argv = ["models", "test", "flights@1", "--data", "sample.parquet", "--json",
                "--url", url, "--grpc", grpc_at, "--concurrency", "2", "--duration", "0.5"]
        code, out, _ = cli(capsys, *argv)
        refused = json.loads(out)
        assert code == 1 and refused["answers"][0]["status"] == 401
        assert refused["load"]["error_rate"] == 1.0
        monkeypatch.setenv("CTLOOP_API_KEY", key)
        code, out, err = cli(capsys, *argv)
        assert code == 0, out + err
        assert key not in out + err  # a key is never printed
        assert json.loads(out)["protocols"] == ["v1", "v2", "grpc"]
