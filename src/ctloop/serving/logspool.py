"""Old home of the request log's entries, kept for one merge: use ``ctloop.requestlog``."""

from ctloop.requestlog.entries import Entry, LogSpool, RowwiseBatch, coalesce

__all__ = ["Entry", "LogSpool", "RowwiseBatch", "coalesce"]
