"""The parquet prediction log: round trip, partitions, labels, concurrency, bad input."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from ctloop.core.errors import ConfigError, StoreError, UserInputError
from ctloop.monitoring.base import PredictionLog, PredictionRecord
from ctloop.monitoring.log import ParquetPredictionLog, open_prediction_log


def _rec(i: int, ts: datetime, model: str = "m") -> PredictionRecord:
    return PredictionRecord(f"r{i}", model, 1, "champion", ts, 0.5, {"x": float(i)}, {"k": i})


def test_round_trip_of_real_flights(tmp_path: Path, january, make_records) -> None:
    frame = january.head(10_000)
    log = open_prediction_log(tmp_path / "log")
    assert isinstance(log, PredictionLog)
    started = time.perf_counter()
    log.append(make_records(frame))
    log.flush()
    back = log.read(model_name="delays")
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"10k append + read took {elapsed:.2f}s"
    assert len(back) == len(frame)
    assert {"f_temp", "f_origin", "e_flight", "ts", "served"} <= set(back.columns)
    assert back["ts"].is_monotonic_increasing
    assert str(back["ts"].dt.tz) == "UTC"
    expected = frame.set_index(frame.index.astype(str))["distance"]
    got = back.set_index("request_id")["f_distance"]
    assert (got.loc[expected.index] == expected).all()


def test_parts_are_partitioned_by_date_and_filtered(tmp_path: Path, january, make_records) -> None:
    log = open_prediction_log((tmp_path / "log").as_uri(), flush_rows=100_000)
    log.append(make_records(january[january["day"] <= 3]))
    log.append(make_records(january[january["day"] <= 1].head(5), model="other", prefix="o"))
    log.close()
    folders = sorted(p.name for p in (tmp_path / "log").iterdir())
    assert folders[:3] == ["date=2013-01-01", "date=2013-01-02", "date=2013-01-03"]
    day2 = log.read(model_name="delays", start=datetime(2013, 1, 2), end=datetime(2013, 1, 3))
    assert len(day2) > 0
    assert day2["ts"].min() >= pd.Timestamp("2013-01-02", tz="UTC")
    assert day2["ts"].max() < pd.Timestamp("2013-01-03", tz="UTC")
    assert set(log.read(model_name="other")["request_id"]) == {f"o{i}" for i in range(5)}
    assert len(log.read(limit=7)) == 7


def test_buffer_flushes_at_n_rows_and_files_are_atomic(tmp_path: Path) -> None:
    log = ParquetPredictionLog(tmp_path, flush_rows=10)
    t = datetime(2024, 1, 1, tzinfo=UTC)
    log.append([_rec(i, t) for i in range(9)])
    assert not list(tmp_path.rglob("*.parquet"))
    log.append([_rec(9, t)])
    assert len(list(tmp_path.rglob("part-*.parquet"))) == 1
    assert log.pending() == 0
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    # a writer that died mid-file leaves only a hidden .tmp, which readers ignore
    (tmp_path / "date=2024-01-01" / ".part-x.parquet.tmp").write_bytes(b"half a file")
    assert len(log.read()) == 10


def test_labels_join_latest_per_request(tmp_path: Path) -> None:
    log = open_prediction_log(tmp_path)
    t = datetime(2024, 1, 1, tzinfo=UTC)
    log.append([_rec(i, t + timedelta(minutes=i)) for i in range(4)])
    assert log.add_labels(pd.DataFrame({"request_id": ["r0", "r1"], "label": [1, 0]})) == 2
    log.add_labels(pd.DataFrame({"request_id": ["r0"], "label": [0],
                                 "labelled_at": [datetime(2030, 1, 1, tzinfo=UTC)]}))
    out = log.read(with_labels=True).set_index("request_id")
    assert out.loc["r0", "label"] == 0 and out.loc["r1", "label"] == 0
    assert out.loc[["r2", "r3"], "label"].isna().all()
    assert "label" not in log.read().columns
    assert len(log.read(with_labels=True)) == 4  # the join never duplicates rows


def test_labels_without_any_label_file(tmp_path: Path) -> None:
    log = open_prediction_log(tmp_path)
    log.append([_rec(0, datetime(2024, 1, 1))])
    out = log.read(with_labels=True)
    assert out["label"].isna().all()


def test_empty_log_reads_as_empty_frame(tmp_path: Path) -> None:
    out = open_prediction_log(tmp_path / "none").read(with_labels=True)
    assert out.empty and {"request_id", "ts", "label"} <= set(out.columns)


def test_threads_append_while_another_reads(tmp_path: Path) -> None:
    log = open_prediction_log(tmp_path, flush_rows=50)
    t = datetime(2024, 1, 1, tzinfo=UTC)
    errors: list[BaseException] = []
    counts: list[int] = []

    def writer(w: int) -> None:
        try:
            for b in range(20):
                log.append([_rec(w * 10_000 + b * 25 + i, t) for i in range(25)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                counts.append(len(log.read()))
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    r = threading.Thread(target=reader)
    r.start()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    stop.set()
    r.join()
    assert not errors
    assert counts == sorted(counts)  # readers only ever see more rows
    back = log.read()
    assert len(back) == 4 * 20 * 25
    assert back["request_id"].is_unique


def test_appending_after_close_is_refused(tmp_path: Path) -> None:
    log = open_prediction_log(tmp_path)
    log.close()
    with pytest.raises(UserInputError, match="closed"):
        log.append([_rec(0, datetime(2024, 1, 1))])


def test_bad_inputs_say_what_to_do(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        open_prediction_log(afile)
    with pytest.raises(ConfigError, match="unsupported scheme"):
        open_prediction_log("s3://bucket/log")
    log = open_prediction_log(tmp_path / "ok")
    with pytest.raises(UserInputError, match="'request_id' and 'label'"):
        log.add_labels(pd.DataFrame({"id": [1]}))


def test_unreadable_folder_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads everything: make the OS answer as it would for a user
        import ctloop.monitoring.log as log_module

        real_access = os.access
        monkeypatch.setattr(log_module.os, "access",
                            lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    try:
        with pytest.raises(ConfigError, match="not readable"):
            open_prediction_log(locked)
    finally:
        locked.chmod(0o755)


def test_default_location_is_under_home(ctloop_home: Path) -> None:
    log = open_prediction_log()
    assert log.root == (ctloop_home / ".ctloop" / "predictions").resolve()


def test_corrupt_part_file_is_a_store_error(tmp_path: Path) -> None:
    log = open_prediction_log(tmp_path)
    log.append([_rec(0, datetime(2024, 1, 1))])
    log.flush()
    (tmp_path / "date=2024-01-01" / "part-0-bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(StoreError, match="Cannot read the prediction log"):
        log.read()
