"""Loading that trusts nothing unverified: planted pickles, retries with backoff, unloading."""

from __future__ import annotations

import gc
import shutil
import time
import weakref
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ctloop.core.errors import IntegrityError
from ctloop.models.flavors import load_model
from ctloop.serving import ServingConfig
from ctloop.serving.pool import Backoff
from ctloop.testing.attacks import plant_pickle
from ctloop.testing.services import patience

ROWS = [{"origin": "JFK", "hour": 7, "distance": 1000}]


def _unpacked(project, name: str, version: int) -> tuple[Path, str]:
    """The cache folder a version is unpacked to, and the sha256 the metadata store holds."""
    record = project.registry.get(f"{name}:{version}")
    artifact = project.store.get_artifact(record.artifact_id)
    return project.artifacts.get(artifact.uri, artifact.sha256), artifact.sha256


def test_a_planted_pickle_with_a_matching_manifest_is_never_unpickled(
    three_versions, tmp_path: Path
) -> None:
    folder, recorded = _unpacked(three_versions, "flights", 3)
    control = tmp_path / "control"
    shutil.copytree(folder, control)
    marker = tmp_path / "pwned"
    plant_pickle(folder, marker)

    with pytest.raises(IntegrityError, match="changed after ctloop unpacked it"):
        three_versions.registry.load("flights:3", three_versions.artifacts)
    with pytest.raises(IntegrityError, match="does not match the sha256 recorded"):
        load_model(folder, sha256=recorded)  # even handed the folder directly
    with pytest.raises(IntegrityError, match=r"flights:3 cannot be trusted.*promoted"):
        three_versions.registry.promote("flights", 3)
    assert three_versions.registry.aliases("flights")["champion"] == 1

    app = three_versions.app("flights", config=ServingConfig.from_table({"alias": "challenger"}))
    three_versions.store.move_alias("flights", "challenger", 3, actor="attacker", reason="")
    with TestClient(app) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert "changed after ctloop unpacked it" in ready.json()["errors"]["flights"]["challenger"]
        answer = client.post("/v1/models/flights:predict", json={"rows": ROWS})
        assert answer.status_code == 503
    assert not marker.exists()

    # The control: the same attack on a copy fools a check of the manifest alone,
    # which is why loads are checked against the metadata store's sha256.
    control_marker = tmp_path / "control-ran"
    plant_pickle(control, control_marker)
    load_model(control)
    assert control_marker.read_text() == "the planted pickle ran"


def test_a_file_added_beside_a_model_is_refused_and_deleting_the_copy_heals(
    three_versions, tmp_path: Path
) -> None:
    folder, _ = _unpacked(three_versions, "flights", 2)
    folder.chmod(0o755)
    (folder / "extra.pkl").write_bytes(b"anything")
    with pytest.raises(IntegrityError, match="changed after ctloop unpacked it"):
        three_versions.registry.load("flights:2", three_versions.artifacts)
    shutil.rmtree(folder)  # what the error says to do: the verified archive is unpacked again
    model = three_versions.registry.load("flights:2", three_versions.artifacts)
    assert model.flavor == "lightgbm"


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(initial=1, factor=2, maximum=10, jitter=0)
    assert [backoff.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    jittered = Backoff(initial=1, jitter=0.1)
    assert all(0.9 <= jittered.delay(1) <= 1.1 for _ in range(50))


def test_a_failed_load_is_not_retried_before_its_backoff(three_versions) -> None:
    folder, _ = _unpacked(three_versions, "flights", 2)
    three_versions.registry.promote("flights", 2)
    plant_pickle(folder, folder.parent / "never")
    app = three_versions.app("flights", config=ServingConfig.from_table({"reload_interval": 0}))
    pool = app.state.serving.pool
    pool.backoff = Backoff(initial=3600, maximum=3600, jitter=0)
    pool.refresh()
    pool.refresh()
    error = pool.errors["flights"]["champion"]
    assert "attempt 1;" in error and "next retry in 3600 s" in error


def test_a_failed_load_is_retried_with_backoff_until_it_loads(three_versions) -> None:
    three_versions.registry.promote("flights", 2)
    folder, _ = _unpacked(three_versions, "flights", 2)
    plant_pickle(folder, folder.parent / "never")
    config = ServingConfig.from_table({"reload_interval": 0})  # no polling: retries only
    app = three_versions.app("flights", config=config)
    pool = app.state.serving.pool
    pool.backoff = Backoff(initial=0.05, factor=2, maximum=0.2, jitter=0)
    with TestClient(app) as client:
        assert client.get("/ready").status_code == 503
        deadline = time.monotonic() + patience(10)
        while "attempt 3;" not in str(pool.errors) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "attempt 3;" in pool.errors["flights"]["champion"]
        shutil.rmtree(folder)  # the operator repairs the cache; no restart, no refresh call
        while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        answer = client.post("/v1/models/flights:predict", json={"rows": ROWS})
        assert answer.status_code == 200 and answer.json()["versions"] == [2]
        assert pool.errors == {}
    assert not (folder.parent / "never").exists()


def test_a_replaced_version_is_unloaded(three_versions) -> None:
    app = three_versions.app("flights")
    pool = app.state.serving.pool
    with TestClient(app) as client:
        assert client.post("/v1/models/flights:predict", json={"rows": ROWS}).status_code == 200
        old = weakref.ref(pool.deployments["flights"].routes[0].model)
        old_booster = weakref.ref(old().model)  # type: ignore[union-attr]  # alive here
        three_versions.registry.promote("flights", 3)
        pool.refresh()
        answer = client.post("/v1/models/flights:predict", json={"rows": ROWS})
        assert answer.json()["versions"] == [3]
        gc.collect()
        assert old() is None and old_booster() is None
        assert pool.loaded_versions() == [("flights", 3)]
