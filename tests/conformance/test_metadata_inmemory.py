"""The in-memory reference store passes the same four contracts as the SQL backends."""

from __future__ import annotations

import pytest

from ctloop.metadata import (
    CatalogStore,
    DefinitionStore,
    LineageStore,
    MetadataStore,
    ModelStore,
    PipelineStore,
    RegistryStore,
    RunStore,
)
from ctloop.testing.inmemory import InMemoryMetadataStore
from ctloop.testing.metadata_contract import (
    DefinitionStoreContract,
    LineageStoreContract,
    RegistryStoreContract,
    RunStoreContract,
)


@pytest.fixture(scope="module")
def store() -> InMemoryMetadataStore:
    return InMemoryMetadataStore()


class TestRuns(RunStoreContract):
    __test__ = True


class TestLineage(LineageStoreContract):
    __test__ = True


class TestRegistry(RegistryStoreContract):
    __test__ = True


class TestDefinitions(DefinitionStoreContract):
    __test__ = True


def test_it_provides_every_metadata_protocol(store: InMemoryMetadataStore) -> None:
    for protocol in (RunStore, LineageStore, RegistryStore, DefinitionStore, PipelineStore,
                     ModelStore, CatalogStore, MetadataStore):
        assert isinstance(store, protocol), protocol.__name__


def test_reads_are_copies(store: InMemoryMetadataStore) -> None:
    version = store.create_model_version("copied", "a1", tags={"k": "v"})
    version.tags["k"] = "changed"
    store.get_model_version("copied", 1).tags["k"] = "changed too"
    assert store.get_model_version("copied", 1).tags == {"k": "v"}
