"""The monitoring page: signals per window as inline SVG, offline, with trigger firings."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from ctloop.artifacts import open_artifact_store
from ctloop.cli.monitor import EXIT_NO_DATA, app
from ctloop.metadata import open_metadata_store
from ctloop.monitoring.monitors import check_drift, record_result
from ctloop.monitoring.report import firings, monitor_timeline, render_report
from ctloop.requestlog.log import open_prediction_log

FEATURES = ["temp", "dewp", "humid", "wind_speed", "distance", "hour", "origin", "carrier"]


def test_timeline_and_page_of_january_then_july(tmp_path: Path, january, july, make_records):
    log = open_prediction_log(tmp_path / "log")
    log.append(make_records(january) + make_records(july, prefix="j"))
    frame = pd.concat([january, july])
    log.add_labels(
        pd.DataFrame(
            {
                "request_id": [*map(str, january.index), *(f"j{i}" for i in july.index)],
                "label": frame["delayed"].to_numpy(),
            }
        )
    )
    timeline = monitor_timeline(
        log,
        "delays",
        reference=january[FEATURES],
        windows=7,
        start=datetime(2013, 1, 1, tzinfo=UTC),
        end=datetime(2013, 8, 1, tzinfo=UTC),
    )
    assert len(timeline) == 7
    assert timeline[0].rows > 0 and timeline[0].live is not None
    assert timeline[0].drift_share is not None and timeline[0].drift_share < 0.5
    assert timeline[-1].drift_share is not None and timeline[-1].drift_share >= 0.5
    assert "temp" in timeline[-1].top_drifted
    assert all(w.rows == 0 for w in timeline[2:5])  # Feb..June were never served
    store = open_metadata_store(f"sqlite:///{tmp_path / 'meta.db'}")
    artifacts = open_artifact_store((tmp_path / "artifacts").as_uri())
    fired = check_drift(
        log,
        "delays",
        january[FEATURES],
        start=datetime(2013, 7, 1, tzinfo=UTC),
        end=datetime(2013, 7, 31, tzinfo=UTC),
    )
    record_result(fired, store, artifacts)
    marks = firings(store, "delays")
    assert len(marks) == 1
    page = render_report("delays", timeline, marks=marks)
    assert page.count("<svg") == 2 and "Trigger firings" in page and 'class="firing"' in page
    assert "outlier rate" in page and "no data in any window" in page  # no scores logged
    assert not re.search(r"<script|https?://|<link", page)  # offline: nothing to fetch


def test_cli_report_writes_the_page_and_exits_3_without_data(tmp_path: Path, january, make_records):
    log = tmp_path / "log"
    writer = open_prediction_log(log)
    writer.append(make_records(january.iloc[:1000]))
    writer.flush()
    out = tmp_path / "page.html"
    result = CliRunner().invoke(
        app, ["report", "delays", "--html", str(out), "--log", str(log), "--windows", "3"]
    )
    assert result.exit_code == 0, result.output
    page = out.read_text()  # no labels, reference or scores: the charts say "no data"
    assert page.count("no data in any window") == 3 and "<h2>Windows</h2>" in page
    empty = tmp_path / "empty"
    open_prediction_log(empty)
    result = CliRunner().invoke(app, ["report", "nobody", "--html", str(out), "--log", str(empty)])
    assert result.exit_code == EXIT_NO_DATA
    assert "No served rows" in out.read_text()
