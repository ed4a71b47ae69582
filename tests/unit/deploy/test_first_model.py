"""A deployment's first model (issue 19): served from its bundle before the database is up,
imported into the registry by a one-shot service, then followed in the registry without a
reload; the export, compose and Kubernetes files that wire it."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression

from ctloop.artifacts import open_artifact_store
from ctloop.artifacts.local import path_from_file_url
from ctloop.cli.main import main
from ctloop.core.errors import BackendUnavailable, ConfigError, IntegrityError
from ctloop.core.settings import load_settings
from ctloop.deploy import export_deployment
from ctloop.deploy.firstmodel import BUNDLE_FILE, import_first_model, marker_path, serving_app
from ctloop.metadata import new_id, open_metadata_store
from ctloop.metadata.base import ArtifactRecord
from ctloop.models.flavors import save_model
from ctloop.models.signature import Signature
from ctloop.registry.bundle import MANIFEST_NAME, export_bundle
from ctloop.testing.services import wait_until

FRAME = pd.DataFrame({"usage": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "tenure": [3.0, 1, 4, 1, 5, 9]})
LABEL = [0, 0, 1, 0, 1, 1]


def _folder(tmp: Path, name: str, c: float) -> Path:
    model = LogisticRegression(C=c).fit(FRAME, LABEL)
    folder = tmp / name
    save_model(model, folder, signature=Signature.from_frame(FRAME, list(FRAME.columns)),
               task="binary")
    return folder


def _register(folder: Path, champion: bool = False) -> int:
    settings = load_settings()
    store = open_metadata_store(settings.metadata_url)
    try:
        stored = open_artifact_store(settings.artifacts_url).put(folder)
        artifact = store.add_artifact(ArtifactRecord(
            new_id(), "Model", stored.uri, stored.sha256, stored.size, name="model"))
        version = store.create_model_version("churn", artifact.id, created_by="test").version
        if champion:
            store.move_alias("churn", "champion", version, actor="test", reason="test")
        return version
    finally:
        store.close()


@pytest.fixture
def bundle(ctloop_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``churn``'s champion exported from a "laptop" project, which is then emptied."""
    tmp = tmp_path_factory.mktemp("laptop")
    _register(_folder(tmp, "m", 1.0), champion=True)
    settings = load_settings()
    store = open_metadata_store(settings.metadata_url)
    try:
        export_bundle(store, open_artifact_store(settings.artifacts_url), "churn@champion",
                      tmp / "churn.bundle")
    finally:
        store.close()
    import shutil

    shutil.rmtree(ctloop_home / ".ctloop")  # the deployment's registry starts empty
    return tmp / "churn.bundle"


def _predict(client: TestClient) -> list[Any]:
    r = client.post("/v1/models/churn:predict",
                    json={"instances": [{"usage": 2.0, "tenure": 1.0}]})
    assert r.status_code == 200, r.text
    predictions: list[Any] = r.json()["predictions"]
    return predictions


