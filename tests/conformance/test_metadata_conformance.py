"""One suite for every metadata backend: SQLite, PostgreSQL and MariaDB/MySQL.

The interface contracts live in :mod:`ctloop.testing.metadata_contract`, one per
Protocol (runs and steps, artifacts and lineage, registry, definitions); here
they run over every backend, plus what is specific to the SQL store (reopening,
pickling by URL, migrations). Each backend gets a fresh schema/database for the
module (created, migrated by the store itself, dropped at the end); tests use
unique names so they do not see each other's records.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ctloop.metadata import (
    CatalogStore,
    DefinitionStore,
    LineageStore,
    MetadataStore,
    ModelStore,
    PipelineStore,
    RegistryStore,
    RunRecord,
    RunStore,
    new_id,
    open_metadata_store,
)
from ctloop.testing.databases import temporary_metadata_url
from ctloop.testing.metadata_contract import (
    DefinitionStoreContract,
    LineageStoreContract,
    RegistryStoreContract,
    RunStoreContract,
)
from ctloop.testing.services import unique_name

BACKENDS = ["sqlite", "postgres", "mysql"]


@pytest.fixture(scope="module", params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    with temporary_metadata_url(request.param, tmp_path_factory.mktemp("md")) as url:
        yield url


@pytest.fixture(scope="module")
def store(store_url: str) -> Iterator[MetadataStore]:
    opened = open_metadata_store(store_url)
    yield opened
    opened.close()


class TestRuns(RunStoreContract):
    __test__ = True


class TestLineage(LineageStoreContract):
    __test__ = True


class TestRegistry(RegistryStoreContract):
    __test__ = True


class TestDefinitions(DefinitionStoreContract):
    __test__ = True


# the store as an object ---------------------------------------------------------
def _run(pipeline: str | None = None) -> RunRecord:
    return RunRecord(id=new_id(), pipeline=pipeline or unique_name("pipe"), pipeline_version="v1")


def test_it_provides_every_metadata_protocol(store: MetadataStore) -> None:
    for protocol in (RunStore, LineageStore, RegistryStore, DefinitionStore, PipelineStore,
                     ModelStore, CatalogStore, MetadataStore):
        assert isinstance(store, protocol), protocol.__name__


def test_reopen_sees_everything_and_pickles_by_url(store: MetadataStore, store_url: str) -> None:
    run = store.create_run(_run())
    again = open_metadata_store(store_url)  # migrations already at head: a no-op
    try:
        assert again.get_run(run.id) == run
    finally:
        again.close()
    clone = pickle.loads(pickle.dumps(store))
    try:
        assert clone.get_run(run.id) == run
    finally:
        clone.close()


# migrations on a fresh database -------------------------------------------------
@pytest.fixture(params=BACKENDS)
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path):
    with temporary_metadata_url(request.param, tmp_path) as url:
        yield url


def test_concurrent_first_opens_migrate_once(fresh_url: str) -> None:
    barrier = threading.Barrier(4)

    def open_and_write(i: int) -> str:
        barrier.wait()
        store = open_metadata_store(fresh_url)
        try:
            return store.create_run(_run("first-open")).id
        finally:
            store.close()

    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(open_and_write, range(4)))
    store = open_metadata_store(fresh_url)
    try:
        assert {r.id for r in store.list_runs(pipeline="first-open")} == set(ids)
    finally:
        store.close()


def test_migrated_schema_matches_the_code(fresh_url: str) -> None:
    """Alembic's autogenerate compare finds nothing to change after the migrations ran."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from ctloop.metadata.engine import create_engine
    from ctloop.metadata.migrate import VERSION_TABLE
    from ctloop.metadata.schema import metadata

    open_metadata_store(fresh_url).close()
    engine = create_engine(fresh_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": VERSION_TABLE, "compare_type": True}
            )
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
