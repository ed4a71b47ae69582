"""SQLite specifics of the metadata store, migrations, and bad database URLs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from ctloop.core.errors import BackendUnavailable, ConfigError
from ctloop.metadata import RunRecord, new_id, open_metadata_store
from ctloop.metadata.migrate import HEAD, VERSION_TABLE, head_revision
from ctloop.testing.services import POSTGRES_URL, patience, require_service


def test_head_constant_matches_the_migration_scripts() -> None:
    assert head_revision() == HEAD


def test_migrations_create_exactly_the_schema_the_code_uses(tmp_path: Path) -> None:
    """Alembic's autogenerate compare finds nothing to change after upgrade."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from ctloop.metadata.schema import metadata

    store = open_metadata_store(f"sqlite:///{tmp_path / 'm.db'}")
    store.close()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, metadata) == []
    engine.dispose()


def test_default_url_comes_from_settings(ctloop_home: Path) -> None:
    store = open_metadata_store()
    store.close()
    assert (ctloop_home / ".ctloop" / "metadata.db").is_file()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = open_metadata_store(f"sqlite:///{tmp_path / 'm.db'}")
    store.close()
    with sa.create_engine(f"sqlite:///{tmp_path / 'm.db'}").connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


_WRITER = """
import sys
from ctloop.metadata import RunRecord, StepRecord, StepStatus, new_id, open_metadata_store
url, worker, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = open_metadata_store(url)  # every process migrates on open: they must not collide
for i in range(n):
    run = store.create_run(RunRecord(id=new_id(), pipeline="w" + worker, pipeline_version="v"))
    store.save_step(StepRecord(id=new_id(), run_id=run.id, name=f"s{i}", component="c",
                               component_version="1", status=StepStatus.SUCCEEDED))
    store.create_model_version("shared", f"a{worker}-{i}")
store.close()
"""


@pytest.mark.slow
def test_concurrent_processes_share_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, url, str(w), "15"], stderr=subprocess.PIPE, text=True
        )
        for w in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    store = open_metadata_store(url)
    assert sum(len(store.list_runs(pipeline=f"w{w}")) for w in range(4)) == 60
    assert [v.version for v in store.list_model_versions("shared")] == list(range(1, 61))
    store.close()


# bad URLs: one clear error each, nothing stored is lost --------------------------
@pytest.mark.parametrize(
    "url, match",
    [
        ("", "empty"),
        ("not a url", "not a database URL"),
        ("oracle://scott@db/x", "does not support"),
        ("mongodb://localhost/x", "does not support"),
    ],
)
def test_wrong_url_is_a_config_error(url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        open_metadata_store(url)
    assert "\n" not in info.value.one_line()


def test_sqlite_url_naming_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="folder"):
        open_metadata_store(f"sqlite:///{tmp_path}")


def test_file_that_is_not_a_database_is_left_untouched(tmp_path: Path) -> None:
    notes = tmp_path / "notes.db"
    notes.write_bytes(b"my precious notes, not SQLite " * 100)
    before = notes.read_bytes()
    with pytest.raises(ConfigError, match="not a SQLite database"):
        open_metadata_store(f"sqlite:///{notes}")
    assert notes.read_bytes() == before


@pytest.mark.timeout(patience(30))  # fails fast: a hang is stopped here, not timed (20.7)
def test_unreachable_server_fails_fast_with_the_url_but_no_password() -> None:
    with pytest.raises(BackendUnavailable, match="Cannot connect") as info:
        open_metadata_store("postgresql+psycopg://ana:s3cret@127.0.0.1:1/db")
    line = info.value.one_line()
    assert "127.0.0.1:1" in line and "s3cret" not in line


def test_url_without_driver_uses_ctloops_driver() -> None:
    """Plain postgresql:// means psycopg 3 (installed), not psycopg2 (not a dependency)."""
    with pytest.raises(BackendUnavailable, match="Cannot connect") as info:
        open_metadata_store("postgresql://127.0.0.1:1/db")
    assert "psycopg2" not in str(info.value)


def test_wrong_database_name_on_a_live_server() -> None:
    require_service("postgres")
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/no_such_database_ctloop"
    with pytest.raises(BackendUnavailable, match="no_such_database_ctloop"):
        open_metadata_store(url)


def test_database_from_a_newer_ctloop_is_refused_and_kept(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    store = open_metadata_store(url)
    run = store.create_run(RunRecord(id=new_id(), pipeline="p", pipeline_version="v"))
    store.close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    with pytest.raises(ConfigError, match="newer ctloop"):
        open_metadata_store(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = :h"), {"h": HEAD})
    engine.dispose()
    assert open_metadata_store(url).get_run(run.id).id == run.id


def test_many_concurrent_first_opens_of_fresh_files(tmp_path: Path) -> None:
    """Switching a new file to WAL from several connections at once used to fail with
    "database is locked" (SQLite skips its busy handler there); it must just work."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from ctloop.metadata import RunRecord, new_id, open_metadata_store

    for i in range(15):
        url = f"sqlite:///{tmp_path / f'm{i}.db'}"
        barrier = threading.Barrier(6)

        def first_run(_: int, url: str = url, barrier: threading.Barrier = barrier) -> str:
            barrier.wait()
            store = open_metadata_store(url)
            try:
                return store.create_run(RunRecord(id=new_id(), pipeline="p",
                                                  pipeline_version="v")).id
            finally:
                store.close()

        with ThreadPoolExecutor(6) as pool:
            assert len(set(pool.map(first_run, range(6)))) == 6
