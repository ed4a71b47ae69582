"""Entries gathered field by field on the request path pack as a whole group would.

The process writer's sender joins what :class:`Gathering` collected as requests were
answered; these tests hold it to :func:`pack_group` over the same entries (the order,
every column, the row ids with gaps) and check that an entry whose fields cannot be
read never raises on the request path: its group goes back to the entry-by-entry path
(where it is written or quarantined), the other groups are packed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from ctloop.requestlog.entries import Entry, Gathering, Packed, pack_group

T = datetime(2024, 1, 1, tzinfo=UTC)


def _entry(i: int, n: int, model: str = "a", **kw: object) -> Entry:
    entry = Entry(model, 1, "champion", "v2", T, 0.5 + i, [f"{model}{i}-{j}" for j in range(n)],
                  np.linspace(0.1, 0.9, n) + i,
                  inputs={"x": np.arange(n, dtype=np.float64) + i,
                          "c": np.array(["u", "v", "w"] * n, dtype=object)[:n]},
                  decisions=np.arange(n, dtype=np.int64) % 2)
    return replace(entry, **kw)  # type: ignore[arg-type]


def _same(a: Packed, b: Packed) -> None:
    assert a.request_ids == b.request_ids
    assert a.row_ids == b.row_ids
    for name in ("sizes", "ts_us", "latency_ms", "scores", "decisions"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.inputs.keys() == b.inputs.keys()
    for name in a.inputs:
        np.testing.assert_array_equal(a.inputs[name], b.inputs[name])


@pytest.mark.parametrize("sizes", [[1], [2], [1, 1, 1], [1, 100, 2]])
def test_gathered_rows_pack_as_their_group(sizes: list[int]) -> None:
    entries = [_entry(i, n) for i, n in enumerate(sizes)]
    gathering = Gathering()
    for entry in entries:
        gathering.add(entry)
    assert len(gathering) == len(entries)
    packs, left = gathering.pack()
    assert left == [] and len(packs) == 1
    _same(packs[0], pack_group(entries))
    assert packs[0].rows == sum(sizes)
    assert packs[0].inputs["x"].tolist() == [v for e in entries for v in e.inputs["x"].tolist()]


def test_row_ids_keep_their_gaps() -> None:
    entries = [_entry(0, 2, row_ids=["r1", None]), _entry(1, 1), _entry(2, 2, row_ids=[7, 8])]
    gathering = Gathering()
    for entry in entries:
        gathering.add(entry)
    packs, _ = gathering.pack()
    assert packs[0].row_ids == ["r1", None, None, "7", "8"]


def test_an_unreadable_entry_sends_only_its_group_back_entry_by_entry() -> None:
    good = [_entry(0, 2, model="b"), _entry(1, 1, model="b")]
    bad = _entry(0, 2, ts="not a time")  # cannot be read as a time: must not raise here
    mates = [_entry(1, 2), _entry(2, 1)]  # the bad entry's group (same key)
    gathering = Gathering()
    for entry in [good[0], bad, mates[0], good[1], mates[1]]:
        gathering.add(entry)
    packs, left = gathering.pack()
    assert [p.model_name for p in packs] == ["b"]
    _same(packs[0], pack_group(good))
    assert left == [bad, *mates]  # built (or quarantined) one by one by the writer


def test_arrays_that_do_not_line_up_leave_their_group_unpacked() -> None:
    entries = [_entry(0, 2), _entry(1, 2, decisions=np.ones(5, dtype=np.int64))]
    gathering = Gathering()
    for entry in entries:
        gathering.add(entry)
    packs, left = gathering.pack()
    assert packs == [] and left == entries
