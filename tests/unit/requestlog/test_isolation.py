"""One model's unwritable answer never costs another model's rows (issue 18.3).

Good rows of a binary model, a multiclass model's per-class answers (nested
lists) and entries that cannot be written (a value of the wrong type for the
version's fixed schema, ragged per-class lists, arrays of the wrong length) go
through one writer, in one drain and across drains: every good row is logged
once with typed columns, every bad one is in the quarantine with its reason,
counted, shown by ``ctloop predictions status``, and nothing is retried or
blocks shutdown.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ctloop.requestlog.entries import Entry
from ctloop.requestlog.log import open_prediction_log
from ctloop.requestlog.writer import RequestLogger
from ctloop.testing.cli import cli

T = datetime(2024, 1, 1, tzinfo=UTC)


def _binary(i: int, n: int = 2, **kw: object) -> Entry:
    entry = Entry(
        "binary", 1, "champion", "v2", T, 1.0, [f"b{i}-{j}" for j in range(n)],
        np.linspace(0.1, 0.9, n),
        inputs={"x": np.arange(n, dtype=np.float64) + i,
                "c": np.array(["a", "b"] * n, dtype=object)[:n]},
        entity={"k": np.arange(n)}, decisions=np.ones(n, dtype=np.int64),
    )
    return replace(entry, **kw)  # type: ignore[arg-type]


def _multiclass(i: int, scores: object) -> Entry:
    n = len(scores)  # type: ignore[arg-type]
    return Entry("multi", 3, "champion", "v1", T, 2.0, [f"m{i}-{j}" for j in range(n)],
                 np.array(scores, dtype=object), inputs={"x": np.arange(n, dtype=np.float64)},
                 labels=None if i else np.array(["cat", "dog", "eel"][:n]))


def _submit_all(logger: RequestLogger) -> list[str]:
    """Good and bad entries interleaved; returns the good request ids."""
    entries = [
        _binary(0),
        _binary(1, inputs={"x": np.array(["not a number", "x"], dtype=object),
                           "c": np.array(["a", "b"], dtype=object)}),  # wrong type for f_x
        _multiclass(0, [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]),  # nested per-class lists
        _multiclass(1, [[1, 0, 0], [0, 1]]),  # ragged: no (rows, classes) shape
        _binary(2),
        _binary(3, decisions=np.ones(5, dtype=np.int64)),  # 5 decisions for 2 rows
        _multiclass(2, [[0.2, 0.5, 0.3]]),
        _binary(4),
    ]
    good = []
    for entry in entries:
        logger.submit([entry])
        if entry.request_ids[0] in ("b0-0", "b2-0", "b4-0", "m0-0", "m2-0"):
            good.extend(entry.request_ids)
    return good


def test_an_unwritable_record_between_good_ones_is_quarantined(
    tmp_path: Path, ctloop_home: Path, capsys
) -> None:
    log = open_prediction_log(tmp_path / "log")
    logger = RequestLogger(log, interval=10.0, window=10.0)  # one drain holds them all
    good = _submit_all(logger)
    logger.close()  # spools, publishes, never waits on the bad ones
    again = RequestLogger(open_prediction_log(tmp_path / "log"), interval=0.001)
    good += _submit_all(again)  # the same across many small drains (ids repeat: counted)
    again.close()
    stats = again.stats()
    assert stats.quarantined_rows == 2 + 2 + 2 and stats.written_rows == 2 * 3 + 2 + 1
    assert stats.pending_rows == 0 and not stats.failing and stats.lost_rows == 0

    log = open_prediction_log(tmp_path / "log")
    frame = log.read()
    assert sorted(frame["request_id"]) == sorted(good)
    binary = frame[frame["model_name"] == "binary"]
    assert binary["f_x"].dtype == np.float64 and set(binary["f_c"]) == {"a", "b"}
    assert binary["probabilities"].isna().all()
    multi = frame[frame["model_name"] == "multi"].drop_duplicates("request_id").sort_values(
        "request_id")
    probs = [list(p) for p in multi["probabilities"]]
    assert probs[:3] == [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.2, 0.5, 0.3]]
    assert list(multi["prediction"])[:3] == [0.7, 0.8, 0.5]
    assert list(multi["predicted_label"])[:2] == ["cat", "dog"]

    segments = log.segments("quarantine")
    assert len(segments) == 2  # one per writer that published
    quarantined = [r for s in segments
                   for r in pq.read_table(tmp_path / "log" / s.path).to_pylist()]
    assert sorted(r["request_id"] for r in quarantined) == sorted(
        2 * ["b1-0", "b1-1", "m1-0", "m1-1", "b3-0", "b3-1"])
    reasons = {r["request_id"][:2]: r["reason"] for r in quarantined}
    assert "column f_x of binary v1 is double" in reasons["b1"]
    assert "decisions hold" in reasons["b3"]
    assert all(r["record"] for r in quarantined)
    summary = log.quarantined()
    assert sum(q["rows"] for q in summary) == 12
    log.close()

    code, out, _ = cli(capsys, "predictions", "status", "--log", str(tmp_path / "log"),
                       "--json")
    assert code == 0
    shown = json.loads(out)
    assert {r["kind"] for r in shown["segments"]} == {"predictions", "quarantine"}
    assert sum(q["rows"] for q in shown["quarantined"]) == 12
    code, out, _ = cli(capsys, "predictions", "status", "--log", str(tmp_path / "log"))
    assert code == 0 and "quarantined: 4 rows of binary v1" in out
    assert "scores are not numbers" in out
