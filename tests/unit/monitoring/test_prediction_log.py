"""The segmented prediction log: round trip, spool durability, recovery, labels, compaction."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from ctloop.core.errors import ConfigError, StoreError, UserInputError
from ctloop.requestlog.log import LogOptions, open_prediction_log
from ctloop.requestlog.records import PredictionLog, PredictionRecord
from ctloop.requestlog.spool import spooled_chunks


def _rec(i: int, ts: datetime, model: str = "m", **kw: object) -> PredictionRecord:
    fields: dict = {"route": "champion", **kw}
    return PredictionRecord(f"r{i}", model, 1, ts=ts, prediction=0.5, features={"x": float(i)},
                            entity={"k": i}, **fields)


T = datetime(2024, 1, 1, tzinfo=UTC)


def test_round_trip_of_real_flights(tmp_path: Path, january, make_records) -> None:
    frame = january.head(10_000)
    log = open_prediction_log(tmp_path / "log")
    assert isinstance(log, PredictionLog)
    log.append(make_records(frame))
    back = log.read(model_name="delays")
    assert len(back) == len(frame)
    assert {"f_temp", "f_origin", "e_flight", "ts", "served", "status", "row_id"} <= set(
        back.columns)
    assert back["ts"].is_monotonic_increasing
    assert str(back["ts"].dt.tz) == "UTC"
    expected = frame.set_index(frame.index.astype(str))["distance"]
    got = back.set_index("request_id")["f_distance"]
    assert (got.loc[expected.index] == expected).all()
    log.close()


def test_time_and_model_filters_use_the_index(tmp_path: Path, january, make_records) -> None:
    log = open_prediction_log((tmp_path / "log").as_uri())
    log.append(make_records(january[january["day"] <= 3]))
    log.append(make_records(january[january["day"] <= 1].head(5), model="other", prefix="o"))
    log.flush()
    assert {s.model_name for s in log.segments()} == {"delays", "other"}
    day2 = log.read(model_name="delays", start=datetime(2013, 1, 2), end=datetime(2013, 1, 3))
    assert len(day2) > 0
    assert day2["ts"].min() >= pd.Timestamp("2013-01-02", tz="UTC")
    assert day2["ts"].max() < pd.Timestamp("2013-01-03", tz="UTC")
    assert set(log.read(model_name="other")["request_id"]) == {f"o{i}" for i in range(5)}
    assert len(log.read(limit=7)) == 7
    assert log.read(model_name="delays", start=datetime(2014, 1, 1)).empty
    log.close()


def test_new_fields_are_stored_and_rejected_or_shadow_rows_hidden(tmp_path: Path) -> None:
    log = open_prediction_log(tmp_path)
    log.append([
        _rec(0, T, row_id="a", decision=1, outlier_score=0.25, missing=("temp",), protocol="v2"),
        _rec(1, T, route="shadow", served=False),
        PredictionRecord("bad", "m", 0, "champion", T, float("nan"), status=422,
                         error="rows: empty row", served=False),
        PredictionRecord("boom", "m", 1, "champion", T, float("nan"), status=500,
                         error="model failed", served=False),
    ])
    seen = log.read()
    assert list(seen["request_id"]) == ["r0"]
    row = seen.iloc[0]
    assert (row["row_id"], row["decision"], row["outlier_score"], row["protocol"]) == (
        "a", 1, 0.25, "v2")
    assert list(row["missing"]) == ["temp"] and row["status"] == 200
    every = log.read(include_rejected=True, include_unserved=True).set_index("request_id")
    assert set(every.index) == {"r0", "r1", "bad", "boom"}
    assert every.loc["bad", "status"] == 422 and every.loc["bad", "error"] == "rows: empty row"
    assert set(log.read(route="shadow")["request_id"]) == {"r1"}
    log.close()


def test_every_append_is_spooled_before_it_returns(tmp_path: Path) -> None:
    opts = LogOptions(publish_interval=60)  # no publish by the thread during this test
    log = open_prediction_log(tmp_path, options=opts)
    log.append([_rec(i, T) for i in range(9)])
    assert log.pending() == 9
    chunks = spooled_chunks(tmp_path / ".spool")
    assert len(chunks) == 1 and chunks[0].rows == 9
    assert log.segments() == []
    assert len(log.read()) == 9  # read publishes this writer's spool first
    assert log.pending() == 0
    log.close()
    assert not list((tmp_path / ".spool").rglob("*.wal"))  # published, its folder removed


_KILLED_WRITER = """
import os, signal, sys
from datetime import UTC, datetime
from ctloop.requestlog.records import PredictionRecord
from ctloop.requestlog.log import LogOptions, open_prediction_log
log = open_prediction_log(sys.argv[1], options=LogOptions(publish_interval=60))
t = datetime(2024, 1, 1, tzinfo=UTC)
for b in range(10):
    log.append([PredictionRecord(f"k{b}-{i}", "m", 1, "champion", t, 0.1) for i in range(50)])
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_writers_spool_is_published_once_by_the_next_writer(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(tmp_path)], check=False)
    assert proc.returncode == -9
    assert len(spooled_chunks(tmp_path / ".spool")) == 10
    log = open_prediction_log(tmp_path, options=LogOptions(publish_interval=60))
    assert log.segments() == []  # nothing published by the dead writer
    assert log.recover() == 500  # read() would do it too
    back = log.read()
    assert len(back) == 500 and back["request_id"].is_unique
    assert log.recover() == 0 and len(log.read()) == 500
    log.close()


