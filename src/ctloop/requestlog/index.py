"""Opening the prediction log's index: the implementation its database URL needs."""

from __future__ import annotations

from ctloop.requestlog.segments import LogIndex

__all__ = ["open_index"]


def open_index(url: str, key: str, *, create_tables: bool = False,
               prepared: bool = False) -> LogIndex:
    """The index of log ``key`` in the database at ``url``.

    ``create_tables``: the database is a local log's own SQLite file, whose tables are
    made here if missing; otherwise it is the metadata database, migrated to the
    current schema first unless ``prepared`` (another process of this service just did).
    """
    from ctloop.requestlog.index_sqlite import SqliteLogIndex, sqlite_path

    path = sqlite_path(url)
    if path is not None:
        return SqliteLogIndex(url, path, key, create_tables=create_tables, prepared=prepared)
    from ctloop.requestlog.index_sql import SqlLogIndex

    return SqlLogIndex(url, key, create_tables=create_tables)
