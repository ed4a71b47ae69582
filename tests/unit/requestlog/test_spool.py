"""The write-ahead journal (issue 21): one append-only file per writer, read back exactly.

Real files and processes: journals written by :class:`Spool` (or the layout before it,
written here byte for byte as that version did), damaged the ways a crash or a bad disk
damage them, then adopted by another log and published; what the index holds is read
back with DuckDB.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ctloop.core.errors import StoreError
from ctloop.requestlog import spool as spool_module
from ctloop.requestlog.entries import Entry, pack
from ctloop.requestlog.log import LogOptions, open_prediction_log
from ctloop.requestlog.rawchunks import RawChunk, encode, join
from ctloop.requestlog.records import PredictionRecord
from ctloop.requestlog.spool import Spool, parse, spooled_chunks
from ctloop.requestlog.tables import records_to_table

T = datetime(2024, 1, 1, tzinfo=UTC)
QUIET = LogOptions(publish_interval=60)  # no publish by the thread during a test


def _frame(i: int, n: int = 1) -> RawChunk:
    """A frame as the server's sender pipes it: ``n`` rows of request ``i``, pickled."""
    entry = Entry("m", 1, "champion", "v2", T, 1.5, [f"r{i}-{j}" for j in range(n)],
                  np.full(n, 0.5), inputs={"x": np.arange(n, dtype=np.float64) + i})
    blob = encode(pack([entry])[0])
    assert blob is not None
    return RawChunk(blob, n)


def _ids(*requests: tuple[int, int]) -> list[str]:
    return sorted(f"r{i}-{j}" for i, n in requests for j in range(n))


def _read_ids(root: Path) -> list[str]:
    log = open_prediction_log(root, options=QUIET)
    try:
        frame = log.read(model_name="m")  # adopts and publishes dead writers' spools first
        assert frame["request_id"].is_unique
        return sorted(frame["request_id"])
    finally:
        log.close()


def _dead_writer(root: Path, frames: list[list[RawChunk]]) -> Path:
    """A spool folder as a writer killed before publishing leaves it: each inner list one
    write (a group of frames received together). Returns its journal."""
    log = open_prediction_log(root, options=QUIET)
    for group in frames:
        log.append_raw(group)
    spool = log._spool
    assert spool is not None
    spool.close(remove=False)  # its lock released, as by the process dying
    log._spool = None
    log.close()
    journals = list(spool.folder.glob("*.wal"))
    assert len(journals) == 1
    return journals[0]


@pytest.mark.parametrize("rows", [1, 2, 100])
def test_each_frame_is_one_record_and_a_write_one_group(tmp_path: Path, rows: int) -> None:
    log = open_prediction_log(tmp_path, options=QUIET)
    log.append_raw([_frame(1, rows), _frame(2, rows), _frame(3, rows)])  # one write
    log.append_raw([_frame(4, rows)])
    chunks = spooled_chunks(tmp_path / ".spool")
    assert [c.seq for c in chunks] == [0, 1, 2, 3] and {c.rows for c in chunks} == {rows}
    assert len(list((tmp_path / ".spool").rglob("*.wal"))) == 1
    assert log.pending() == 4 * rows
    assert log.publish() == 4 * rows
    log.append_raw([_frame(5, rows)])  # the same journal; the next publish starts here
    assert log.pending() == rows
    assert [c.seq for c in log._spool.chunks()] == [4]  # type: ignore[union-attr]
    assert log.publish() == rows
    log.close()
    assert _read_ids(tmp_path) == _ids(*((i, rows) for i in range(1, 6)))


def test_a_publish_rolls_a_full_journal_and_deletes_it_once_indexed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "ROLL_BYTES", 1)
    log = open_prediction_log(tmp_path, options=QUIET)
    log.append_raw([_frame(1), _frame(2)])
    journals = list((tmp_path / ".spool").rglob("*.wal"))
    assert [p.name for p in journals] == ["000000000000.wal"]
    assert log.publish() == 2
    assert not journals[0].exists()
    log.append_raw([_frame(3)])
    assert [p.name for p in (tmp_path / ".spool").rglob("*.wal")] == ["000000000002.wal"]
    log.close()
    assert _read_ids(tmp_path) == _ids((1, 1), (2, 1), (3, 1))


