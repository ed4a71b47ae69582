"""The retrain policy: pure functions of the span, the loop's memory and the monitors.

Nothing here reads a store or a clock: the episode (:mod:`ctloop.loop.episode`)
gathers the monitors' results and the memory, calls these, and writes back what
they return. So the policy is unit-tested on its own, and a replay of a year
decides exactly as the live loop would have, every clock being the span's event
time (or the live controller's ``now``).

- :func:`decide`: every declared retrain signal with fired/why, the canary hold
  and the cooldown;
- :func:`window`: which valid spans a candidate trains on (``window = "auto"``
  trains on the spans since the detected change);
- :func:`track_change`, :func:`decay_baseline`: what the champion's live record
  says (the first span whose metric fell, the best live value);
- :func:`judge_canary`: promote, drop or wait on a challenger's live metric.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from ctloop.loop.declaration import LoopSpec
from ctloop.loop.memory import (
    CanaryJson,
    ChampionRecord,
    DecisionJson,
    LastDecision,
    TriggerRecord,
)
from ctloop.loop.spans import Span
from ctloop.models.tasks import higher_is_better
from ctloop.monitoring.monitors import MonitorResult, fires_word
from ctloop.monitoring.signals import check_schedule, cooling_until

__all__ = ["Decision", "Signals", "TriggerDecision", "decay_baseline", "decide",
           "fires_word", "higher_is_better", "judge_canary", "track_change", "window"]



@dataclass(frozen=True)
class TriggerDecision:
    """Whether one retrain signal fired on a span, and why (or why not)."""

    name: str
    fired: bool
    reason: str

    def to_json(self) -> DecisionJson:
        return {"name": self.name, "fired": self.fired, "reason": self.reason}


@dataclass(frozen=True)
class Signals:
    """The monitors' verdicts on one span (``None``: not run, e.g. nothing served)."""

    decay: MonitorResult | None = None
    drift: MonitorResult | None = None
    estimate: MonitorResult | None = None


@dataclass(frozen=True)
class Decision:
    """:func:`decide`'s answer: the decisions and the trigger memory to keep."""

    decisions: list[TriggerDecision]
    triggers: dict[str, TriggerRecord] = field(default_factory=dict)
    last_fired: str | None = None

    @property
    def fired(self) -> list[str]:
        return [d.name for d in self.decisions if d.fired]

    @property
    def reason(self) -> str:
        return "; ".join(f"{d.name}: {d.reason}" for d in self.decisions if d.fired)


def decide(spec: LoopSpec, span: Span, *, valid: bool, signals: Signals,
           triggers: Mapping[str, TriggerRecord], last_fired: str | None,
           now: datetime | None = None, canary: CanaryJson | None = None) -> Decision:
    """Every declared retrain signal with fired/why; the clock is the span's event time
    unless ``now`` is given (the live controller's clock).

    While a canary waits for labels (``canary`` is its undecided report), a signal
    that fires is held: a new candidate would replace the challenger before its
    live traffic had decided anything, and a canary would never finish. Within
    ``cooldown`` of the last retrain, a signal that fires is held too.
    """
    now = now or span.end
    records = dict(triggers)
    out: list[TriggerDecision] = []
    for name in spec.retrain_on:
        decision, records[name] = _signal(spec, name, records.get(name, TriggerRecord()),
                                          span, valid, signals, now)
        out.append(decision)
    if any(d.fired for d in out) and canary is not None and canary["decision"] == "wait":
        out = [replace(d, fired=False, reason=d.reason + f"; held: the canary of challenger "
                       f"v{canary['challenger']} is undecided") if d.fired else d for d in out]
    until = cooling_until(last_fired, spec.cooldown, now)
    if any(d.fired for d in out) and until is not None:
        out = [replace(d, fired=False, reason=d.reason + f"; cooling down until "
                       f"{until.isoformat()}") if d.fired else d for d in out]
    if any(d.fired for d in out):
        last_fired = now.isoformat()
    for d in out:
        records[d.name] = replace(records[d.name], last=LastDecision(span.name, d.fired,
                                                                     d.reason),
                                  last_fired=now.isoformat() if d.fired
                                  else records[d.name].last_fired)
    return Decision(out, records, last_fired)


def _signal(spec: LoopSpec, name: str, record: TriggerRecord, span: Span, valid: bool,
            signals: Signals, now: datetime) -> tuple[TriggerDecision, TriggerRecord]:
    if not valid:
        return TriggerDecision(name, False, f"span {span.name} is quarantined: never "
                                            "trained on"), record
    if name == "new_span":
        return TriggerDecision(name, True, f"span {span.name} landed and is valid"), record
    if name == "schedule":
        if record.anchor is None:
            return (TriggerDecision(name, False, f"schedule {spec.schedule!r} anchored at "
                                                 f"{now.isoformat()}"),
                    replace(record, anchor=now.isoformat()))
        due = check_schedule(str(spec.schedule), record.anchor, now)
        if not due.fired:
            return TriggerDecision(name, False, f"next run due {due.due.isoformat()}"), record
        return (TriggerDecision(name, True, f"scheduled run due {due.due.isoformat()}"),
                replace(record, anchor=now.isoformat()))
    return _monitored(spec, name, signals), record


