"""A misspelled ctloop.toml key or CTLOOP_* variable is reported with the right spelling."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ctloop.core import settings as settings_module
from ctloop.core.settings import check_environment, load_settings


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "_warned", set())


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ctloop.settings"]


def test_misspelled_toml_key_warns_with_the_nearest_valid_one(
    ctloop_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (ctloop_home / "ctloop.toml").write_text('[ctloop]\nmax_worker = 2\nrunner = "subprocess"\n')
    with caplog.at_level(logging.WARNING, "ctloop.settings"):
        settings = load_settings()
    assert settings.max_workers == 4 and settings.runner == "subprocess"  # the typo is ignored
    (message,) = _warnings(caplog)
    assert "'max_worker'" in message and "did you mean 'max_workers'" in message


def test_unknown_key_without_a_near_one_lists_the_valid_keys(
    ctloop_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (ctloop_home / "ctloop.toml").write_text("[ctloop]\nzzz = 1\n")
    with caplog.at_level(logging.WARNING, "ctloop.settings"):
        load_settings()
    (message,) = _warnings(caplog)
    assert "'zzz'" in message and "metadata_url" in message and "max_workers" in message


def test_misspelled_table_warns_but_plugin_tables_do_not(
    ctloop_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (ctloop_home / "ctloop.toml").write_text(
        "[ctloop.trigers.nightly]\ncron = '0 3 * * *'\n[ctloop.my_plugin]\nx = 1\n"
        "[ctloop.s3]\nregion = 'eu'\n"
    )
    with caplog.at_level(logging.WARNING, "ctloop.settings"):
        settings = load_settings()
    (message,) = _warnings(caplog)
    assert "[ctloop.trigers]" in message and "[ctloop.triggers]" in message
    assert settings.tables.plugins["my_plugin"] == {"x": 1}
    assert settings.tables.s3 == {"region": "eu"}
    tables = settings.tables.as_dict()
    assert tables["my_plugin"] == {"x": 1} and tables["s3"] == {"region": "eu"}


def test_misspelled_environment_variable(
    ctloop_home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CTLOOP_METADATA_UR", "sqlite:///nowhere.db")
    monkeypatch.setenv("CTLOOP_RUNER", "subprocess")
    monkeypatch.setenv("CTLOOP_TEST_DIR", "/tmp")  # test helpers' own variables are left alone
    monkeypatch.setenv("CTLOOP_CACHE_DIR", "/tmp")  # known, read by the subprocess runner
    with caplog.at_level(logging.WARNING, "ctloop.settings"):
        settings = load_settings()
    assert settings.runner == "local"
    warned = _warnings(caplog)
    assert len(warned) == 2
    assert any("CTLOOP_METADATA_UR " in m and "CTLOOP_METADATA_URL?" in m for m in warned)
    assert any("CTLOOP_RUNER " in m and "CTLOOP_RUNNER?" in m for m in warned)


def test_each_warning_is_given_once_per_process(
    ctloop_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "ctloop.settings"):
        assert check_environment({"CTLOOP_HOMEE": "x"}) == [
            "The environment variable CTLOOP_HOMEE is not a ctloop setting and is ignored; "
            "did you mean CTLOOP_HOME?"
        ]
        check_environment({"CTLOOP_HOMEE": "x"})
    assert len(_warnings(caplog)) == 1
