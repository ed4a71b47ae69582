"""The model gate on real flights models: floors, change against the champion, slices."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ctloop.core.errors import UserInputError
from ctloop.examples.flights.data import flights
from ctloop.models import (
    GateConfig,
    LoadedModel,
    evaluate_models,
    fit_model,
    judge,
    load_model,
    render_blessing,
)

BASE = ["origin", "carrier", "hour", "distance", "month"]
GATE = GateConfig.from_dict(
    {
        "floors": {"roc_auc": 0.60},
        "changes": {"roc_auc": -0.005},
        "slices": [{"column": "origin", "metric": "roc_auc", "min_change": -0.02, "min_rows": 500}],
    }
)


def _fit(data: pd.DataFrame, features: list[str], path: Path) -> LoadedModel:
    fit_model(
        data,
        label="delayed",
        features=features,
        algorithm="lightgbm",
        params={"n_estimators": 40, "n_jobs": 1},
        seed=0,
    ).save(path)
    return load_model(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LoadedModel]:
    root = tmp_path_factory.mktemp("gate")
    train = flights([1, 2, 3])
    # Deliberately broken for one airport: LGA flights that left over 30 min late are
    # relabelled "on time", so the model learns the opposite of the truth there.
    corrupted = train.copy()
    corrupted.loc[(train["origin"] == "LGA") & (train["dep_delay"] > 30), "delayed"] = 0
    return {
        "champion": _fit(train, BASE, root / "champion"),
        "weak": _fit(train.sample(frac=0.01, random_state=0), BASE, root / "weak"),
        "lga_broken": _fit(corrupted, [*BASE, "dep_delay"], root / "lga_broken"),
    }


@pytest.fixture(scope="module")
def april() -> pd.DataFrame:
    return flights([4]).sample(10_000, random_state=0)


def _report(models: dict[str, LoadedModel], name: str, data: pd.DataFrame) -> dict:
    return evaluate_models(
        {"candidate": models[name], "champion": models["champion"]},
        data,
        label="delayed",
        slice_columns=["origin", "carrier"],
        n_boot=100,
    )


def test_first_model_is_judged_on_floors_only(models: dict, april: pd.DataFrame) -> None:
    report = evaluate_models(
        {"candidate": models["champion"]},
        april,
        label="delayed",
        slice_columns=["origin"],
        n_boot=50,
    )
    blessing = judge(report, GATE)
    assert blessing["blessed"] and blessing["champion"] is None
    assert [r["status"] for r in blessing["rules"]] == ["pass", "skipped", "skipped"]


def test_weaker_candidate_is_refused_naming_the_rule(models: dict, april: pd.DataFrame) -> None:
    blessing = judge(_report(models, "weak", april), GATE)
    assert not blessing["blessed"]
    assert "roc_auc change vs champion >= -0.005" in blessing["failed"]
    change = next(r for r in blessing["rules"] if r["kind"] == "change")
    assert change["change"] == pytest.approx(change["candidate"] - change["champion"])
    assert change["change"] < -0.005
    assert "NOT BLESSED" in render_blessing(blessing)


def test_better_overall_but_worse_on_one_airport_is_refused_by_the_slice_rule(
    models: dict, april: pd.DataFrame
) -> None:
    report = _report(models, "lga_broken", april)
    blessing = judge(report, GATE)
    floor, change, slices = blessing["rules"]
    assert floor["passed"] and change["passed"] and change["change"] > 0.05
    assert not blessing["blessed"] and blessing["failed"] == [slices["rule"]]
    failing = [s["slice"] for s in slices["slices"] if not s["passed"]]
    assert failing == ["LGA"] and "origin=LGA" in slices["detail"]
    # The paired delta interval agrees with the point difference and excludes zero.
    delta = report["deltas"]["slices"]["origin"]["LGA"]["metrics"]["roc_auc"]
    assert delta["hi"] < 0 and delta["lo"] < delta["value"] < delta["hi"]


def test_slice_values_match_a_direct_computation(models: dict, april: pd.DataFrame) -> None:
    from sklearn.metrics import roc_auc_score

    report = _report(models, "weak", april)
    jfk = april[april["origin"] == "JFK"]
    got = report["models"]["champion"]["slices"]["origin"]["JFK"]
    assert got["n"] == len(jfk)
    assert got["metrics"]["roc_auc"]["value"] == pytest.approx(
        roc_auc_score(jfk["delayed"], models["champion"].predict(jfk))
    )
    assert set(report["models"]["candidate"]["slices"]["carrier"]) == set(april["carrier"])


def test_evaluation_set_missing_a_column_is_named(models: dict, april: pd.DataFrame) -> None:
    with pytest.raises(UserInputError, match=r"evaluation set.*\['hour'\]"):
        _report(models, "weak", april.drop(columns=["hour"]))
    with pytest.raises(UserInputError, match="slice columns"):
        evaluate_models(
            {"candidate": models["weak"]}, april, label="delayed", slice_columns=["gate"]
        )


def test_bad_gate_config_is_refused() -> None:
    with pytest.raises(UserInputError, match="Unknown metric 'auc'"):
        GateConfig.from_dict({"floors": {"auc": 0.7}})
    with pytest.raises(UserInputError, match="Unknown gate setting"):
        GateConfig.from_dict({"floor": {"roc_auc": 0.7}})
    assert GateConfig.from_dict(GATE.to_dict()) == GATE


def test_lower_is_better_floor() -> None:
    report = {
        "models": {
            "candidate": {"overall": {"metrics": {"log_loss": {"value": 0.6}}}, "slices": {}}
        }
    }
    blessing = judge(report, GateConfig.from_dict({"floors": {"log_loss": 0.5}}))
    assert blessing["failed"] == ["log_loss <= 0.5"]
