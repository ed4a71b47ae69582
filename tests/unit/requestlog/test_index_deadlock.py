"""A publish the database rolls back as a deadlock's victim is run again, whole; any other
database error is not retried (it would fail the same way)."""

from __future__ import annotations

import pymysql  # type: ignore[import-untyped]  # no stubs; only its error class is used
import sqlalchemy as sa

from ctloop.requestlog.index_sql import _deadlocked


def _error(orig: Exception) -> sa.exc.OperationalError:
    return sa.exc.OperationalError("INSERT ...", {}, orig)


def test_deadlock_victims_are_told_apart_from_other_errors() -> None:
    assert _deadlocked(_error(pymysql.err.OperationalError(1213, "Deadlock found")))
    assert _deadlocked(_error(pymysql.err.OperationalError(1205, "Lock wait timeout")))
    assert not _deadlocked(_error(pymysql.err.OperationalError(2003, "Can't connect")))
    assert not _deadlocked(_error(ValueError("no args code")))
    assert not _deadlocked(None)
