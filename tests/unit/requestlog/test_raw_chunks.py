"""Raw spool chunks (issue 21): the writer process spools the server's frames as they are and
the publisher builds the tables, many chunks at once, with the same rows as an Arrow chunk.

Real processes and files: a :class:`ProcessLogger` over a log in a temporary folder; the
spool's chunks are read from disk; a planted pickle is refused, never run.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ctloop.requestlog.entries import Entry, ModelFacts, SchemaBook, build_tables, merge_packs, pack
from ctloop.requestlog.log import LogOptions, open_prediction_log
from ctloop.requestlog.process import ProcessLogger
from ctloop.requestlog.rawchunks import MAGIC, RawChunk, decode, encode, join, records
from ctloop.requestlog.spool import chunk_rows, load_chunk, spooled_chunks
from ctloop.requestlog.writer import RequestLogger
from ctloop.testing.services import patience, wait_until

T = datetime(2024, 1, 1, tzinfo=UTC)


def _entry(i: int, n: int = 1, **kw: object) -> Entry:
    entry = Entry("m", 1, "champion", "v2", T, 1.5, [f"r{i}-{j}" for j in range(n)],
                  np.linspace(0.1, 0.9, n),
                  inputs={"x": np.arange(n, dtype=np.float64) + i,
                          "c": np.array(["a", "b", "c"] * n, dtype=object)[:n]},
                  entity={"k": np.arange(n) + 100 * i}, decisions=np.ones(n, dtype=np.int64))
    return replace(entry, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("sizes", [[1], [2], [1, 2, 3, 40]])
def test_merged_packs_build_the_same_rows_as_one_table_per_chunk(sizes: list[int]) -> None:
    chunks = [pack([_entry(10 * c + i, n) for i, n in enumerate(sizes)])[0]
              for c in range(3)]
    for c in chunks:
        assert len(c) == 1
    merged = merge_packs([p for c in chunks for p in c])
    assert len(merged) == 1 and merged[0].rows == 3 * sum(sizes)
    one = build_tables(merged, SchemaBook()).tables[0]
    apart = [build_tables(c, SchemaBook()).tables[0] for c in chunks]
    assert one.to_pylist() == [r for t in apart for r in t.to_pylist()]


def test_packs_of_other_groups_or_types_stay_apart() -> None:
    a = pack([_entry(0)])[0][0]
    b = pack([_entry(1, route="challenger")])[0][0]
    c = pack([_entry(2, inputs={"x": np.array(["text"], dtype=object),
                                "c": np.array(["a"], dtype=object)})])[0][0]
    d = pack([_entry(3, model=ModelFacts(classes=("no", "yes")))])[0][0]
    assert len(merge_packs([a, b, c, d, a])) == 4


def test_encode_decode_round_trip_and_the_chunk_format(tmp_path: Path) -> None:
    packs, _ = pack([_entry(i, n) for i, n in enumerate([1, 2, 5])])
    blob = encode(packs)
    assert blob is not None
    data = join([RawChunk(blob, 8), RawChunk(blob, 8)])
    assert data.startswith(MAGIC)
    frames = records(data)
    assert [f.rows for f in frames] == [8, 8]
    back = decode(frames[1].data)
    assert [p.request_ids for p in back] == [p.request_ids for p in packs]  # type: ignore[union-attr]
    path = tmp_path / "000000000000.arrow"
    path.write_bytes(data)
    assert chunk_rows(path) == 16 and isinstance(load_chunk(path), list)
    path.write_bytes(data[:-3])  # torn
    with pytest.raises(ValueError, match="ends inside"):
        load_chunk(path)


def test_a_value_a_raw_chunk_may_not_hold_is_sent_as_items_and_built_on_receipt(
        tmp_path: Path) -> None:
    """As before raw chunks: the writer builds the frame at once (a Fraction is no column
    value: quarantined with the reason, counted; the other rows are logged)."""
    odd = _entry(7, 2, inputs={"x": np.array([Fraction(1, 3), Fraction(2, 3)], dtype=object),
                               "c": np.array(["a", "b"], dtype=object)})
    assert encode(pack([odd])[0]) is None  # Fraction is not on the list
    log = open_prediction_log(tmp_path)
    logger = ProcessLogger(log)
    try:
        logger.submit([odd])
        logger.submit([_entry(8)])
        logger.flush()
        stats = logger.stats()
        assert stats.quarantined_rows == 2 and stats.written_rows == 1
        assert stats.lost_rows == 0
    finally:
        logger.close()
    again = open_prediction_log(tmp_path)
    assert sorted(again.read(model_name="m")["request_id"]) == ["r8-0"]
    assert sum(q["rows"] for q in again.quarantined()) == 2


def test_a_planted_pickle_in_a_spool_is_refused_not_run(tmp_path: Path) -> None:
    """A chunk naming anything but the log's records (here ``os.system``) is set aside as
    ``*.bad``; the chunks around it are published."""
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self) -> tuple[object, ...]:
            return (os.system, (f"touch {marker}",))

    log = open_prediction_log(tmp_path / "log", options=LogOptions(publish_interval=60))
    log.append_raw([RawChunk(encode(pack([_entry(1)])[0]) or b"", 1)])
    log.append_raw([RawChunk(pickle.dumps([Evil()]), 1)])
    log.append_raw([RawChunk(encode(pack([_entry(2, 2)])[0]) or b"", 2)])
    assert log.pending() == 4
    log.flush()
    assert not marker.exists()
    assert log.bad_chunks == 1
    assert len(list((tmp_path / "log").rglob("*.bad"))) == 1
    assert sorted(log.read(model_name="m")["request_id"]) == ["r1-0", "r2-0", "r2-1"]
    log.close()


def test_rows_that_cannot_be_built_at_publish_are_quarantined_and_counted(
        tmp_path: Path) -> None:
    log = open_prediction_log(tmp_path)
    logger = ProcessLogger(log)
    try:
        logger.submit([_entry(1, 2)])
        logger.drain()
        logger.submit([_entry(2, 2, inputs={"x": np.array(["not", "numbers"], dtype=object),
                                            "c": np.array(["a", "b"], dtype=object)})])
        logger.submit([_entry(3)])
        logger.flush()
        wait_until(lambda: logger.stats().quarantined_rows == 2,
                   "the writer to report the rows set aside", patience(30))
        assert logger.stats().written_rows == 5
    finally:
        logger.close()
    again = open_prediction_log(tmp_path)
    assert sorted(again.read(model_name="m")["request_id"]) == ["r1-0", "r1-1", "r3-0"]
    assert sum(q["rows"] for q in again.quarantined()) == 2


def test_a_killed_writers_raw_spool_is_adopted_by_the_next_one(tmp_path: Path) -> None:
    """Raw chunks left by a writer process killed before publishing are published once by
    the next writer opened on the same spool, with the rows of a thread writer's Arrow
    chunks beside them."""
    script = (
        "import sys, time\n"
        "from datetime import UTC, datetime\n"
        "import numpy as np\n"
        "from ctloop.requestlog.entries import Entry\n"
        "from ctloop.requestlog.log import LogOptions, open_prediction_log\n"
        "from ctloop.requestlog.process import ProcessLogger\n"
        "log = open_prediction_log(sys.argv[1], options=LogOptions(publish_interval=60))\n"
        "logger = ProcessLogger(log)\n"
        "for i in range(40):\n"
        "    n = 1 + i % 3\n"
        "    logger.submit([Entry('m', 1, 'champion', 'v2', datetime.now(UTC), 1.5,\n"
        "                         [f'r{i}-{j}' for j in range(n)], np.full(n, 0.5),\n"
        "                         inputs={'x': np.arange(n, dtype=np.float64)})])\n"
        "logger.drain()\n"
        "print('spooled', flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "spooled"
        spooled = spooled_chunks(tmp_path / ".spool")
        assert spooled and all(isinstance(c.load(), list) for c in spooled)
        assert sum(c.rows for c in spooled) == sum(1 + i % 3 for i in range(40))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the server and its writer process
        proc.wait(timeout=patience(30))
    log = open_prediction_log(tmp_path)
    writer = RequestLogger(log)
    writer.submit([_entry(99)])  # a thread writer: an Arrow chunk of its own
    writer.flush()
    wait_until(lambda: len(log.read(model_name="m")) == 80, "the dead writer's spool",
               patience(60))
    writer.close()
    frame = open_prediction_log(tmp_path).read(model_name="m")
    assert frame["request_id"].is_unique and len(frame) == 80
    assert not spooled_chunks(tmp_path / ".spool")


def test_the_writer_process_never_loads_pandas(tmp_path: Path) -> None:
    """pyarrow would import pandas (~50 MB resident) on its first list conversion; the
    writer tells it pandas is absent. Checked on the live process's mapped libraries
    after it built, spooled and published rows."""
    logger = ProcessLogger(open_prediction_log(tmp_path))
    try:
        logger.submit([_entry(1, 3)])
        logger.flush()
        child = logger._child
        assert child is not None
        maps = Path(f"/proc/{child.proc.pid}/maps").read_text()
        assert "pyarrow" in maps  # it did build tables
        assert "/pandas/" not in maps
    finally:
        logger.close()
