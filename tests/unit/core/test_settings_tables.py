"""The tables of ctloop.toml as typed sections of ``Settings``."""

from __future__ import annotations

from pathlib import Path

from ctloop.core.settings import KNOWN_TABLES, Settings, Tables, load_settings


def test_each_known_table_has_its_field_and_other_tables_are_plugins(ctloop_home: Path) -> None:
    (ctloop_home / "ctloop.toml").write_text(
        "[ctloop]\nrunner = 'subprocess'\n"
        "[ctloop.serving]\nalias = 'prod'\n"
        "[ctloop.loops.churn]\ndata = 'x'\n"
        "[ctloop.triggers.nightly]\ncron = '0 3 * * *'\n"
        "[ctloop.dask]\nn_workers = 2\n"
        "[ctloop.acme]\nlevel = 3\n"
    )
    settings = load_settings()
    tables = settings.tables
    assert tables.serving == {"alias": "prod"} and tables.dask == {"n_workers": 2}
    assert tables.loops == {"churn": {"data": "x"}}
    assert tables.triggers == {"nightly": {"cron": "0 3 * * *"}}
    assert tables.plugins == {"acme": {"level": 3}} and tables.s3 == tables.ui == {}
    assert settings.runner == "subprocess"


def test_known_tables_are_the_fields_and_environments() -> None:
    assert KNOWN_TABLES == {"serving", "loops", "triggers", "monitors", "features",
                            "prediction_log", "s3", "dask", "deploy", "ui", "model_test",
                            "environments"}


def test_tables_by_name_keep_only_what_was_written(tmp_path: Path) -> None:
    tables = Tables.from_tables({"serving": {"seed": 1}, "acme": {"a": True}})
    assert tables.as_dict() == {"serving": {"seed": 1}, "acme": {"a": True}}
    settings = Settings(home=tmp_path, tables=tables)
    assert settings.with_(runner="dask").tables == tables
    assert Settings(home=tmp_path).tables == Tables()