def test_chunks_published_before_a_crash_are_not_published_twice(tmp_path: Path) -> None:
    log = open_prediction_log(tmp_path, options=LogOptions(publish_interval=60))
    log.append([_rec(i, T) for i in range(5)])
    spool = next(p for p in (tmp_path / ".spool").rglob("*") if p.is_dir() and p.name != "x"
                 and list(p.glob("*.wal")))
    saved = tmp_path / "saved"
    shutil.copytree(spool, saved)
    log.flush()  # published, chunks deleted
    log.close()
    shutil.copytree(saved, spool, dirs_exist_ok=True)  # as if the process died before deleting
    again = open_prediction_log(tmp_path, options=LogOptions(publish_interval=60))
    assert again.recover() == 0
    assert len(again.read()) == 5
    assert not spool.exists()
    again.close()


def test_labels_join_on_request_id_or_row_id_latest_wins(tmp_path: Path) -> None:
    log = open_prediction_log(tmp_path)
    log.append([_rec(i, T + timedelta(minutes=i), row_id=f"row{i}") for i in range(5)])
    assert log.add_labels(pd.DataFrame({"request_id": ["r0", "r1"], "label": [1, 0]})) == 2
    log.add_labels(pd.DataFrame({"request_id": ["r0"], "label": [0],
                                 "labelled_at": [datetime(2030, 1, 1, tzinfo=UTC)]}))
    assert log.add_labels(pd.DataFrame({"row_id": ["row2", "row3"], "label": [1, 1]})) == 2
    log.add_labels(pd.DataFrame({"row_id": ["row1"], "label": [1],
                                 "labelled_at": [datetime(2031, 1, 1, tzinfo=UTC)]}))
    out = log.read(with_labels=True).set_index("request_id")
    assert out.loc["r0", "label"] == 0  # the later of two request_id labels
    assert out.loc["r1", "label"] == 1  # a later row_id label beats an earlier request_id one
    assert out.loc["r2", "label"] == 1 and out.loc["r3", "label"] == 1
    assert pd.isna(out["label"]["r4"])
    assert "label" not in log.read().columns
    assert len(log.read(with_labels=True)) == 5  # the joins never duplicate rows
    log.close()


def test_labels_without_any_label_segment(tmp_path: Path) -> None:
    log = open_prediction_log(tmp_path)
    log.append([_rec(0, datetime(2024, 1, 1))])
    out = log.read(with_labels=True)
    assert out["label"].isna().all()
    log.close()


def test_empty_log_reads_as_empty_frame(tmp_path: Path) -> None:
    out = open_prediction_log(tmp_path / "none").read(with_labels=True)
    assert out.empty and {"request_id", "ts", "label", "status"} <= set(out.columns)


def test_threads_append_while_another_reads(tmp_path: Path) -> None:
    log = open_prediction_log(tmp_path)
    errors: list[BaseException] = []
    counts: list[int] = []

    def writer(w: int) -> None:
        try:
            for b in range(20):
                log.append([_rec(w * 10_000 + b * 25 + i, T) for i in range(25)])
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
    log.close()


def test_two_logs_on_one_folder_see_each_others_rows(tmp_path: Path) -> None:
    a = open_prediction_log(tmp_path)
    b = open_prediction_log(tmp_path)
    a.append([_rec(i, T) for i in range(3)])
    b.append([_rec(i, T, model="n") for i in range(10, 14)])
    a.flush()
    b.flush()
    assert a.writer != b.writer
    assert len(a.read(model_name="n")) == 4 and len(b.read(model_name="m")) == 3
    a.close()
    b.close()


