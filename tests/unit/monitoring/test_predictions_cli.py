"""``ctloop predictions status|compact`` on a real local log, and its bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from ctloop.requestlog.log import open_prediction_log
from ctloop.requestlog.records import PredictionRecord
from ctloop.testing.cli import cli, one_error_line


def test_status_and_compact(ctloop_home: Path, capsys) -> None:
    log = open_prediction_log()
    for b in range(3):
        log.append([PredictionRecord(f"r{b}-{i}", "m", 1, "champion",
                                     datetime(2024, 1, 1, b, tzinfo=UTC), 0.5) for i in range(5)])
        log.flush()
    log.close()
    code, out, _ = cli(capsys, "predictions", "status", "--json")
    assert code == 0
    [row] = json.loads(out)["segments"]
    assert (row["model"], row["segments"], row["rows"]) == ("m", 3, 15)
    code, out, _ = cli(capsys, "predictions", "compact", "--json")
    assert code == 0 and json.loads(out) == {"merged_segments": 3, "expired_segments": 0,
                                            "segments_left": 1}
    assert len(open_prediction_log().read()) == 15


def test_bad_log_url_is_one_line(ctloop_home: Path, capsys) -> None:
    code, _, err = cli(capsys, "predictions", "status", "--log", "ftp://host/x")
    assert code == 2 and "unsupported scheme" in one_error_line(err)
