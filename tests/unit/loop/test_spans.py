"""Spans from files (ordered by event time, not name) and from a SQL source by watermark."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from ctloop.core.errors import UserInputError
from ctloop.loop.declaration import parse_loop
from ctloop.loop.sample import sample_span
from ctloop.loop.spans import discover_spans

BASE = {"model": "m", "event_time": "ts", "label": "churned"}


def test_file_spans_are_ordered_by_event_time(tmp_path: Path) -> None:
    (tmp_path / "landing").mkdir()
    sample_span(1, 50).to_parquet(tmp_path / "landing" / "a-late.parquet")
    sample_span(0, 50).to_csv(tmp_path / "landing" / "z-early.csv", index=False)
    spec = parse_loop("l", {**BASE, "data": "landing/*"}, root=tmp_path)
    spans = discover_spans(spec)
    assert [s.name for s in spans] == ["z-early", "a-late"]
    assert spans[0].rows == 50 and spans[0].start < spans[0].end < spans[1].start


def test_sql_spans_cut_by_watermark_and_wait_for_the_open_period(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    frame = pd.concat([sample_span(i, 40) for i in range(3)], ignore_index=True)
    frame["loaded_at"] = frame["ts"]
    engine = sa.create_engine(url)
    frame.to_sql("events", engine, index=False)
    engine.dispose()
    spec = parse_loop("l", {**BASE, "data": {"url": url, "query": "SELECT * FROM events",
                                             "watermark": "loaded_at", "span": "7d"}})
    spans = discover_spans(spec, materialize_to=tmp_path / "spans")
    # Weeks of event time by the 1970 epoch (Thursdays): complete periods only.
    assert len(spans) >= 2 and all(Path(s.path).is_file() for s in spans)
    assert sum(s.rows for s in spans) < 120  # the newest, still-open period waits
    assert [s.start for s in spans] == sorted(s.start for s in spans)
    bad = parse_loop("l", {**BASE, "data": {"url": url, "query": "SELECT nope FROM events",
                                            "watermark": "loaded_at"}})
    with pytest.raises(UserInputError, match=r"key 'data\.query' failed"):
        discover_spans(bad, materialize_to=tmp_path / "spans2")
