"""Issue 19: an export that runs as shipped -- stable secrets, names derived from the
project, one state layout every container shares, an image that serves by default,
Kubernetes manifests a cluster can run, and engine commands with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ctloop.cli.main import main
from ctloop.core.settings import load_settings
from ctloop.deploy import export_deployment

LOOP = """
[ctloop.loops.churn]
model = "churn"
data = "landing/*.parquet"
event_time = "ts"
label = "churned"
"""
CLUSTER = """
[ctloop]
artifacts = "s3://team-bucket/artifacts"
metadata = "postgresql+psycopg://ctloop:secret@db.internal:5432/ctloop"
"""


def _env(path: Path) -> dict[str, str]:
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    return dict(ln.split("=", 1) for ln in lines)


def _compose(out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((out / "docker-compose.yaml").read_text())
    return doc


def test_secrets_survive_a_re_export_unless_rotated(ctloop_home: Path) -> None:
    out = ctloop_home / "deploy"
    export_deployment(load_settings(), "docker-compose", out)
    first = _env(out / "secrets.env")
    export_deployment(load_settings(), "docker-compose", out, force=True)
    assert _env(out / "secrets.env") == first  # the database volume keeps its password
    export_deployment(load_settings(), "docker-compose", out, force=True, rotate_secrets=True)
    rotated = _env(out / "secrets.env")
    assert rotated["POSTGRES_PASSWORD"] != first["POSTGRES_PASSWORD"]
    assert rotated["POSTGRES_PASSWORD"] in rotated["CTLOOP_METADATA_URL"]


def test_keys_filled_in_by_hand_stay_filled_in(ctloop_home: Path) -> None:
    (ctloop_home / "ctloop.toml").write_text(CLUSTER + '[ctloop.deploy]\nname = "x"\n')
    out = ctloop_home / "k"
    export_deployment(load_settings(), "docker-compose", out)
    text = (out / "secrets.env").read_text().replace("AWS_ACCESS_KEY_ID=",
                                                     "AWS_ACCESS_KEY_ID=AKIA-filled")
    (out / "secrets.env").write_text(text)
    export_deployment(load_settings(), "docker-compose", out, force=True)
    assert _env(out / "secrets.env")["AWS_ACCESS_KEY_ID"] == "AKIA-filled"


def test_two_projects_get_their_own_compose_project_image_and_volumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = {}
    for project in ("Churn Model", "fraud"):
        root = tmp_path / project
        root.mkdir()
        (root / "ctloop.toml").write_text("")
        monkeypatch.chdir(root)
        result = export_deployment(load_settings(), "docker-compose", root / "deploy")
        dotenv = _env(root / "deploy" / ".env")
        names[project] = (dotenv["COMPOSE_PROJECT_NAME"], result.plan.image)
    assert names == {"Churn Model": ("ctloop-churn-model", "ctloop-churn-model:latest"),
                     "fraud": ("ctloop-fraud", "ctloop-fraud:latest")}


def test_every_container_shares_the_state_and_landing_folders(ctloop_home: Path) -> None:
    (ctloop_home / "ctloop.toml").write_text(LOOP)
    out = ctloop_home / "deploy"
    result = export_deployment(load_settings(), "docker-compose", out)
    assert _env(out / "ctloop.env")["CTLOOP_HOME"] == "/project/.ctloop"  # root: /project
    services = _compose(out)["services"]
    for name in ("dask-worker", "loop-churn", "controller", "serving-1", "serving-2"):
        volumes = services[name]["volumes"]
        assert "state:/project/.ctloop" in volumes, name
        assert "landing:/project/landing" in volumes, name
    db = services["metadata-db"]
    assert db["environment"]["PGDATA"] == "/var/lib/postgresql/data/pgdata"
    assert all("healthcheck" in s for s in services.values())  # controllers included
    assert services["loop-churn"]["healthcheck"]["test"] == ["CMD", "ctloop", "deploy", "probe"]
    assert "landing" in result.plan.ignored  # landed data stays out of the image
    assert "landing" in (ctloop_home / ".dockerignore").read_text().splitlines()


def test_the_image_serves_by_default_with_what_lightgbm_needs(ctloop_home: Path) -> None:
    (ctloop_home / "ctloop.toml").write_text(
        '[ctloop.deploy]\nbase_image = "local/python:3.11-slim"\n')
    export_deployment(load_settings(), "docker-compose", ctloop_home / ".deploy")
    docker = (ctloop_home / ".deploy" / "Dockerfile").read_text()
    assert docker.startswith("# Generated") and "FROM local/python:3.11-slim" in docker
    assert "libgomp1" in docker and 'python -c "import lightgbm, xgboost"' in docker
    assert "COPY .deploy/ctloop-src /opt/ctloop-src" in docker  # was "deploy/ctloop-src"
    assert "EXPOSE 8000" in docker and "HEALTHCHECK" in docker
    assert 'CMD ["ctloop", "serve", "--host", "0.0.0.0", "--port", "8000"]' in docker


def test_dockerignore_keeps_the_users_lines_and_one_generated_block(ctloop_home: Path) -> None:
    (ctloop_home / ".dockerignore").write_text("data/raw\n")
    for _ in range(2):
        export_deployment(load_settings(), "docker-compose", ctloop_home / "d", force=True)
    text = (ctloop_home / ".dockerignore").read_text()
    assert text.startswith("data/raw\n") and text.count(">>> ctloop deploy export") == 1
    assert "!d/ctloop-src" in text.splitlines()


def test_kubernetes_pgdata_probes_pull_policy_and_shared_claims(ctloop_home: Path) -> None:
    (ctloop_home / "ctloop.toml").write_text(CLUSTER.replace(
        'metadata = "postgresql+psycopg://ctloop:secret@db.internal:5432/ctloop"\n', "") + LOOP)
    result = export_deployment(load_settings(), "kubernetes", ctloop_home / "k8s")
    docs = [d for d in yaml.safe_load_all((ctloop_home / "k8s" / "kubernetes.yaml").read_text())
            if d]
    workloads = {d["metadata"]["name"]: d for d in docs
                 if d["kind"] in ("Deployment", "StatefulSet")}
    for name, d in workloads.items():
        (container,) = d["spec"]["template"]["spec"]["containers"]
        assert container.get("livenessProbe") and container.get("readinessProbe"), name
    db = workloads["metadata-db"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"} in db["env"]
    worker = workloads["dask-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert worker["imagePullPolicy"] == "IfNotPresent"  # a local name, loaded into the nodes
    claims = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PersistentVolumeClaim"}
    assert set(claims) == {f"{result.plan.name}-state", f"{result.plan.name}-landing"}
    assert all(c["spec"]["accessModes"] == ["ReadWriteMany"] for c in claims.values())
    assert workloads["dask-worker"]["kind"] == "Deployment"  # shared claims, not per pod


def test_the_readme_says_how_the_first_model_comes_in(ctloop_home: Path) -> None:
    (ctloop_home / "ctloop.toml").write_text(LOOP)
    export_deployment(load_settings(), "docker-compose", ctloop_home / "deploy")
    readme = (ctloop_home / "deploy" / "README.md").read_text()
    assert "ctloop models export NAME@champion -o NAME.bundle" in readme
    assert "ctloop models import-bundle /tmp/NAME.bundle" in readme
    assert "ctloop deploy up deploy" in readme and "docker cp" in readme


def test_build_without_a_container_engine_is_one_line(
        ctloop_home: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    export_deployment(load_settings(), "docker-compose", ctloop_home / "deploy")
    monkeypatch.setenv("PATH", str(ctloop_home / "no-bin"))
    assert main(["deploy", "build", "deploy"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No container engine found" in err, err
    assert main(["deploy", "up", "nowhere"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds no Dockerfile" in err, err


def test_probe_passes_on_a_healthy_project(ctloop_home: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", "probe"]) == 0, capsys.readouterr().err


def test_the_project_root_stays_the_project_wherever_the_state_is(
        ctloop_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ctloop.loop.declaration import load_loops

    (ctloop_home / "ctloop.toml").write_text(LOOP + "\n[ctloop.environments.staging]\n")
    project = ctloop_home.resolve()
    state = ctloop_home.parent / f"{ctloop_home.name}-var-lib" / "ctloop"  # CTLOOP_HOME
    monkeypatch.setenv("CTLOOP_HOME", str(state))
    for env in (None, "staging"):  # an environment keeps its state under its own home
        settings = load_settings(env=env)
        assert settings.home != project / ".ctloop"
        assert settings.project_root == project  # was home.parent: /var/lib, or environments/
        assert load_loops(settings)["churn"].data == str(project / "landing" / "*.parquet")
