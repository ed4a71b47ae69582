"""The live controller with a landed file that is no span: quarantined once, the other spans
handled, picked up again once the file is replaced by a good one."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from ctloop.core.settings import load_settings
from ctloop.loop import get_loop
from ctloop.loop.controller import LoopController
from ctloop.loop.sample import sample_span, write_sample_spans
from ctloop.testing.cli import cli, one_error_line
from ctloop.testing.loops import churn_loop

pytestmark = pytest.mark.slow

TOML = churn_loop(
    'id = "customer"',
    'retrain_on = ["decay"]',
    'train = {{ flavor = "lightgbm", params = {{ n_estimators = 10 }} }}',
    'decay = {{ min_labels = 100 }}',
    data='landing/*.{suffix}',
)


def _declare(project: Path, suffix: str = "parquet") -> None:
    (project / "ctloop.toml").write_text(TOML.format(suffix=suffix))


def _once(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    code, out, err = cli(capsys, "loop", "run", "churn", "--once", "--json")
    return code, json.loads(out), err


def _status(capsys: pytest.CaptureFixture[str]) -> dict[str, dict]:  # type: ignore[type-arg]
    code, out, err = cli(capsys, "loop", "status", "churn", "--json")
    assert code == 0, err
    return {s["span"]: s for s in json.loads(out)["spans"]}


def test_a_truncated_parquet_is_quarantined_once_then_picked_up_when_replaced(
        ctloop_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _declare(ctloop_home)
    landing = ctloop_home / "landing"
    write_sample_spans(landing, spans=2, rows=300, change_at=None, shift_at=None)
    good = sample_span(2, 300)
    good.to_parquet(landing / "week-02.parquet", index=False)
    whole = (landing / "week-02.parquet").read_bytes()
    (landing / "week-02.parquet").write_bytes(whole[: len(whole) // 2])  # a copy cut short

    code, tick, err = _once(capsys)
    assert code == 1  # for cron: the good spans are handled, the bad file is a failure
    spans = {s["span"]: s for s in tick["spans"]}
    assert spans["week-00"]["bootstrap"] and spans["week-00"]["promoted"] == 1
    assert spans["week-01"]["status"] == "valid"
    bad = spans["week-02"]
    assert bad["status"] == "quarantined" and bad["served_version"] == 1 and bad["rows"] == 0
    (anomaly,) = bad["anomalies"]
    assert "span 'week-02' cannot be read (key 'data')" in anomaly
    assert str(landing / "week-02.parquet") in anomaly
    (line,) = tick["errors"]
    assert line.startswith("Loop 'churn': span 'week-02' cannot be read (key 'data')")
    assert "Quarantined; the other spans go on" in line
    assert one_error_line(err) == line  # one line on stderr, naming the loop, span and key
    status = _status(capsys)
    assert status["week-02"]["status"] == "quarantined"
    assert status["week-02"]["anomalies"] == [anomaly]

    code, tick, err = _once(capsys)  # recorded once: the next tick neither reports nor fails
    assert code == 0 and tick == {"spans": [], "blocked_by": None, "errors": []}, err
    os.utime(landing / "week-02.parquet")  # touched, same bytes: still recorded once
    code, tick, _ = _once(capsys)
    assert code == 0 and tick["spans"] == []

    good.to_parquet(landing / "week-02.parquet", index=False)  # the full file lands
    code, tick, err = _once(capsys)
    assert code == 0, err
    (fixed,) = tick["spans"]
    assert fixed["span"] == "week-02" and fixed["status"] == "valid" and fixed["rows"] == 300
    assert fixed["anomalies"] == [] and fixed["served_version"] == 1
    status = _status(capsys)
    assert [s["status"] for s in status.values()] == ["valid"] * 3
    code, tick, _ = _once(capsys)
    assert code == 0 and tick["spans"] == []  # handled once, like any span


def test_a_csv_without_the_label_column_then_fixed(
        ctloop_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _declare(ctloop_home, "csv")
    landing = ctloop_home / "landing"
    landing.mkdir()
    for index in range(3):
        frame = sample_span(index, 300)
        if index == 1:
            frame = frame.drop(columns=["churned"])
        frame.to_csv(landing / f"week-{index:02d}.csv", index=False)

    code, tick, err = _once(capsys)
    assert code == 1
    spans = {s["span"]: s for s in tick["spans"]}
    assert spans["week-00"]["promoted"] == 1 and spans["week-02"]["status"] == "valid"
    (anomaly,) = spans["week-01"]["anomalies"]
    assert "span 'week-01' has no label column 'churned' (key 'label')" in anomaly
    assert str(landing / "week-01.csv") in anomaly
    assert "key 'label'" in one_error_line(err)
    assert _status(capsys)["week-01"]["status"] == "quarantined"

    sample_span(1, 300).to_csv(landing / "week-01.csv", index=False)  # the label is back
    code, tick, err = _once(capsys)
    assert code == 0, err
    (fixed,) = tick["spans"]
    assert fixed["span"] == "week-01" and fixed["status"] == "valid"
    decay = next(t for t in fixed["triggers"] if t["name"] == "decay")
    assert not decay["fired"]  # the span was handled through the monitors and the triggers
    assert _status(capsys)["week-01"]["status"] == "valid"


def test_run_keeps_ticking_past_a_bad_file(ctloop_home: Path) -> None:
    """The long-running controller: a bad file no longer fails every tick."""
    _declare(ctloop_home)
    landing = ctloop_home / "landing"
    write_sample_spans(landing, spans=1, rows=300, change_at=None, shift_at=None)
    (landing / "week-09.parquet").write_bytes(b"PAR1 not parquet at all")
    settings = load_settings()
    controller = LoopController(get_loop("churn", settings), settings)
    ticks = []
    stop = threading.Event()

    def on_tick(result) -> None:  # type: ignore[no-untyped-def]
        ticks.append(result)
        if len(ticks) == 1:
            sample_span(1, 300).to_parquet(landing / "week-01.parquet", index=False)
        if len(ticks) == 2:
            stop.set()

    try:
        controller.run(interval=0.1, stop=stop, on_tick=on_tick)
    finally:
        controller.close()
    first, second = ticks
    assert sorted(r.span for r in first.reports) == ["week-00", "week-09"]
    assert len(first.errors) == 1 and "span 'week-09' cannot be read" in first.errors[0]
    assert [r.span for r in second.reports] == ["week-01"] and second.errors == []
    assert second.reports[0].status == "valid"
