"""One span through the loop: the sequence the replay and the live controller share.

::

    (resume a training run a dead controller left) | validate ─► bootstrap
        | (serve: replay) ─► monitors ─► canary ─► decide ─► window ─► train ─► gate

:func:`run_span` is the only copy of that sequence: ``ctloop loop replay``
calls it with ``serve`` (the span's rows go through the prediction service in
event time) and no clock, ``ctloop loop run`` with its clock ``now`` (the
monitors read what the service logged since the last look). The memory is
loaded once at the start and saved once at the end; in between it is only
written where a restart needs it (the ingest run, and a training run's id as
soon as it exists).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pandas as pd

from ctloop.loop import policy
from ctloop.loop.memory import LoopMemory, MemoryStore, SpanReport
from ctloop.loop.phases import Ingested, LoopPhases
from ctloop.loop.pipeline import read_span
from ctloop.loop.spans import Span
from ctloop.requestlog.records import PredictionLog

__all__ = ["Serve", "run_span"]

Serve = Callable[[Span, pd.DataFrame, list[str], int | None], list[str]]
"""The replay's traffic: (span, its rows, the features, the challenger) -> served and
labelled; returns anomaly lines (rows the service refused, left out and counted)."""


def run_span(phases: LoopPhases, store: MemoryStore, log: PredictionLog, span: Span,
             valid: list[Span], *, now: datetime | None = None, serve: Serve | None = None,
             baseline_of: int | None = None) -> SpanReport:
    """Handle ``span`` (``valid``: the valid spans before it) and return its report.

    ``now``: the live clock (monitors read the log since the last look, decisions use
    it); ``None`` for a replay (the span's own event time). ``serve``: send the span's
    rows through the service before the monitors (replay). ``baseline_of``: also score
    that version, the never-retrained model, on the span.
    """
    memory = store.load()
    spec = phases.spec
    memory.declaration = {"model": spec.model, "metric": spec.metric, "task": spec.task,
                          "retrain_on": list(spec.retrain_on)}
    record = memory.span(span.name)
    if record.training_run:  # a controller died while this span trained
        report = _resume(phases, span, memory, record.training_run)
    else:
        report = _episode(phases, store, memory, log, span, valid, now=now, serve=serve)
        if baseline_of is not None and not report.bootstrap and report.status == "valid":
            frame = read_span(span.path, phases.spec.event_time, phases.spec.label)
            report.baseline = phases.baseline_score(baseline_of, frame)
    memory.save_report(report, "done")
    store.save(memory)
    return report


def _resume(phases: LoopPhases, span: Span, memory: LoopMemory, run_id: str) -> SpanReport:
    """Resume the training run a dead controller started, or record how it ended."""
    stored = memory.span(span.name).report
    report = stored if stored is not None else SpanReport(span=span.name, rows=span.rows)
    report.rows = span.rows
    result = phases.resume(span, run_id)
    report.runs["resumed"] = run_id
    report.promoted = phases.record_training(result, report)
    return report


def _episode(phases: LoopPhases, store: MemoryStore, memory: LoopMemory,
             log: PredictionLog, span: Span, valid: list[Span], *, now: datetime | None,
             serve: Serve | None) -> SpanReport:
    spec = phases.spec
    report = SpanReport(span=span.name, rows=span.rows)
    champion = phases.alias()
    report.served_version = champion
    ingested = _ingest(phases, store, memory, span, valid)
    report.runs["validate"] = ingested.run_id
    if not ingested.ok:
        report.status = "quarantined"
        report.anomalies = ingested.anomalies
        decision = policy.decide(spec, span, valid=False, signals=policy.Signals(),
                                 triggers=memory.triggers, last_fired=memory.last_fired,
                                 now=now)
        _keep(memory, decision, report)
        return report
    frame = read_span(span.path, spec.event_time, spec.label)
    features = phases.features(frame)
    history = [*valid, span]
    if champion is None:
        _bootstrap(phases, store, memory, span, history, report, frame)
        return report
    challenger = phases.alias("challenger")
    if serve is not None:
        report.anomalies.extend(serve(span, frame, features, challenger))
    if now is None:
        start, end = span.start, span.end + timedelta(microseconds=1)
    else:
        last = memory.monitors_last_end
        start, end = (datetime.fromisoformat(last) if last else span.start), now
    evaluation = phases.champion_evaluation(champion)
    baseline, max_drop = policy.decay_baseline(spec, champion, evaluation, memory.champion)
    signals = phases.monitors(span, log, champion, report, features, baseline=baseline,
                              max_drop=max_drop, start=start, end=end)
    if now is not None:
        memory.monitors_last_end = now.isoformat()
    if signals.decay is not None:
        memory.champion = policy.track_change(memory.champion, champion, span.name,
                                              signals.decay, spec.metric)
    promoted = None
    if challenger is not None and spec.canary is not None:
        champ, chal, labels = phases.canary_live(span, log, champion, challenger,
                                                 start=start, end=end)
        report.canary = policy.judge_canary(spec, span.name, champion, challenger, champ,
                                            chal, labels)
        if report.canary["decision"] != "wait":
            promoted = phases.settle_canary(champion, challenger,
                                            report.canary["decision"] == "promote",
                                            report.canary["reason"])
    decision = policy.decide(spec, span, valid=True, signals=signals,
                             triggers=memory.triggers, last_fired=memory.last_fired, now=now,
                             canary=report.canary)
    _keep(memory, decision, report)
    if decision.fired and promoted is None:
        window, memory.window_since = policy.window(
            spec, history, span, decision.fired, falling_since=memory.champion.falling_since,
            since=memory.window_since)
        promoted = _train(phases, store, memory, span, window, decision.reason, report, frame)
    report.promoted = promoted
    return report


def _ingest(phases: LoopPhases, store: MemoryStore, memory: LoopMemory, span: Span,
            valid: list[Span]) -> Ingested:
    """The span's ingest run; one that already finished (a retried tick) is read back,
    never run again. Its id and landed artifact are written at once."""
    record = memory.span(span.name)
    done = record.runs.get("validate")
    ingested = phases.ingested(done) if done else None
    if ingested is None:
        ingested = phases.validate(span, valid[-1] if valid else None)
    record.runs["validate"] = ingested.run_id
    record.landed = ingested.landed or record.landed
    with store.span_record(span.name) as stored:
        stored.runs["validate"] = ingested.run_id
        stored.landed = record.landed
    return ingested


def _bootstrap(phases: LoopPhases, store: MemoryStore, memory: LoopMemory, span: Span,
               history: list[Span], report: SpanReport, frame: pd.DataFrame) -> None:
    """No champion yet: train the first one. A window it cannot train on (one class, a
    class missing) is no failure: the bootstrap waits for the next span, saying why."""
    report.bootstrap = True
    report.triggers = [{"name": "bootstrap", "fired": True,
                        "reason": "no champion yet: the first valid span trains one"
                        if memory.bootstrap_since is None else
                        f"no champion yet: waiting since span {memory.bootstrap_since}"}]
    window = policy.bootstrap_window(phases.spec, history, span, memory.bootstrap_since)
    report.promoted = _train(phases, store, memory, span, window,
                             f"bootstrap on span {span.name}", report, frame)
    if report.waiting is not None:
        memory.bootstrap_since = memory.bootstrap_since or span.name
    elif report.promoted is not None:
        memory.bootstrap_since = None


def _train(phases: LoopPhases, store: MemoryStore, memory: LoopMemory, span: Span,
           window: list[Span], reason: str, report: SpanReport,
           frame: pd.DataFrame) -> int | None:
    """Train on ``window``; the memory is saved first (what a restart resumes from) and
    the run's id written as soon as the run exists."""
    report.window = [s.name for s in window]
    memory.save_report(report, "training")
    store.save(memory)

    def claim(run_id: str) -> None:
        memory.span(span.name).training_run = run_id
        with store.span_record(span.name) as stored:
            stored.training_run = run_id

    landed = [memory.span(s.name).landed or "" for s in window]
    result = phases.train(span, window, reason, frame, landed=landed, claim=claim)
    return phases.record_training(result, report)


def _keep(memory: LoopMemory, decision: policy.Decision, report: SpanReport) -> None:
    memory.triggers = decision.triggers
    memory.last_fired = decision.last_fired
    report.triggers = [d.to_json() for d in decision.decisions]
