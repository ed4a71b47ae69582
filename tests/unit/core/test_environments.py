"""Environments: ``[ctloop.environments.NAME]`` gives staging and prod their own stores."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ctloop.core.errors import ConfigError
from ctloop.core.settings import environment_names, load_settings
from ctloop.testing.cli import cli, one_error_line

CONFIG = """
[ctloop]
runner = "subprocess"
[ctloop.serving]
reload_interval = 5
model_threads = 2

[ctloop.environments.staging]
[ctloop.environments.staging.serving]
reload_interval = 1

[ctloop.environments.prod]
metadata = "postgresql+psycopg://ctloop@db:5432/prod"
artifacts = "s3://models-prod/artifacts"
online_store = "redis://cache:6379/0"
request_log = "s3://models-prod/requests"
[ctloop.environments.prod.serving]
reload_interval = 30
"""


@pytest.fixture
def project(ctloop_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("CTLOOP_ENV", raising=False)
    (ctloop_home / "ctloop.toml").write_text(CONFIG)
    return ctloop_home


def test_each_environment_has_its_own_stores_and_serving_settings(project: Path) -> None:
    base, staging, prod = (load_settings(), load_settings(env="staging"),
                           load_settings(env="prod"))
    assert environment_names() == ["prod", "staging"]
    assert (base.environment, staging.environment, prod.environment) == ("", "staging", "prod")
    # a store staging does not declare lives under its own home, never the project's
    assert staging.home == project / ".ctloop" / "environments" / "staging"
    assert staging.metadata_url == f"sqlite:///{staging.home / 'metadata.db'}"
    assert staging.artifacts_url == (staging.home / "artifacts").as_uri()
    assert len({base.metadata_url, staging.metadata_url, prod.metadata_url}) == 3
    assert len({base.online_store_url, staging.online_store_url, prod.online_store_url}) == 3
    assert prod.artifacts_url == "s3://models-prod/artifacts"
    assert prod.online_store_url == "redis://cache:6379/0"
    assert prod.tables.prediction_log["url"] == "s3://models-prod/requests"
    assert base.tables.prediction_log == {}
    # tables merge over the project's: the reload interval changes, the threads stay
    assert [s.tables.serving for s in (base, staging, prod)] == [
        {"reload_interval": 5, "model_threads": 2}, {"reload_interval": 1, "model_threads": 2},
        {"reload_interval": 30, "model_threads": 2}]
    from ctloop.serving.config import ServingConfig

    assert ServingConfig.from_table(prod.tables.serving).reload_interval == 30
    assert staging.runner == "subprocess"
    assert "environments" not in base.tables.plugins and "environments" not in base.tables.as_dict()


def test_the_variable_chooses_and_declared_stores_win_over_store_variables(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CTLOOP_METADATA_URL", "sqlite:////tmp/elsewhere.db")
    monkeypatch.setenv("CTLOOP_ENV", "prod")
    settings = load_settings()
    assert settings.environment == "prod"
    assert settings.metadata_url.startswith("postgresql+psycopg://")
    assert load_settings(env="").metadata_url == "sqlite:////tmp/elsewhere.db"


def test_an_unknown_environment_is_one_clear_line(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match=r"Unknown environment 'qa'.*prod, staging"):
        load_settings(env="qa")
    code, _, err = cli(capsys, "--env", "qa", "models", "list")
    assert code == 2
    assert "Unknown environment 'qa'" in one_error_line(err)
    monkeypatch.setenv("CTLOOP_ENV", "qa")
    code, _, err = cli(capsys, "models", "list")
    assert code == 2 and "prod, staging" in one_error_line(err)


def test_a_misspelled_key_of_an_environment_is_refused(project: Path) -> None:
    (project / "ctloop.toml").write_text('[ctloop.environments.qa]\nmetadata_ur = "x"\n')
    with pytest.raises(ConfigError, match=r"'metadata_ur'.*environments\.qa"):
        load_settings(env="qa")


def test_env_option_reaches_commands_and_is_undone_after_the_call(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    code, _, err = cli(capsys, "--env", "staging", "models", "list", "--json")
    assert code == 0, err
    assert (project / ".ctloop" / "environments" / "staging" / "metadata.db").is_file()
    assert not (project / ".ctloop" / "metadata.db").exists()
    assert "CTLOOP_ENV" not in os.environ


def test_the_dashboard_shows_the_environment_it_reads(project: Path) -> None:
    from ctloop.ui.app import create_app

    with TestClient(create_app(load_settings(env="staging"))) as client:
        page = client.get("/runs")
    assert page.status_code == 200
    assert 'class="env"' in page.text and ">staging</span>" in page.text
    with TestClient(create_app(load_settings())) as client:
        assert 'class="env"' not in client.get("/runs").text