def test_without_fsync_the_journal_is_the_same(tmp_path: Path) -> None:
    log = open_prediction_log(tmp_path, options=LogOptions(publish_interval=60, fsync=False))
    log.append_raw([_frame(1), _frame(2, 2)])
    assert log.pending() == 3
    log.close()
    assert _read_ids(tmp_path) == _ids((1, 1), (2, 2))


def test_arrow_chunks_and_frames_share_the_journal(tmp_path: Path) -> None:
    log = open_prediction_log(tmp_path, options=QUIET)
    log.append([PredictionRecord(f"t{i}", "m", 1, "champion", T, 0.1) for i in range(3)])
    log.append_raw([_frame(1, 2)])
    assert [c.rows for c in spooled_chunks(tmp_path / ".spool")] == [3, 2]
    log.close()  # publishes
    assert _read_ids(tmp_path) == sorted(["t0", "t1", "t2", *_ids((1, 2))])


@pytest.mark.parametrize("cut", ["in a header", "in a payload", "zeros past the end"])
def test_a_torn_tail_is_ignored_and_the_whole_records_published(
        tmp_path: Path, cut: str) -> None:
    journal = _dead_writer(tmp_path, [[_frame(1)], [_frame(2, 2)], [_frame(3)]])
    data = journal.read_bytes()
    starts = [int(c.where.split("@")[1]) for c in parse(data)[0]]
    torn = {"in a header": data[:starts[2] + 9],
            "in a payload": data[:len(data) - 5],
            "zeros past the end": data[:starts[2]] + bytes(4096)}[cut]
    journal.write_bytes(torn)
    assert _read_ids(tmp_path) == _ids((1, 1), (2, 2))  # never half-read, nothing set aside
    assert not list((tmp_path / ".spool").rglob("*.bad"))
    assert not spooled_chunks(tmp_path / ".spool") and not journal.parent.exists()


@pytest.mark.parametrize("damage", ["payload", "header"])
def test_a_corrupt_record_in_the_middle_is_set_aside_and_the_rest_published(
        tmp_path: Path, damage: str) -> None:
    journal = _dead_writer(tmp_path, [[_frame(1), _frame(2, 2)], [_frame(3)], [_frame(4, 2)]])
    data = bytearray(journal.read_bytes())
    starts = [int(c.where.split("@")[1]) for c in parse(bytes(data))[0]]
    data[starts[1] + (40 if damage == "payload" else 9)] ^= 0xFF  # record 1: r2's frame
    journal.write_bytes(bytes(data))
    log = open_prediction_log(tmp_path, options=QUIET)
    assert log.recover() == 4
    assert log.bad_chunks == 1
    bad = list((tmp_path / ".spool").rglob("*.bad"))
    assert len(bad) == 1 and bad[0].parent.name == ".set-aside"
    assert bad[0].read_bytes() in bytes(data)  # the damaged bytes, kept as they were
    assert log.recover() == 0  # adopted once, the folder gone; the set-aside file stays
    log.close()
    assert _read_ids(tmp_path) == _ids((1, 1), (3, 1), (4, 2))
    assert bad[0].exists()


