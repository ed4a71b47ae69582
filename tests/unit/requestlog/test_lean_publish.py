"""What a publish uses instead of pyarrow.compute, fsspec and glibc's defaults (issue 21)."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from ctloop.core.errors import StoreError
from ctloop.requestlog.files import LocalSegments
from ctloop.requestlog.tables import time_range

_TIMES = [datetime(2024, 1, 2, 3, 4, 5, 6000), None, datetime(1960, 1, 1),
          datetime(2025, 5, 5, 5, 5, 5, 123000), None]


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC"])
def test_time_range_is_compute_min_and_max(unit: str, tz: str | None) -> None:
    kind = pa.timestamp(unit, tz=tz)
    column = pa.chunked_array([  # nulls, a chunk of nulls only, sliced chunks (offsets)
        pa.array(_TIMES[:2], kind), pa.array([None], kind),
        pa.array(_TIMES[2:], kind).slice(1), pa.array(_TIMES, kind).slice(2, 1)])
    assert time_range(column) == (pc.min(column).as_py(), pc.max(column).as_py())


@pytest.mark.parametrize("values", [[_TIMES[0]], _TIMES[:2], [None], []])
def test_time_range_of_one_two_and_no_rows(values: list[datetime | None]) -> None:
    column = pa.chunked_array([pa.array(values, pa.timestamp("us", tz="UTC"))])
    expected = (pc.min(column).as_py(), pc.max(column).as_py())
    assert time_range(column) == expected


def test_local_segments_place_a_copy_and_keep_an_existing_file(tmp_path: Path) -> None:
    store = LocalSegments(tmp_path / "root")
    source = tmp_path / "segment.parquet"
    source.write_bytes(b"first")
    store.put_file(source, "predictions/model=m/a.parquet")
    target = tmp_path / "root" / "predictions" / "model=m" / "a.parquet"
    assert target.read_bytes() == b"first" and source.exists()
    assert store.exists("predictions/model=m/a.parquet")
    source.write_bytes(b"second")
    store.put_file(source, "predictions/model=m/a.parquet")
    assert target.read_bytes() == b"first"
    assert [p.name for p in target.parent.iterdir()] == ["a.parquet"]  # no temporary left
    store.delete("predictions/model=m/a.parquet")
    store.delete("predictions/model=m/a.parquet")  # gone already: fine
    assert not store.exists("predictions/model=m/a.parquet")


def test_local_segments_say_what_failed(tmp_path: Path) -> None:
    (tmp_path / "root").write_text("a file where the folder should be")
    source = tmp_path / "segment.parquet"
    source.write_bytes(b"x")
    with pytest.raises(StoreError, match=r"Uploading predictions/a\.parquet"):
        LocalSegments(tmp_path / "root").put_file(source, "predictions/a.parquet")


def test_keep_lean_starts_on_glibc() -> None:
    code = ("from ctloop.requestlog.memory import keep_lean\n"
            "import threading\n"
            "print(keep_lean(0.01), sorted(t.name for t in threading.enumerate()))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    if platform.libc_ver()[0] == "glibc":
        assert "True" in done.stdout and "ctloop-request-log-trim" in done.stdout
