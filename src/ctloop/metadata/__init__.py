"""The metadata store: runs, steps, artifacts, events, lineage, registry and catalog records.

``open_metadata_store(url)`` opens (and creates or migrates) the store for a
URL; without one it uses the project's settings (``CTLOOP_METADATA_URL``,
default a SQLite file under ``.ctloop/``).
"""

from __future__ import annotations

from ctloop.metadata.base import (
    UNSET,
    AliasEventRecord,
    ArtifactRecord,
    CatalogStore,
    DefinitionRecord,
    DefinitionStore,
    EventRecord,
    LineageStore,
    MetadataStore,
    ModelStore,
    ModelVersionRecord,
    ModelVersionUpdate,
    PipelineStore,
    RegistryStore,
    RunLineageStore,
    RunRecord,
    RunStatus,
    RunStore,
    RunUpdate,
    StepRecord,
    StepStatus,
    to_dict,
)

__all__ = [
    "UNSET",
    "AliasEventRecord",
    "ArtifactRecord",
    "CatalogStore",
    "DefinitionRecord",
    "DefinitionStore",
    "EventRecord",
    "LineageStore",
    "MetadataStore",
    "ModelStore",
    "ModelVersionRecord",
    "ModelVersionUpdate",
    "PipelineStore",
    "RegistryStore",
    "RunLineageStore",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "RunUpdate",
    "StepRecord",
    "StepStatus",
    "new_id",
    "open_metadata_store",
    "to_dict",
]


def open_metadata_store(url: str | None = None) -> MetadataStore:
    """The metadata store at ``url`` (default: from the settings), at the current schema."""
    from ctloop.metadata.sql import SqlMetadataStore

    if url is None:
        from ctloop.core.settings import load_settings

        url = load_settings().metadata_url
    return SqlMetadataStore(url)


def new_id() -> str:
    """A fresh record id (32 hex characters)."""
    import uuid

    return uuid.uuid4().hex