def _monitored(spec: LoopSpec, name: str, signals: Signals) -> TriggerDecision:
    metric = spec.metric
    side = fires_word(metric)
    if name == "estimate":
        estimate = signals.estimate
        if estimate is None:
            return TriggerDecision(name, False, f"{metric} cannot be estimated without "
                                                "labels (or no champion served)")
        if estimate.status == "no_data":
            return TriggerDecision(name, False, f"no data: {estimate.note}")
        band = estimate.band
        return TriggerDecision(
            name, bool(estimate.fired),
            f"estimated {metric} {_fmt(estimate.value)} vs baseline "
            f"{_fmt(estimate.baseline)} (fires {side} {_fmt(estimate.threshold)})"
            + (f", band {_fmt(band[0])} to {_fmt(band[1])}" if band else ""))
    result = signals.decay if name == "decay" else signals.drift
    if result is None:
        return TriggerDecision(name, False, "no champion served this span")
    if result.status == "no_data" or (result.value is None and result.note):
        return TriggerDecision(name, False, f"no data: {result.note}")
    if name == "decay":
        body = (f"live {metric} {_fmt(result.value)} vs baseline {_fmt(result.baseline)} "
                f"(fires {side} {_fmt(result.threshold)})")
    else:
        drifted = result.strings("drifted_features")
        body = (f"{_fmt(result.value)} of features drifted from the champion's training "
                f"data (fires at {_fmt(result.threshold)}): {', '.join(drifted) or 'none'}")
    return TriggerDecision(name, bool(result.fired), body)


def window(spec: LoopSpec, valid: list[Span], current: Span, fired: list[str], *,
           falling_since: str | None, since: str | None) -> tuple[list[Span], str | None]:
    """The valid spans up to ``current`` that the candidate trains on, and the change
    point ``auto`` keeps for the next retrain (``since``, unchanged when not ``auto``).

    ``auto``: after a decay trigger, the spans since the first span whose live metric
    fell (``falling_since``); after drift, the current span; else since the last change
    point; and the last three spans when no change point is known.
    """
    upto = [s for s in valid if s.start <= current.start]
    w = spec.window
    if w.spans:
        return upto[-w.spans:], since
    if w.seconds:
        return [s for s in upto if s.end >= current.end - timedelta(seconds=w.seconds)], since
    change = None
    if "decay" in fired:
        change = falling_since or current.name
    elif "drift" in fired:
        change = current.name
    if change is None:
        change = since
    names = [s.name for s in upto]
    if change in names:
        return upto[names.index(change):], change
    return upto[-3:], since


def bootstrap_window(spec: LoopSpec, valid: list[Span], current: Span,
                     since: str | None) -> list[Span]:
    """The first model trains on the current span, or, after spans it could not train on
    (a class missing), on the spans since the first of them (within a declared window)."""
    upto = [s for s in valid if s.start <= current.start]
    names = [s.name for s in upto]
    chosen = upto[names.index(since):] if since in names else upto[-1:]
    if spec.window.spans:
        return chosen[-spec.window.spans:]
    if spec.window.seconds:
        edge = current.end - timedelta(seconds=spec.window.seconds)
        return [s for s in chosen if s.end >= edge] or chosen[-1:]
    return chosen


def decay_baseline(spec: LoopSpec, champion: int, evaluation: float | None,
                   record: ChampionRecord) -> tuple[float | None, float]:
    """The value decay compares the live metric with, and the drop it allows: an absolute
    floor, the champion's holdout evaluation, or the best live value it reached."""
    declared = spec.decay
    if isinstance(declared.baseline, int | float):
        return float(declared.baseline), 0.0
    baseline = evaluation
    if declared.baseline == "best_live" and record.version == champion:
        best = record.best_live
        if best is not None:
            better = max if higher_is_better(spec.metric) else min
            baseline = best if baseline is None else better(best, baseline)
    return baseline, declared.max_drop


def track_change(record: ChampionRecord, champion: int, span: str,
                 decay: MonitorResult, metric: str) -> ChampionRecord:
    """Remember the first span whose live metric fell (past half the allowed drop, or
    fired) and the best live value the champion reached; a new champion starts afresh."""
    if record.version != champion:
        record = ChampionRecord(version=champion)
    if decay.value is None or decay.baseline is None:
        return record
    higher = bool(decay.details.get("higher_is_better", higher_is_better(metric)))
    best = record.best_live
    better = max if higher else min
    best = decay.value if best is None else better(best, decay.value)
    edge = decay.threshold if decay.threshold is not None else decay.baseline
    middle = (decay.baseline + edge) / 2
    fell = decay.value < middle if higher else decay.value > middle
    falling = (record.falling_since or span) if (fell or decay.fired) else None
    return ChampionRecord(version=champion, best_live=best, falling_since=falling)


def judge_canary(spec: LoopSpec, span: str, champion: int, challenger: int,
                 champion_live: float | None, challenger_live: float | None,
                 labels: int) -> CanaryJson:
    """Promote the challenger when its live metric is not worse than the champion's on
    the same period, drop it when worse; wait for ``canary.min_labels`` labels."""
    assert spec.canary is not None
    report: CanaryJson = {"challenger": challenger, "champion": champion,
                          "challenger_live": _round(challenger_live),
                          "champion_live": _round(champion_live), "labels": labels,
                          "decision": "wait", "reason": ""}
    if labels < spec.canary.min_labels or challenger_live is None or champion_live is None:
        report["reason"] = f"{labels} labelled challenger requests, need " \
                           f"{spec.canary.min_labels}"
        return report
    ok = (challenger_live >= champion_live if higher_is_better(spec.metric)
          else challenger_live <= champion_live)
    report["decision"] = "promote" if ok else "drop"
    report["reason"] = (f"challenger v{challenger} {spec.metric} {challenger_live:.4f} vs "
                        f"champion v{champion} {champion_live:.4f} on span {span}")
    return report


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