def test_a_failed_append_leaves_no_torn_record_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk mid-write: the journal is cut back to its whole records, the write
    raises (the writer refuses requests), and the next write follows cleanly."""
    log = open_prediction_log(tmp_path, options=QUIET)
    log.append_raw([_frame(1)])
    real = os.writev

    def half_then_full(fd: int, buffers: list[memoryview]) -> int:
        real(fd, [bytes(buffers[0])[:10]])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", half_then_full)
    with pytest.raises(StoreError, match="No space left"):
        log.append_raw([_frame(2)])
    monkeypatch.setattr(os, "writev", real)
    log.append_raw([_frame(3)])
    chunks = spooled_chunks(tmp_path / ".spool")
    assert [c.seq for c in chunks] == [0, 1] and not any(c.error for c in chunks)
    log.close()
    assert _read_ids(tmp_path) == _ids((1, 1), (3, 1))


def _old_layout(root: Path, writer: str, chunks: list[bytes]) -> Path:
    """A spool folder as the version before the journal left it: ``<seq>.arrow`` per
    chunk (an Arrow IPC file, or raw frames), a lock, a half-written hidden chunk."""
    folder = root / writer
    folder.mkdir(parents=True)
    (folder / ".lock").touch()
    for seq, data in enumerate(chunks):
        (folder / f"{seq:012d}.arrow").write_bytes(data)
    (folder / f".{len(chunks):012d}.tmp").write_bytes(chunks[0][:20])
    return folder


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as out:
        out.write_table(table)
    return bytes(sink.getvalue())


def test_an_old_layout_spool_is_published_once_after_an_upgrade(tmp_path: Path) -> None:
    log = open_prediction_log(tmp_path, options=QUIET)
    records = records_to_table([PredictionRecord(f"t{i}", "m", 1, "champion", T, 0.1)
                                for i in range(3)])
    folder = _old_layout(log.spool_root, "oldhost-41-deadbeef", [
        join([_frame(1), _frame(2, 2)]), _ipc(records), join([_frame(3, 100)])])
    assert sum(c.rows for c in spooled_chunks(log.spool_root)) == 106
    assert log.recover() == 106
    assert not folder.exists() and log.recover() == 0
    log.close()
    assert _read_ids(tmp_path) == sorted(["t0", "t1", "t2", *_ids((1, 1), (2, 2), (3, 100))])


def test_an_old_layout_spool_partly_published_before_the_upgrade(tmp_path: Path) -> None:
    """The index says chunk 0 was published (the old writer died before deleting it)."""
    log = open_prediction_log(tmp_path, options=QUIET)
    log.append_raw([_frame(1)])
    log.flush()
    folder = _old_layout(log.spool_root, "oldhost-42-feedface",
                         [join([_frame(1)]), join([_frame(2)])])
    log.index.publish(folder.name, 0, [])  # as the old writer's publish of chunk 0 did
    assert log.recover() == 1
    log.close()
    assert _read_ids(tmp_path) == _ids((1, 1), (2, 1))


_CRASH_AFTER_INDEX = """
import os, sys
import numpy as np
from datetime import UTC, datetime
from ctloop.requestlog.entries import Entry, pack
from ctloop.requestlog.log import LogOptions, open_prediction_log
from ctloop.requestlog.rawchunks import RawChunk, encode

def frame(i):
    e = Entry("m", 1, "champion", "v2", datetime(2024, 1, 1, tzinfo=UTC), 1.5, [f"r{i}-0"],
              np.full(1, 0.5), inputs={"x": np.arange(1, dtype=np.float64)})
    return RawChunk(encode(pack([e])[0]), 1)

log = open_prediction_log(sys.argv[1], options=LogOptions(publish_interval=60))
real = log.index.publish

def publish_then_die(writer, seq, segments):
    real(writer, seq, segments)  # indexed: the records taken are published
    log.append_raw([frame(9)])  # spooled after the publish took the journal
    os._exit(9)  # killed before the journal is deleted

log.index.publish = publish_then_die
for i in range(1, 4):
    log.append_raw([frame(i)])
log.flush()
"""


def test_a_crash_between_publish_and_cleanup_publishes_each_record_once(
        tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _CRASH_AFTER_INDEX, str(tmp_path)],
                          check=False, capture_output=True, text=True)
    assert done.returncode == 9, done.stderr
    assert [c.seq for c in spooled_chunks(tmp_path / ".spool")] == [0, 1, 2, 3]
    log = open_prediction_log(tmp_path, options=QUIET)
    assert len(log.segments()) == 1
    assert log.recover() == 1  # only the record written after the publish
    assert log.recover() == 0 and not list((tmp_path / ".spool").rglob("*.wal"))
    log.close()
    assert _read_ids(tmp_path) == _ids((1, 1), (2, 1), (3, 1), (9, 1))


def test_a_live_writers_journal_is_never_adopted(tmp_path: Path) -> None:
    one = open_prediction_log(tmp_path, options=QUIET)
    one.append_raw([_frame(1)])
    two = open_prediction_log(tmp_path, options=QUIET)
    assert two.recover() == 0 and one.pending() == 1
    one.close()
    two.close()
    assert _read_ids(tmp_path) == _ids((1, 1))


def test_numbers_continue_after_what_an_adopted_folder_holds(tmp_path: Path) -> None:
    spool = Spool.create(tmp_path, "host-1-abc")
    assert spool.write([_frame(1), _frame(2)]) == 1
    spool.close(remove=False)
    fd = os.open(tmp_path / "host-1-abc" / ".lock", os.O_RDWR)
    again = Spool(tmp_path / "host-1-abc", fd)
    assert again.write([_frame(3)]) == 2
    assert [c.seq for c in again.chunks()] == [0, 1, 2]
    again.close(remove=True)
    assert not (tmp_path / "host-1-abc").exists()