def test_compaction_merges_small_segments_and_keeps_every_row(tmp_path: Path) -> None:
    log = open_prediction_log(tmp_path)
    for b in range(6):
        log.append([_rec(b * 10 + i, T + timedelta(hours=b)) for i in range(10)])
        log.flush()
    log.add_labels(pd.DataFrame({"request_id": ["r1"], "label": [1]}))
    log.add_labels(pd.DataFrame({"request_id": ["r2"], "label": [0]}))
    assert len(log.segments()) == 6
    before = log.read(with_labels=True)
    assert log.compact(target_rows=1000) == 8
    assert len(log.segments()) == 1 and len(log.segments("labels")) == 1
    after = log.read(with_labels=True)
    pd.testing.assert_frame_equal(before.reset_index(drop=True), after.reset_index(drop=True))
    files = list((tmp_path / "predictions").rglob("*.parquet"))
    assert len(files) == 1  # the merged-away files are deleted
    assert log.compact(target_rows=1000) == 0
    log.close()


def test_concurrent_compactors_never_duplicate_rows(tmp_path: Path) -> None:
    writer = open_prediction_log(tmp_path)
    for b in range(8):
        writer.append([_rec(b * 10 + i, T) for i in range(10)])
        writer.flush()
    others = [open_prediction_log(tmp_path) for _ in range(3)]
    threads = [threading.Thread(target=o.compact, kwargs={"target_rows": 1000}) for o in others]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    back = writer.read()
    assert len(back) == 80 and back["request_id"].is_unique
    assert len(writer.segments()) == 1
    for o in (writer, *others):
        o.close()


def test_retention_drops_old_segments(tmp_path: Path) -> None:
    log = open_prediction_log(tmp_path, options=LogOptions(retention_days=30))
    log.append([_rec(0, datetime(2024, 1, 1, tzinfo=UTC))])
    log.append([_rec(1, datetime(2024, 3, 1, tzinfo=UTC))])
    log.flush()
    log.append([_rec(2, datetime(2024, 3, 2, tzinfo=UTC), model="n")])
    log.flush()
    assert log.maintain(now=datetime(2024, 3, 10, tzinfo=UTC))["expired"] == 0  # one segment
    assert log.expire(now=datetime(2024, 4, 15, tzinfo=UTC)) == 2
    assert log.read().empty
    log.close()


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
        open_prediction_log("ftp://host/log")
    with pytest.raises(ConfigError, match="names no bucket"):
        open_prediction_log("s3:///log")
    log = open_prediction_log(tmp_path / "ok")
    with pytest.raises(UserInputError, match="'request_id' \\(or 'row_id'\\) and 'label'"):
        log.add_labels(pd.DataFrame({"id": [1]}))
    with pytest.raises(UserInputError, match="labels are empty"):  # class names are labels
        log.add_labels(pd.DataFrame({"request_id": ["a"], "label": [None]}))
    with pytest.raises(UserInputError, match="neither a request_id nor a row_id"):
        log.add_labels(pd.DataFrame({"request_id": [None], "row_id": [None], "label": [1]}))
    log.close()


def test_bad_log_settings_are_config_errors(ctloop_home: Path) -> None:
    (ctloop_home / "ctloop.toml").write_text("[ctloop.prediction_log]\nflush = 1\n")
    with pytest.raises(ConfigError, match="Unknown keys \\['flush'\\]"):
        open_prediction_log()
    (ctloop_home / "ctloop.toml").write_text("[ctloop.prediction_log]\npublish_interval = 0\n")
    with pytest.raises(ConfigError, match="publish_interval"):
        open_prediction_log()


def test_unreadable_folder_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads everything: make the OS answer as it would for a user
        import ctloop.requestlog.log as log_module

        real_access = os.access
        monkeypatch.setattr(log_module.os, "access",  # type: ignore[attr-defined]
                            lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    try:
        with pytest.raises(ConfigError, match="not readable"):
            open_prediction_log(locked)
    finally:
        locked.chmod(0o755)


def test_default_location_is_under_home(ctloop_home: Path) -> None:
    log = open_prediction_log()
    assert log.root == (ctloop_home / ".ctloop" / "predictions").resolve()


def test_corrupt_segment_is_a_store_error(tmp_path: Path) -> None:
    log = open_prediction_log(tmp_path)
    log.append([_rec(0, datetime(2024, 1, 1))])
    log.flush()
    [segment] = log.segments()
    (tmp_path / segment.path).write_bytes(b"not parquet")
    with pytest.raises(StoreError, match="Cannot read the prediction log"):
        log.read()
    log.close()
