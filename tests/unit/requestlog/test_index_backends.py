"""The prediction log's index on every backend: SQLite with the standard library, SQLite,
PostgreSQL and MariaDB with SQLAlchemy; the two SQLite ones read each other's rows."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ctloop.core.errors import ConfigError
from ctloop.requestlog.index import open_index
from ctloop.requestlog.index_sql import SqlLogIndex
from ctloop.requestlog.index_sqlite import SqliteLogIndex, sqlite_path
from ctloop.requestlog.segments import LogIndex, SegmentInfo
from ctloop.testing.databases import temporary_metadata_url

T0 = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _seg(path: str, model: str | None = "m", start: int = 0, minutes: int = 10,
         kind: str = "predictions", rows: int = 5) -> SegmentInfo:
    return SegmentInfo(path=path, kind=kind, model_name=model,
                       ts_min=T0 + timedelta(minutes=start),
                       ts_max=T0 + timedelta(minutes=start + minutes),
                       rows=rows, bytes=100 * rows, writer="w1")


@pytest.fixture(params=["sqlite", "sqlite-sqlalchemy", "postgres", "mysql"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogIndex]:
    backend = str(request.param)
    if backend.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'index.db'}"
        made: LogIndex = (SqlLogIndex(url, "log-a", create_tables=True)
                          if backend == "sqlite-sqlalchemy"
                          else open_index(url, "log-a", create_tables=True))
        assert isinstance(made, SqliteLogIndex) == (backend == "sqlite")
        yield made
        made.close()
        return
    with temporary_metadata_url(backend) as url:
        made = open_index(url, "log-a")
        assert isinstance(made, SqlLogIndex)
        yield made
        made.close()


def test_publish_and_list(index: LogIndex) -> None:
    assert index.published_seq("w1") == -1
    index.publish("w1", 3, [_seg("a.parquet", start=20), _seg("b.parquet", "n", start=0)])
    index.publish("w1", 7, [_seg("c.parquet", start=5)])
    index.publish("w1", 8, [])
    assert index.published_seq("w1") == 8
    assert index.published_seq("w2") == -1
    listed = index.segments()
    assert [s.path for s in listed] == ["b.parquet", "c.parquet", "a.parquet"]  # oldest first
    first = listed[0]
    assert (first.ts_min, first.ts_max) == (T0, T0 + timedelta(minutes=10))  # microseconds kept
    assert first.ts_min is not None and first.ts_min.tzinfo is not None
    assert (first.model_name, first.rows, first.bytes, first.writer) == ("n", 5, 500, "w1")
    assert len({s.id for s in listed}) == 3
    assert [s.path for s in index.segments(model_name="m")] == ["c.parquet", "a.parquet"]
    # [start, end): a segment overlapping the window is listed, one ending before it is not
    window = index.segments(start=T0 + timedelta(minutes=16), end=T0 + timedelta(minutes=21))
    assert [s.path for s in window] == ["a.parquet"]
    assert index.segments(end=T0) == []
    assert index.models() == ["m", "n"]


def test_labels_add_once_replace_and_drop(index: LogIndex) -> None:
    index.add([_seg("labels/l.parquet", None, kind="labels")])
    assert [s.path for s in index.segments("labels")] == ["labels/l.parquet"]
    assert index.models() == []
    assert index.add_once([_seg("x.parquet"), _seg("y.parquet")])
    assert not index.add_once([_seg("y.parquet"), _seg("z.parquet")])  # y is known: none added
    old = index.segments()
    assert [s.path for s in old] == ["x.parquet", "y.parquet"]
    assert index.replace(old, _seg("compact.parquet", rows=10))
    assert not index.replace(old, _seg("compact-2.parquet"))  # another compactor won
    assert [s.path for s in index.segments()] == ["compact.parquet"]
    assert index.drop(index.segments()) == 1
    assert index.drop([]) == 0
    assert index.segments() == []


def test_the_two_sqlite_indexes_read_each_others_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.db'}"
    lean = open_index(url, "k", create_tables=True)
    full = SqlLogIndex(url, "k", create_tables=True)
    try:
        lean.publish("w1", 1, [_seg("a.parquet")])
        full.publish("w1", 2, [_seg("b.parquet", start=30)])
        assert lean.published_seq("w1") == full.published_seq("w1") == 2
        assert lean.segments() == full.segments()
        late = T0 + timedelta(minutes=35)
        assert [s.path for s in lean.segments(start=late)] == ["b.parquet"]
        assert [s.path for s in full.segments(start=late)] == ["b.parquet"]
    finally:
        lean.close()
        full.close()


def test_sqlite_index_of_the_metadata_database_is_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'metadata.db'}"
    index = open_index(url, "k")  # a fresh metadata database: migrated first
    index.publish("w", 0, [_seg("a.parquet")])
    again = open_index(url, "k", prepared=True)
    assert [s.path for s in again.segments()] == ["a.parquet"]
    index.close()
    again.close()


def test_a_file_that_is_no_database_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "index.db"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigError, match="not a SQLite database"):
        open_index(f"sqlite:///{path}", "k", create_tables=True)


@pytest.mark.parametrize(("url", "path"), [
    ("sqlite:////tmp/a b/index.db", "/tmp/a b/index.db"),
    ("sqlite:////tmp/a%20b/index.db", "/tmp/a b/index.db"),
    ("sqlite+pysqlite:///rel/index.db", "rel/index.db"),
    ("sqlite://", None),
    ("sqlite:///:memory:", None),
    ("sqlite:///file:x?mode=memory&uri=true", None),
    ("postgresql+psycopg://u@h/db", None),
])
def test_sqlite_urls_taken_by_the_standard_library(url: str, path: str | None) -> None:
    assert sqlite_path(url) == path


_SERVER = """
import pickle, sys
from pathlib import Path
from ctloop.requestlog.log import LogOptions, open_prediction_log

log = open_prediction_log(Path(sys.argv[1]), options=LogOptions())  # tables made here
Path(sys.argv[2]).write_bytes(pickle.dumps(log.spec))
log.close()
"""

_WRITER = """
import pickle, sys
from datetime import UTC, datetime
from pathlib import Path
from ctloop.requestlog.records import PredictionRecord

log = pickle.loads(Path(sys.argv[1]).read_bytes()).open()  # as the writer process does
log.append([PredictionRecord(f"r{i}", "m", 1, "champion", datetime(2024, 1, 1, tzinfo=UTC),
                             0.5, {"x": float(i)}) for i in range(int(sys.argv[2]))])
log.close()
print(log.published_rows)
print(" ".join(sorted({m.split(".")[0] for m in sys.modules} & {"sqlalchemy", "fsspec"})))
"""


@pytest.mark.parametrize("rows", [1, 2, 300])
def test_a_local_logs_writer_process_needs_neither_sqlalchemy_nor_fsspec(
        tmp_path: Path, rows: int) -> None:
    spec = tmp_path / "spec.pickle"
    made = subprocess.run([sys.executable, "-c", _SERVER, str(tmp_path / "log"), str(spec)],
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    done = subprocess.run([sys.executable, "-c", _WRITER, str(spec), str(rows)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    published, imported = [*done.stdout.splitlines(), ""][:2]
    assert int(published) == rows
    assert imported == ""
