"""The catalog on the real SQLite metadata store, the CLI and the feature server."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from ctloop.cli.main import main
from ctloop.features import FeatureStore, load_definitions
from ctloop.features.catalog import apply_definitions, feature_rows, load_catalog
from ctloop.features.server import create_app
from ctloop.metadata import open_metadata_store

DEFS = """
from ctloop.features import Entity, Feature, FeatureView, FileSource, Aggregation, AggregationView

origin = Entity("origin", description="departure airport")
weather = FeatureView(
    "weather", origin, FileSource({path!r}),
    [Feature("temp", description="air temperature, F"), Feature("wind")],
    timestamp_field="ts", ttl="3h", owner="ops", tags={{"team": "weather"}},
    description="hourly weather per airport",
)
busy = AggregationView(
    "busy", origin, FileSource({path!r}), [Aggregation("obs_24h", "temp", "count", "24h")],
    timestamp_field="ts", owner="ml",
)
{extra}
"""


@pytest.fixture
def project(ctloop_home: Path) -> Path:
    src = pd.DataFrame(
        {
            "origin": ["JFK", "LGA", "JFK"],
            "ts": pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:00", "2024-01-01 01:00"]),
            "temp": [30.0, 31.0, 32.0],
            "wind": [5.0, 6.0, 7.0],
        }
    )
    src.to_parquet(ctloop_home / "weather.parquet")
    return ctloop_home


def write_defs(project: Path, extra: str = "", name: str = "features.py") -> Path:
    path = project / name
    text = DEFS.format(path=str(project / "weather.parquet"), extra=textwrap.dedent(extra))
    path.write_text(text)
    return path


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_apply_versions_and_reports(project: Path):
    meta = open_metadata_store()
    try:
        report = apply_definitions(meta, load_definitions(write_defs(project)))
        assert sorted(report.created) == ["busy", "entity origin", "weather"]
        again = apply_definitions(meta, load_definitions(write_defs(project)))
        assert again.created == [] and again.updated == []  # unchanged: a no-op
        assert len(again.unchanged) == 3
        changed = write_defs(project).read_text().replace('ttl="3h"', 'ttl="4h"')
        (project / "features.py").write_text(changed)
        third = apply_definitions(meta, load_definitions(project / "features.py"))
        assert third.updated == ["weather v2"]
        assert meta.get_definition("feature_view", "weather").version == 2
        # same computation under another name, and the same name meaning something else
        extra = """
        weather_copy = FeatureView(
            "weather_copy", origin, FileSource({path!r}), [Feature("air_temp", column="temp")],
            timestamp_field="ts", ttl="4h",
        )
        other = FeatureView("other", origin, FileSource({path!r}), [Feature("temp", column="wind")],
                            timestamp_field="ts")
        """.format(path=str(project / "weather.parquet"))
        text = (project / "features.py").read_text() + textwrap.dedent(extra)
        (project / "features.py").write_text(text)
        fourth = apply_definitions(meta, load_definitions(project / "features.py"))
        assert ["weather:temp", "weather_copy:air_temp"] in fourth.duplicates
        assert fourth.conflicts["temp"] == ["other:temp", "weather:temp"]
        assert any("compute the same thing" in w for w in fourth.warnings())
        # a fresh load from the catalog rebuilds the definitions, prose included
        views = load_catalog(meta).views
        ttl = views["weather"].ttl
        assert ttl is not None and ttl.total_seconds() == 4 * 3600
        assert views["weather"].feature("temp").description == "air temperature, F"
        assert [r["ref"] for r in feature_rows(meta, query="departure")][:2] == [
            "busy:obs_24h",
            "other:temp",
        ]
        assert [r["ref"] for r in feature_rows(meta, tag="team=weather")] == [
            "weather:temp",
            "weather:wind",
        ]
        assert [r["ref"] for r in feature_rows(meta, owner="ml")] == ["busy:obs_24h"]
    finally:
        meta.close()


def test_cli_end_to_end(project: Path, capsys):
    defs = write_defs(project)
    code, out, _ = run_cli(["features", "apply", str(defs), "--json"], capsys)
    assert code == 0 and json.loads(out)["created"]
    code, out, _ = run_cli(["features", "list", "--json"], capsys)
    assert [f["ref"] for f in json.loads(out)["features"]] == [
        "busy:obs_24h",
        "weather:temp",
        "weather:wind",
    ]
    code, out, _ = run_cli(["features", "search", "temperature", "--json"], capsys)
    assert [f["ref"] for f in json.loads(out)["features"]] == ["weather:temp"]
    code, out, _ = run_cli(
        ["features", "materialize", "--end", "2024-01-01T02:00", "--json"], capsys
    )
    assert json.loads(out)["views"] == {"weather": 2, "busy": 2}
    code, out, _ = run_cli(["features", "show", "weather", "--json"], capsys)
    info = json.loads(out)
    assert info["materialized_until"] == "2024-01-01T02:00:00"
    assert info["versions"][0]["version"] == 1 and info["used_by"] == []
    code, out, _ = run_cli(["features", "show", "weather"], capsys)
    assert code == 0 and "materialized until" in out
    code, out, _ = run_cli(
        [
            "features",
            "get",
            "weather:temp",
            "busy:obs_24h",
            "-e",
            "origin=JFK",
            "--json",
            "--now",
            "2024-01-01T02:00",
        ],
        capsys,
    )
    got = json.loads(out)
    assert got["features"] == {"weather:temp": [32.0], "busy:obs_24h": [2]}
    assert got["statuses"]["weather:temp"] == ["present"]
    assert got["event_timestamps"]["weather:temp"] == ["2024-01-01T01:00:00"]
    code, _, err = run_cli(["features", "show", "wether"], capsys)
    assert code != 0 and "Did you mean 'weather'" in err
    code, _, err = run_cli(["features", "get", "weather:tmp", "-e", "origin=JFK"], capsys)
    assert code != 0 and "weather:temp" in err and "Traceback" not in err


def test_feature_server(project: Path):
    meta = open_metadata_store()
    apply_definitions(meta, load_definitions(write_defs(project)))
    store = FeatureStore.open(metadata=meta)
    store.materialize(end="2024-01-01T02:00")
    client = TestClient(create_app(store))
    body = {
        "features": ["weather:temp"],
        "entities": {"origin": ["JFK", "LGA", "SFO"]},
        "now": "2024-01-01T02:00:00",
    }
    resp = client.post("/features/online", json=body)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["features"]["weather:temp"] == [32.0, 31.0, None]
    assert data["event_timestamps"]["weather:temp"][0] == "2024-01-01T01:00:00"
    assert data["statuses"]["weather:temp"] == ["present", "present", "missing"]
    rows = client.post(
        "/features/online", json={"features": ["busy"], "entities": [{"origin": "JFK"}]}
    )
    assert rows.json()["features"] == {"busy:obs_24h": [2]}
    bad = client.post(
        "/features/online", json={"features": ["weather:tmp"], "entities": {"origin": ["JFK"]}}
    )
    assert bad.status_code == 404
    assert bad.json()["type"] == "NotFound" and "weather:temp" in bad.json()["detail"]
    missing_key = client.post(
        "/features/online", json={"features": ["weather:temp"], "entities": {"airport": ["JFK"]}}
    )
    assert missing_key.status_code == 400 and missing_key.json()["error"] == "bad input"
    assert client.get("/features").json()["views"][0]["name"] in {"weather", "busy"}
    for malformed in (b"not json", b"{}", b'{"features": "weather:temp", "entities": []}'):
        resp = client.post(
            "/features/online", content=malformed, headers={"content-type": "application/json"}
        )
        assert resp.status_code == 422, resp.text
        err = resp.json()
        assert err["error"] == "bad input" and isinstance(err["detail"], str), err
        assert "\n" not in err["detail"] and "features" in err["detail"]
    metrics = client.get("/metrics").text
    assert 'ctloop_feature_requests_total{endpoint="online",status="200"} 2.0' in metrics
    assert 'ctloop_feature_requests_total{endpoint="online",status="404"} 1.0' in metrics
    assert 'ctloop_feature_values_total{status="missing"} 1.0' in metrics
    assert 'ctloop_feature_values_total{status="present"} 3.0' in metrics
    store.close()
    meta.close()


def test_show_lists_models_that_used_the_features(project: Path):
    from ctloop.features.catalog import describe
    from ctloop.metadata import ArtifactRecord, new_id

    meta = open_metadata_store()
    try:
        apply_definitions(meta, load_definitions(write_defs(project)))
        art = meta.add_artifact(
            ArtifactRecord(id=new_id(), type="Model", uri="file:///m", sha256="0" * 64, size=1)
        )
        meta.create_model_version(
            "delays", art.id, properties={"feature_refs": ["weather:temp", "busy:obs_24h"]}
        )
        assert describe(meta, "weather:temp")["used_by"] == [
            {"model": "delays", "version": 1, "run_id": None}
        ]
    finally:
        meta.close()


def test_definitions_file_in_a_package_keeps_importable_source_functions():
    """`ctloop features apply src/ctloop/examples/flights/features.py` then `materialize` in
    another process: the catalog must name the sources by their real module, not by a
    per-process synthetic one."""
    import ctloop.examples.flights.features as flights
    from ctloop.features.definitions import PythonSource

    defs = load_definitions(flights.__file__)
    functions = {
        view.source.function
        for view in defs.views.values()
        if isinstance(view.source, PythonSource)
    }
    assert functions
    assert all(str(f).startswith("ctloop.examples.flights.features:") for f in functions), functions


def test_standalone_definitions_get_the_same_module_name_in_every_process(tmp_path: Path):
    """hash() of a str is salted per process; re-applying an unchanged file must be a no-op."""
    import os
    import subprocess
    import sys

    defs = tmp_path / "defs.py"
    defs.write_text(
        "from ctloop.features import Entity, Feature, FeatureView, PythonSource\n"
        "import pandas as pd\n"
        "def rows():\n"
        "    return pd.DataFrame({'k': [1], 'ts': pd.to_datetime(['2024-01-01']), 'x': [1.0]})\n"
        "k = Entity('k')\n"
        "v = FeatureView('v', k, PythonSource(rows), [Feature('x')], timestamp_field='ts')\n"
    )
    code = (
        "import sys; from ctloop.features import load_definitions; "
        "print(load_definitions(sys.argv[1]).views['v'].source.function)"
    )
    names = {
        subprocess.run(
            [sys.executable, "-c", code, str(defs)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert len(names) == 1, names
