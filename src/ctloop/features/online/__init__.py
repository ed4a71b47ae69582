"""Online stores: SQLite (default) and Redis behind one interface."""

from ctloop.features.online.base import OnlineRecord, OnlineStore, WriteBatch, open_online_store

__all__ = ["OnlineRecord", "OnlineStore", "WriteBatch", "open_online_store"]
