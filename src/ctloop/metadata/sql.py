"""The metadata store on SQLAlchemy Core: one implementation for SQLite, PostgreSQL, MySQL.

Written by concern, as the Protocols in :mod:`ctloop.metadata.base` are: runs and
steps (``sql_runs.py``), artifacts and events (``sql_lineage.py``), model versions
and aliases (``sql_registry.py``) and the catalog's definitions
(``sql_definitions.py``), each over the engine and transactions of ``sql_core.py``.
This class joins them into the one store a URL opens.
"""

from __future__ import annotations

from ctloop.metadata.engine import describe_url
from ctloop.metadata.sql_definitions import SqlDefinitionStore
from ctloop.metadata.sql_lineage import SqlLineageStore
from ctloop.metadata.sql_registry import SqlRegistryStore
from ctloop.metadata.sql_runs import SqlRunStore

__all__ = ["SqlMetadataStore"]


class SqlMetadataStore(SqlRunStore, SqlLineageStore, SqlRegistryStore, SqlDefinitionStore):
    """``MetadataStore`` over a SQLAlchemy engine; open it with ``open_metadata_store``."""

    def __repr__(self) -> str:
        return f"SqlMetadataStore({describe_url(self.url)!r})"

    def __reduce__(self) -> tuple[type[SqlMetadataStore], tuple[str]]:
        # Pickled across processes by URL: the child opens its own connections.
        return (SqlMetadataStore, (self.url,))