def test_a_replica_answers_from_the_bundle_with_no_database(
        bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # nothing listens on port 1: a replica that waited for the database would never answer
    monkeypatch.setenv("CTLOOP_METADATA_URL", "postgresql+psycopg://u:p@127.0.0.1:1/ctloop")
    with TestClient(serving_app(load_settings(), bundle, wait=0)) as client:
        assert client.get("/ready").json()["loaded"]["churn"]["champion"] == 1
        assert len(_predict(client)) == 1


def test_the_seeded_registry_folder_is_removed_when_the_replica_stops(bundle: Path) -> None:
    app = serving_app(load_settings(), bundle, wait=0)
    with TestClient(app) as client:
        route = app.state.serving.pool.deployments["churn"].routes[0]
        folder = path_from_file_url(app.state.serving.pool.artifacts.url)
        assert folder.is_dir() and any(folder.iterdir())
        assert len(_predict(client)) == 1
    assert route.version == 1 and not folder.exists()


def test_a_metadata_url_that_cannot_work_is_raised_at_once_not_waited_for(
        ctloop_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ctloop.deploy.firstmodel import _open_store

    monkeypatch.setenv("CTLOOP_METADATA_URL", "nosuchdb://u:secret-pw@host/db")
    with pytest.raises(ConfigError, match="does not support") as raised:  # waited forever before
        _open_store(load_settings(), float("inf"))
    assert "secret-pw" not in str(raised.value)
    # an unreachable database is waited for, then reported as unavailable
    monkeypatch.setenv("CTLOOP_METADATA_URL", "postgresql+psycopg://u:p@127.0.0.1:1/ctloop")
    with pytest.raises(BackendUnavailable, match="Cannot connect"):
        _open_store(load_settings(), 0.5)


def test_the_replica_follows_the_registry_without_loading_the_same_bytes_again(
        bundle: Path, tmp_path: Path) -> None:
    app = serving_app(load_settings(), bundle)
    with TestClient(app) as client:
        state = app.state.serving
        seeded = state.pool.deployments["churn"].routes[0]
        answer = _predict(client)
        other = _register(_folder(tmp_path, "other", 0.01))  # version 1: other bytes
        assert not marker_path(load_settings()).exists()
        done = import_first_model(load_settings(), bundle)  # the one-shot service
        assert (done.version, done.champion, done.outcome) == (other + 1, other + 1, "imported")
        assert json.loads(marker_path(load_settings()).read_text())["version"] == done.version
        wait_until(lambda: state.pool.deployments["churn"].routes[0].version == done.version,
                   "the replica follows the registry's champion", 30)
        followed = state.pool.deployments["churn"].routes[0]
        assert followed.model is seeded.model  # the same bytes: not loaded again
        assert _predict(client) == answer
        assert client.get("/ready").json()["loaded"]["churn"]["champion"] == done.version

    # a restart: the import is idempotent and never moves the alias back
    newer = _register(_folder(tmp_path, "newer", 0.1), champion=True)
    again = import_first_model(load_settings(), bundle)
    assert (again.version, again.outcome, again.champion) == (done.version, "already present",
                                                               newer)
    # ... and a replica started now serves the registry's champion, not the bundle
    with TestClient(serving_app(load_settings(), bundle)) as client:
        assert client.get("/ready").json()["loaded"]["churn"]["champion"] == newer


def _tampered(bundle: Path, target: Path) -> Path:
    with tarfile.open(bundle) as src, tarfile.open(target, "w:gz") as out:
        for member in src:
            data = src.extractfile(member)
            raw = data.read() if data is not None else b""
            if member.name.startswith("model/") and member.name.endswith(".json") \
                    and member.name != MANIFEST_NAME:
                raw += b" "
            member.size = len(raw)
            out.addfile(member, io.BytesIO(raw))
    return target


def test_the_export_carries_the_bundle_and_starts_the_rest_after_the_replicas(
        bundle: Path, ctloop_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (ctloop_home / "ctloop.toml").write_text(
        '[ctloop]\n[ctloop.deploy]\nloop_interval = 5\n'
        '[ctloop.loops.churn]\nmodel = "churn"\ndata = "landing/*.parquet"\n'
        'event_time = "ts"\nlabel = "churned"\n')
    out = ctloop_home / "deploy"
    with pytest.raises(IntegrityError, match=r"altered|manifest"):
        export_deployment(load_settings(), "docker-compose", out,
                          model=_tampered(bundle, ctloop_home / "bad.bundle"))
    assert not (out / BUNDLE_FILE).exists()
    export_deployment(load_settings(), "docker-compose", out, model=bundle)
    assert (out / BUNDLE_FILE).read_bytes() == bundle.read_bytes()
    services = yaml.safe_load((out / "docker-compose.yaml").read_text())["services"]
    in_image = f"/project/deploy/{BUNDLE_FILE}"
    for name in ("serving-1", "serving-2"):
        assert services[name]["command"][:5] == ["ctloop", "deploy", "serve", "--bundle",
                                                 in_image]
    assert "depends_on" not in services["serving-1"]  # answers before PostgreSQL is up
    assert services["serving-2"]["depends_on"] == {  # then the next replica
        "serving-1": {"condition": "service_healthy"}}
    after = {"serving-1": {"condition": "service_healthy"},
             "serving-2": {"condition": "service_healthy"}}
    for name in ("dask-scheduler", "dask-worker", "controller", "loop-churn", "first-model"):
        assert after.items() <= services[name]["depends_on"].items(), name
    assert services["loop-churn"]["command"] == ["ctloop", "loop", "run", "churn",
                                                 "--interval", "5"]
    assert all(svc.get("init") is True for svc in services.values() if "build" in svc)
    first = services["first-model"]
    assert first["command"] == ["ctloop", "deploy", "first-model", in_image]
    assert first["restart"] == "on-failure" and "healthcheck" not in first
    assert services["first-model"]["depends_on"]["metadata-db"] == {
        "condition": "service_healthy"}
    assert "--model NAME.bundle" in (out / "README.md").read_text()
    for command in (["deploy", "serve", "--help"], ["deploy", "first-model", "--help"]):
        assert main(command) == 0, capsys.readouterr().err

    # a re-export keeps the first model; Kubernetes runs the import as a Job
    export_deployment(load_settings(), "docker-compose", out, force=True)
    assert "first-model" in yaml.safe_load((out / "docker-compose.yaml").read_text())[
        "services"]
    (ctloop_home / "ctloop.toml").write_text('[ctloop]\nartifacts = "s3://b/a"\n')
    export_deployment(load_settings(), "kubernetes", ctloop_home / "k8s", model=bundle)
    docs = list(yaml.safe_load_all((ctloop_home / "k8s" / "kubernetes.yaml").read_text()))
    job = next(d for d in docs if d and d["kind"] == "Job")
    assert job["metadata"]["name"] == "first-model"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"


def test_without_a_model_the_export_is_as_before(ctloop_home: Path) -> None:
    export_deployment(load_settings(), "docker-compose", ctloop_home / "d")
    services = yaml.safe_load((ctloop_home / "d" / "docker-compose.yaml").read_text())[
        "services"]
    assert "first-model" not in services
    assert services["serving-1"]["command"][:2] == ["ctloop", "serve"]
    assert "metadata-db" in services["serving-1"]["depends_on"]
    assert "serving-1" not in services["controller"]["depends_on"]
    assert not (ctloop_home / "d" / BUNDLE_FILE).exists()
