"""The retrain policy alone: pure functions of the span, the memory and the monitors.

No store, no clock, no pipeline: every trigger kind, cooldowns, the canary hold,
``window = "auto"`` and the champion's live record.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ctloop.loop import policy
from ctloop.loop.declaration import parse_loop
from ctloop.loop.memory import ChampionRecord, TriggerRecord
from ctloop.loop.spans import Span
from ctloop.monitoring.monitors import MonitorResult

BASE = {"model": "m", "data": "landing/*.parquet", "event_time": "ts", "label": "y"}
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _spec(**table: Any):  # type: ignore[no-untyped-def]
    return parse_loop("churn", {**BASE, **table})


def _span(i: int) -> Span:
    start = T0 + timedelta(days=7 * i)
    return Span(f"week-{i:02d}", f"/x/week-{i:02d}.parquet", start,
                start + timedelta(days=6), 100)


def _result(kind: str, value: float | None, *, fired: bool = False, baseline: float = 0.8,
            threshold: float = 0.7, status: str = "ok", note: str = "",
            **details: Any) -> MonitorResult:
    return MonitorResult(kind, "m", fired, value, threshold, baseline, {"start": None,
                                                                          "end": None},
                         500, details=details, note=note,
                         status=status)  # type: ignore[arg-type]


def _decide(spec, span: Span, signals: policy.Signals, *, valid: bool = True,  # type: ignore[no-untyped-def]
            triggers: dict[str, TriggerRecord] | None = None, last_fired: str | None = None,
            now: datetime | None = None, canary: Any = None) -> policy.Decision:
    return policy.decide(spec, span, valid=valid, signals=signals, triggers=triggers or {},
                         last_fired=last_fired, now=now, canary=canary)


def test_new_span_fires_on_a_valid_span_and_nothing_fires_on_a_quarantined_one() -> None:
    spec = _spec(retrain_on=["new_span", "decay"])
    decision = _decide(spec, _span(1), policy.Signals())
    assert decision.fired == ["new_span"]
    assert decision.decisions[0].reason == "span week-01 landed and is valid"
    assert decision.decisions[1].reason == "no champion served this span"
    assert decision.last_fired == _span(1).end.isoformat()
    assert decision.triggers["new_span"].last_fired == _span(1).end.isoformat()
    last = decision.triggers["decay"].last
    assert last is not None and (last.span, last.fired) == ("week-01", False)
    quarantined = _decide(spec, _span(2), policy.Signals(), valid=False)
    assert quarantined.fired == [] and quarantined.last_fired is None
    assert all("is quarantined: never trained on" in d.reason for d in quarantined.decisions)


def test_decay_fires_below_for_a_higher_is_better_metric_and_above_for_rmse() -> None:
    spec = _spec(retrain_on=["decay"])
    fell = policy.Signals(decay=_result("decay", 0.6, fired=True))
    (decision,) = _decide(spec, _span(1), fell).decisions
    assert decision.fired
    assert decision.reason == "live roc_auc 0.6000 vs baseline 0.8000 (fires below 0.7000)"
    rmse = _spec(retrain_on=["decay"], metric="rmse")
    rose = policy.Signals(decay=_result("decay", 14.0, fired=True, baseline=10.0,
                                        threshold=12.0))
    (decision,) = _decide(rmse, _span(1), rose).decisions
    assert decision.reason == "live rmse 14.0000 vs baseline 10.0000 (fires above 12.0000)"
    calm = policy.Signals(decay=_result("decay", 0.79))
    assert _decide(spec, _span(1), calm).fired == []
    empty = policy.Signals(decay=_result("decay", None, status="no_data",
                                         note="12 labelled rows, need 200"))
    (decision,) = _decide(spec, _span(1), empty).decisions
    assert not decision.fired and decision.reason == "no data: 12 labelled rows, need 200"


def test_drift_names_the_drifted_features() -> None:
    spec = _spec(retrain_on=["drift"])
    drift = _result("drift", 0.6, fired=True, threshold=0.5,
                    drifted_features=["tenure", "spend"])
    (decision,) = _decide(spec, _span(3), policy.Signals(drift=drift)).decisions
    assert decision.fired
    assert decision.reason == ("0.6000 of features drifted from the champion's training data "
                               "(fires at 0.5000): tenure, spend")


def test_estimate_without_an_estimate_with_no_data_and_fired() -> None:
    spec = _spec(retrain_on=["estimate"])
    (none,) = _decide(spec, _span(1), policy.Signals()).decisions
    assert not none.fired and "cannot be estimated" in none.reason
    no_data = _result("estimate", None, status="no_data", note="no scores")
    (d,) = _decide(spec, _span(1), policy.Signals(estimate=no_data)).decisions
    assert d.reason == "no data: no scores"
    low = _result("estimate", 0.65, fired=True, band=[0.6, 0.7])
    (d,) = _decide(spec, _span(1), policy.Signals(estimate=low)).decisions
    assert d.fired and d.reason == ("estimated roc_auc 0.6500 vs baseline 0.8000 (fires "
                                    "below 0.7000), band 0.6000 to 0.7000")


def test_schedule_anchors_then_fires_when_due_in_event_time() -> None:
    spec = _spec(retrain_on=["schedule"], schedule="0 0 1 * *")  # monthly
    first = _decide(spec, _span(0), policy.Signals())
    assert first.fired == [] and "anchored at" in first.decisions[0].reason
    anchor = first.triggers["schedule"].anchor
    assert anchor == _span(0).end.isoformat()
    soon = _decide(spec, _span(1), policy.Signals(), triggers=first.triggers)
    assert soon.fired == [] and soon.decisions[0].reason.startswith("next run due 2024-02-01")
    due = _decide(spec, _span(5), policy.Signals(), triggers=first.triggers)
    assert due.fired == ["schedule"]
    assert due.triggers["schedule"].anchor == _span(5).end.isoformat()


def test_cooldown_holds_a_fired_signal_until_it_has_passed() -> None:
    spec = _spec(retrain_on=["new_span"], cooldown="10d")
    fired = _decide(spec, _span(0), policy.Signals())
    assert fired.fired == ["new_span"]
    held = _decide(spec, _span(1), policy.Signals(), triggers=fired.triggers,
                   last_fired=fired.last_fired)
    assert held.fired == [] and "; cooling down until 2024-01-17" in held.decisions[0].reason
    assert held.last_fired == fired.last_fired  # a held signal does not restart the clock
    later = _decide(spec, _span(2), policy.Signals(), triggers=held.triggers,
                    last_fired=held.last_fired)
    assert later.fired == ["new_span"]


def test_an_undecided_canary_holds_every_signal() -> None:
    spec = _spec(retrain_on=["new_span"], canary={"share": 0.2, "min_labels": 50})
    waiting = policy.judge_canary(spec, "week-02", 1, 2, 0.8, None, 10)
    assert waiting["decision"] == "wait"
    assert waiting["reason"] == "10 labelled challenger requests, need 50"
    held = _decide(spec, _span(2), policy.Signals(), canary=waiting)
    assert held.fired == [] and held.last_fired is None
    assert held.decisions[0].reason.endswith("; held: the canary of challenger v2 is undecided")
    decided = policy.judge_canary(spec, "week-02", 1, 2, 0.8, 0.82, 60)
    assert decided["decision"] == "promote"
    assert _decide(spec, _span(2), policy.Signals(), canary=decided).fired == ["new_span"]


def test_the_canary_judges_in_the_metric_s_direction() -> None:
    auc = _spec(canary={"share": 0.2, "min_labels": 50})
    assert policy.judge_canary(auc, "w", 1, 2, 0.8, 0.7, 60)["decision"] == "drop"
    rmse = _spec(metric="rmse", canary={"share": 0.2, "min_labels": 50})
    better = policy.judge_canary(rmse, "w", 1, 2, 12.0, 10.0, 60)
    assert better["decision"] == "promote"
    assert better["reason"] == "challenger v2 rmse 10.0000 vs champion v1 12.0000 on span w"


def test_windows_of_spans_of_event_time_and_auto() -> None:
    spans = [_span(i) for i in range(6)]
    current = spans[4]
    by_count = policy.window(_spec(window="2 spans"), spans, current, ["decay"],
                             falling_since=None, since=None)
    assert [s.name for s in by_count[0]] == ["week-03", "week-04"]
    by_time = policy.window(_spec(window="15d"), spans, current, ["new_span"],
                            falling_since=None, since=None)
    assert [s.name for s in by_time[0]] == ["week-02", "week-03", "week-04"]
    auto = _spec(window="auto")
    decayed, since = policy.window(auto, spans, current, ["decay"], falling_since="week-02",
                                   since=None)
    assert [s.name for s in decayed] == ["week-02", "week-03", "week-04"]
    assert since == "week-02"
    drifted, since = policy.window(auto, spans, current, ["drift"], falling_since=None,
                                   since="week-01")
    assert [s.name for s in drifted] == ["week-04"] and since == "week-04"
    kept, since = policy.window(auto, spans, current, ["new_span"], falling_since=None,
                                since="week-03")
    assert [s.name for s in kept] == ["week-03", "week-04"] and since == "week-03"
    unknown, since = policy.window(auto, spans, current, ["new_span"], falling_since=None,
                                   since=None)
    assert [s.name for s in unknown] == ["week-02", "week-03", "week-04"] and since is None


def test_the_bootstrap_window_grows_from_the_first_span_it_waited_on() -> None:
    spans = [_span(i) for i in range(4)]
    spec = _spec()
    assert [s.name for s in policy.bootstrap_window(spec, spans, spans[2], None)] == [
        "week-02"]
    assert [s.name for s in policy.bootstrap_window(spec, spans, spans[2], "week-00")] == [
        "week-00", "week-01", "week-02"]
    two = _spec(window="2 spans")
    assert [s.name for s in policy.bootstrap_window(two, spans, spans[3], "week-00")] == [
        "week-02", "week-03"]


def test_track_change_marks_the_first_falling_span_and_forgets_it_on_recovery() -> None:
    record = ChampionRecord()
    calm = _result("decay", 0.79)
    record = policy.track_change(record, 1, "week-01", calm, "roc_auc")
    assert record == ChampionRecord(version=1, best_live=0.79, falling_since=None)
    falling = _result("decay", 0.74)  # below the middle of baseline 0.8 and threshold 0.7
    record = policy.track_change(record, 1, "week-02", falling, "roc_auc")
    record = policy.track_change(record, 1, "week-03", _result("decay", 0.6, fired=True),
                                 "roc_auc")
    assert record.falling_since == "week-02" and record.best_live == 0.79
    assert policy.track_change(record, 1, "week-04", calm, "roc_auc").falling_since is None
    fresh = policy.track_change(record, 2, "week-04", _result("decay", None), "roc_auc")
    assert fresh == ChampionRecord(version=2)


def test_lower_is_better_metrics_keep_their_best_as_the_least() -> None:
    rmse = _result("decay", 11.5, baseline=10.0, threshold=12.0, higher_is_better=False)
    record = policy.track_change(ChampionRecord(version=1, best_live=10.5), 1, "w", rmse,
                                 "rmse")
    assert record.best_live == 10.5 and record.falling_since == "w"  # past the middle, 11
    spec = _spec(metric="rmse", decay={"baseline": "best_live", "max_drop": 1.0})
    assert policy.decay_baseline(spec, 1, 10.8, record) == (10.5, 1.0)


def test_decay_baseline_number_champion_and_best_live() -> None:
    floor = _spec(decay={"baseline": 0.7})
    assert policy.decay_baseline(floor, 1, 0.9, ChampionRecord()) == (0.7, 0.0)
    champion = _spec(decay={"max_drop": 0.05})
    assert policy.decay_baseline(champion, 1, 0.9, ChampionRecord(1, 0.95)) == (0.9, 0.05)
    best = _spec(decay={"baseline": "best_live", "max_drop": 0.05})
    assert policy.decay_baseline(best, 1, 0.9, ChampionRecord(1, 0.95)) == (0.95, 0.05)
    assert policy.decay_baseline(best, 2, 0.9, ChampionRecord(1, 0.95)) == (0.9, 0.05)
    assert policy.decay_baseline(best, 1, 0.9, ChampionRecord(1, None)) == (0.9, 0.05)


@pytest.mark.parametrize(("metric", "word"), [("roc_auc", "below"), ("rmse", "above"),
                                              ("log_loss", "above"), ("r2", "below")])
def test_fires_word_follows_the_metric(metric: str, word: str) -> None:
    assert policy.fires_word(metric) == word
