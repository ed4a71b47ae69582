"""A prediction log folder from before segments: adopted on open, every row exactly once."""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ctloop.requestlog.log import open_prediction_log


def _old_part(root: Path, day: str, name: str, models: list[str], start: datetime,
              n: int = 50) -> None:
    """A part as the day-partitioned log wrote it: its eight base columns, f_* and e_*."""
    folder = root / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    rows = range(n)
    pq.write_table(pa.table({
        "request_id": pa.array([f"{name}-{i}" for i in rows], pa.string()),
        "model_name": pa.array([models[i % len(models)] for i in rows], pa.string()),
        "model_version": pa.array([1] * n, pa.int64()),
        "route": pa.array(["champion"] * n, pa.string()),
        "ts": pa.array([start + timedelta(minutes=i) for i in rows],
                       pa.timestamp("us", tz="UTC")),
        "prediction": pa.array([i / n for i in rows], pa.float64()),
        "latency_ms": pa.array([1.5] * n, pa.float64()),
        "served": pa.array([True] * n, pa.bool_()),
        "f_distance": pa.array([float(100 + i) for i in rows]),
        "e_flight": pa.array(list(rows)),
    }), folder / f"part-{name}.parquet")


def _old_labels(root: Path, name: str, ids: list[str]) -> None:
    (root / "labels").mkdir(exist_ok=True)
    pq.write_table(pa.table({
        "request_id": pa.array(ids, pa.string()),
        "label": pa.array([float(i % 2) for i in range(len(ids))], pa.float64()),
        "labelled_at": pa.array([datetime(2013, 7, 3, tzinfo=UTC)] * len(ids),
                                pa.timestamp("us", tz="UTC")),
    }), root / "labels" / f"part-{name}.parquet")


def _legacy_log(root: Path) -> None:
    _old_part(root, "2013-07-01", "a", ["delays", "taxi"], datetime(2013, 7, 1, tzinfo=UTC))
    _old_part(root, "2013-07-02", "b", ["delays"], datetime(2013, 7, 2, tzinfo=UTC))
    _old_labels(root, "l1", [f"b-{i}" for i in range(20)])


def test_old_parts_are_adopted_on_open_with_their_labels(tmp_path: Path) -> None:
    root = tmp_path / "predictions"
    _legacy_log(root)
    log = open_prediction_log(root)
    try:
        delays = log.read(model_name="delays", with_labels=True)
        assert len(delays) == 25 + 50 and len(log.read(model_name="taxi")) == 25
        assert delays["f_distance"].notna().all() and delays["e_flight"].notna().all()
        assert delays["status"].isna().all()  # columns the old parts never had: nulls
        labelled = delays[delays["label"].notna()]
        assert sorted(labelled["request_id"]) == sorted(f"b-{i}" for i in range(20))
        window = log.read(model_name="delays", start=datetime(2013, 7, 2, tzinfo=UTC))
        assert set(window["request_id"].str[0]) == {"b"}
        # New rows go beside the adopted ones.
        log.add_labels(delays[["request_id"]].head(5).assign(label=1.0))
        assert log.read(model_name="delays", with_labels=True)["label"].notna().sum() >= 20
    finally:
        log.close()
    assert not list(root.glob("date=*/part-*.parquet"))
    assert not list(root.glob("labels/part-*.parquet"))
    again = open_prediction_log(root)  # nothing left to adopt: no row twice
    try:
        assert len(again.read()) == 100
    finally:
        again.close()


def test_a_crash_before_the_old_part_was_deleted_adds_nothing_twice(tmp_path: Path) -> None:
    root = tmp_path / "predictions"
    _legacy_log(root)
    kept = tmp_path / "kept"
    shutil.copytree(root, kept)
    open_prediction_log(root).close()
    # As if the process died after indexing but before deleting: the part is there again.
    shutil.copytree(kept / "date=2013-07-02", root / "date=2013-07-02", dirs_exist_ok=True)
    shutil.copytree(kept / "labels", root / "labels", dirs_exist_ok=True)
    log = open_prediction_log(root)
    try:
        frame = log.read(with_labels=True)
        assert len(frame) == 100 and frame["request_id"].is_unique
        assert frame["label"].notna().sum() == 20
    finally:
        log.close()
    assert not list(root.glob("date=*/part-*.parquet"))


def test_two_processes_adopting_at_once_add_each_row_once(tmp_path: Path) -> None:
    root = tmp_path / "predictions"
    for day in range(1, 9):
        _old_part(root, f"2013-07-0{day}", f"p{day}", ["delays"],
                  datetime(2013, 7, day, tzinfo=UTC))
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def open_log() -> None:
        barrier.wait()
        try:
            open_prediction_log(root).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_log) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    log = open_prediction_log(root)
    try:
        frame = log.read()
        assert len(frame) == 400 and frame["request_id"].is_unique
    finally:
        log.close()
