"""``ctloop models ...`` end to end on the project's SQLite store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ctloop.artifacts import open_artifact_store
from ctloop.cli.main import main
from ctloop.metadata import ArtifactRecord, new_id, open_metadata_store
from ctloop.registry import ModelRegistry


def _metrics(auc: float, lga_auc: float) -> dict:
    block = {"n": 100, "metrics": {"roc_auc": {"value": auc, "lo": auc - 0.01, "hi": auc + 0.01}}}
    lga = {"n": 30, "metrics": {"roc_auc": {"value": lga_auc}}}
    return {"overall": block, "slices": {"origin": {"LGA": lga}}}


@pytest.fixture
def project(ctloop_home: Path) -> Path:
    store = open_metadata_store()
    reg = ModelRegistry(store, actor="ann")
    artifacts = open_artifact_store()
    for auc, lga in ((0.70, 0.69), (0.72, 0.60)):
        (ctloop_home / f"m{auc}").write_text(str(auc))
        stored = artifacts.put(ctloop_home / f"m{auc}")  # real bytes: promotion checks them
        art = store.add_artifact(
            ArtifactRecord(new_id(), "Model", stored.uri, stored.sha256, stored.size)
        )
        reg.register(
            "flights",
            art.id,
            properties={"evaluation": _metrics(auc, lga), "blessing": {"blessed": auc > 0.71}},
        )
    store.close()
    return ctloop_home


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_promote_rollback_history_show_list(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _json(capsys, "models", "promote", "flights", "1", "--reason", "first")["version"] == 1
    moved = _json(capsys, "models", "promote", "flights", "2", "--alias", "champion")
    assert (moved["previous_version"], moved["version"]) == (1, 2)
    back = _json(capsys, "models", "rollback", "flights", "--reason", "LGA complaints")
    assert back["version"] == 1 and "LGA complaints" in back["reason"]
    assert _json(capsys, "models", "show", "flights@champion")["version"] == 1
    history = _json(capsys, "models", "history", "flights")
    assert [e["version"] for e in history] == [1, 2, 1]
    [listed] = _json(capsys, "models", "list")
    assert listed["aliases"] == {"champion": 1} and listed["versions"] == 2
    assert len(_json(capsys, "models", "show", "flights")["versions"]) == 2
    # The table forms print too.
    for argv in (
        ["list"],
        ["show", "flights"],
        ["show", "flights:2"],
        ["history", "flights"],
        ["compare", "flights", "1", "2"],
    ):
        assert main(["models", *argv]) == 0


def test_compare_side_by_side(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = _json(capsys, "models", "compare", "flights", "1", "2")
    [overall] = result["overall"]
    assert overall["delta"] == pytest.approx(0.02) and overall["better"] == "b"
    [lga] = result["slices"]["origin"]["LGA"]
    assert lga["delta"] == pytest.approx(-0.09) and lga["better"] == "a"


def test_json_keeps_its_keys_in_order(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The typed summaries print the shape --json printed when they were dicts."""
    [listed] = _json(capsys, "models", "list")
    assert list(listed) == ["name", "versions", "latest_version", "aliases", "updated_at"]
    assert (listed["name"], listed["latest_version"]) == ("flights", 2)
    result = _json(capsys, "models", "compare", "flights", "1", "2")
    assert list(result) == ["name", "a", "b", "overall", "slices"]
    assert (result["name"], result["a"], result["b"]) == ("flights", 1, 2)
    [row] = result["overall"]
    assert list(row) == ["metric", "a", "b", "delta", "better", "n_a", "n_b"]
    assert (row["metric"], row["a"], row["b"], row["n_a"], row["n_b"]) == (
        "roc_auc", 0.70, 0.72, 100, 100)
    [lga] = result["slices"]["origin"]["LGA"]
    assert (lga["n_a"], lga["n_b"]) == (30, 30)


def test_compare_with_a_version_without_evaluation(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_metadata_store()
    art = store.add_artifact(
        ArtifactRecord(id=new_id(), type="Model", uri="file:///m3", sha256="3" * 64, size=1))
    ModelRegistry(store).register("flights", art.id)
    store.close()
    result = _json(capsys, "models", "compare", "flights", "1", "3")
    [row] = result["overall"]
    assert (row["a"], row["b"], row["delta"], row["better"], row["n_b"]) == (
        0.70, None, None, None, None)
    [lga] = result["slices"]["origin"]["LGA"]
    assert (lga["a"], lga["b"], lga["n_b"]) == (0.69, None, None)


def test_bad_input_exits_nonzero_with_one_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "show", "nope"]) == 2
    assert "not found: No model named 'nope'" in capsys.readouterr().err
    assert main(["models", "promote", "flights", "9"]) == 2
    assert "no version 9" in capsys.readouterr().err
    assert main(["models", "rollback", "flights"]) == 2
    assert "no previous holder" in capsys.readouterr().err


def test_register_and_describe_from_the_cli(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_metadata_store()
    model = store.add_artifact(
        ArtifactRecord(id=new_id(), type="Model", uri="file:///m3", sha256="1" * 64, size=1)
    )
    data = store.add_artifact(
        ArtifactRecord(id=new_id(), type="Dataset", uri="file:///d", sha256="2" * 64, size=1)
    )
    store.close()
    made = _json(capsys, "models", "register", "flights", model.id[:10], "--tag", "team=ops")
    assert made["version"] == 3 and made["tags"]["team"] == "ops"
    again = _json(capsys, "models", "register", "flights", model.id)
    assert again["version"] == 3  # the same artifact is not registered twice
    described = _json(capsys, "models", "describe", "flights:3", "--description", "hand-made",
                      "--tag", "reviewed=yes")
    assert described["description"] == "hand-made"
    assert described["tags"] == {"team": "ops", "reviewed": "yes"}
    assert main(["models", "register", "flights", data.id]) == 2
    assert "is a Dataset, not a Model" in capsys.readouterr().err
    assert main(["models", "describe", "flights:3"]) == 2
    assert "Nothing to change" in capsys.readouterr().err
    assert main(["models", "describe", "flights:3", "--tag", "oops"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


HUGE = "99999999999999999999999"  # past 64 bits: no backend can store it


@pytest.mark.parametrize("argv", [
    ["models", "show", f"flights:{HUGE}"],
    ["models", "promote", "flights", HUGE],
    ["models", "describe", f"flights:{HUGE}", "--description", "x"],
    ["predict", f"flights:{HUGE}", "in.parquet", "out.parquet"],
])
def test_a_version_past_64_bits_is_one_line_not_a_traceback(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    import pandas as pd

    pd.DataFrame({"x": [1]}).to_parquet(project / "in.parquet")  # only the version is wrong
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert HUGE in err


def test_huge_versions_are_4xx_pages_in_the_dashboard(project: Path) -> None:
    from fastapi.testclient import TestClient

    from ctloop.core.settings import load_settings
    from ctloop.ui import create_app

    client = TestClient(create_app(load_settings()), raise_server_exceptions=False)
    for path in (f"/models/flights/versions/{HUGE}", f"/models/flights/compare?a=1&b={HUGE}",
                 f"/lineage?model=flights&version={HUGE}"):
        response = client.get(path)
        assert 400 <= response.status_code < 500, (path, response.status_code)
        assert "Traceback" not in response.text
    assert client.get("/models/flights/versions/2").status_code == 200
